// Random resets and FINs from the peer during random writes, bounded in count and time. Every write ends exactly once
// (delivered whole, sent again whole and delivered, or reported through its callback), and the peer never receives a
// fragment: each connection's bytes start at a message boundary and hold whole messages, but for a cut last one.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Failure } from '../src/index.js';
import { createRng } from './soak/soak.js';
import { listen, sleep, until } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** `<id>:<length>:<payload>\n`, payload of lowercase letters: a reader can tell a whole message from a cut one. */
function message(id: number, length: number, rng: () => number): Buffer {
  const payload = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) payload[i] = 97 + Math.floor(rng() * 26);
  return Buffer.concat([Buffer.from(`${id}:${length}:`), payload, Buffer.from('\n')]);
}

/** Parses one connection's bytes: the whole messages' ids, and whether what follows them is a prefix of one more. */
function parse(bytes: Buffer): { ids: number[]; fragment: string | undefined } {
  const ids: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    const rest = bytes.subarray(at);
    const header = /^(\d+):(\d+):/.exec(rest.subarray(0, 32).toString('latin1'));
    if (header === null) {
      // Only a cut header may remain: digits, then maybe a colon and more digits.
      const text = rest.toString('latin1');
      return { ids, fragment: /^\d*(:\d*)?$/.test(text) ? undefined : `bad header at byte ${at}: ${JSON.stringify(text.slice(0, 20))}` };
    }
    const length = Number(header[2]);
    const start = at + header[0].length;
    const end = start + length;
    if (end + 1 > bytes.length) {
      // A cut last message: its payload so far must be letters only.
      const tail = bytes.subarray(start);
      return { ids, fragment: tail.every((b) => b >= 97 && b <= 122) ? undefined : `bad cut message at byte ${at}` };
    }
    if (bytes[end] !== 10 || !bytes.subarray(start, end).every((b) => b >= 97 && b <= 122)) {
      return { ids, fragment: `message ${header[1]} is not whole at byte ${at}` };
    }
    ids.push(Number(header[1]));
    at = end + 1;
  }
  return { ids, fragment: undefined };
}

describe('reset fuzz', () => {
  it('every write ends exactly once, and the peer never receives a fragment', async () => {
    const seed = Number(process.env.RESOCK_FUZZ_SEED ?? Date.now() % 1_000_000);
    const rng = createRng(seed).next;
    const connections: Array<{ socket: net.Socket; chunks: Buffer[] }> = [];
    const srv = await listen((socket) => {
      const conn = { socket, chunks: [] as Buffer[] };
      connections.push(conn);
      socket.on('data', (d) => conn.chunks.push(d));
      // A slow reader now and then, so writes back up in Node and get cut by the next fault.
      if (rng() < 0.5) {
        socket.pause();
        setTimeout(() => socket.resume(), 20 + rng() * 60).unref();
      }
    });
    cleanups.push(() => srv.close());

    const sock = connect({
      host: '127.0.0.1',
      port: srv.port,
      keepAlive: false,
      reconnect: { minDelay: 5, maxDelay: 20, stableAfter: 0 },
      offlineQueue: { maxBytes: 256 << 20 },
    });
    cleanups.push(() => sock.destroy());
    const failures: Failure[] = [];
    sock.on('disconnect', (f) => failures.push(f));

    // Faults: every 15–60 ms the peer resets (3 in 4) or closes (FIN) its newest connection.
    let faults = 0;
    let faulting = true;
    const fault = async (): Promise<void> => {
      while (faulting && faults < 60) {
        await sleep(15 + rng() * 45);
        const live = connections.filter((c) => !c.socket.destroyed);
        const victim = live.at(-1);
        if (victim === undefined) continue;
        faults++;
        if (rng() < 0.75) victim.socket.resetAndDestroy();
        else victim.socket.end();
      }
    };
    const faulter = fault();

    // Writes: 600 of them in bursts, sizes from a few bytes to 512 KiB.
    const total = 600;
    const sizes = new Map<number, number>();
    const outcome = new Map<number, Array<'ok' | string>>();
    for (let id = 0; id < total; id++) {
      const roll = rng();
      const length = roll < 0.6 ? 1 + Math.floor(rng() * 200) : roll < 0.95 ? 1 + Math.floor(rng() * 64 * 1024) : 1 + Math.floor(rng() * 512 * 1024);
      const m = message(id, length, rng);
      sizes.set(id, m.length);
      sock.write(m, (err) => {
        const seen = outcome.get(id) ?? [];
        seen.push(err ? ((err as { code?: string }).code ?? 'error') : 'ok');
        outcome.set(id, seen);
      });
      if (rng() < 0.1) await sleep(rng() * 15);
    }
    await sleep(300);
    faulting = false;
    await faulter;
    await until(() => outcome.size === total, 20_000, 'every write callback');
    await sleep(200);

    // Exactly once each.
    expect([...outcome].filter(([, v]) => v.length !== 1)).toEqual([]);
    // Nothing is refused here (the queue is large, the socket never closes): every callback reports success.
    expect([...outcome].filter(([, v]) => v[0] !== 'ok')).toEqual([]);

    // No fragment on any connection.
    const delivered = new Map<number, number>();
    for (const [index, c] of connections.entries()) {
      const { ids, fragment } = parse(Buffer.concat(c.chunks));
      expect(fragment, `connection ${index} (seed ${seed})`).toBeUndefined();
      for (const id of ids) delivered.set(id, (delivered.get(id) ?? 0) + 1);
    }
    expect([...delivered].filter(([, n]) => n > 1), `duplicates (seed ${seed})`).toEqual([]);

    // What the peer never got whole was handed to the kernel on a connection that was then lost: the failures
    // reported at least that many bytes as unconfirmed.
    const undelivered = [...sizes].filter(([id]) => !delivered.has(id)).reduce((n, [, size]) => n + size, 0);
    const unconfirmed = failures.reduce((n, f) => n + (f.writes?.unconfirmedBytes ?? 0), 0);
    expect(undelivered, `seed ${seed}`).toBeLessThanOrEqual(unconfirmed);
    expect(faults).toBeGreaterThan(5);
  }, 60_000);
});
