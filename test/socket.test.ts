import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ResilientSocket, connect, type Failure } from '../src/index.js';
import { activeResources, freePort, listen, record, settleResources, sleep, waitFor, type TestServer } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(onSocket?: (s: net.Socket) => void): Promise<TestServer> {
  const s = await listen(onSocket);
  cleanups.push(() => s.close());
  return s;
}

function client(opts: ConstructorParameters<typeof ResilientSocket>[0]): ResilientSocket {
  const sock = connect({ keepAlive: false, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

const fast = { minDelay: 20, maxDelay: 200, stableAfter: 0 } as const;

describe('open, write, read', () => {
  it('connects, echoes and counts bytes', async () => {
    const srv = await server((s) => s.pipe(s));
    const sock = client({ port: srv.port, host: '127.0.0.1' });
    const connected = await waitFor(sock, 'connect', 2000);
    expect(connected).toMatchObject({ attempt: 1, reconnected: false, downtime: 0 });
    expect(sock.state).toBe('open');
    const got = waitFor(sock, 'data', 2000);
    expect(sock.write('hello')).toBe(true);
    expect((await got).toString()).toBe('hello');
    const st = sock.stats();
    expect(st).toMatchObject({ state: 'open', attempts: 1, connects: 1, bytesRead: 5, bytesWritten: 5, queuedBytes: 0 });
    expect(sock.socket).toBeInstanceOf(net.Socket);
  });

  it('emits connecting after the caller attached listeners, and ready() resolves when open', async () => {
    const srv = await server();
    const sock = client({ port: srv.port });
    const events = record(sock, ['connecting', 'connect']);
    await sock.ready();
    expect(events.map((e) => e.name)).toEqual(['connecting', 'connect']);
  });

  it('send() resolves once the bytes are handed to the kernel', async () => {
    const received: Buffer[] = [];
    const srv = await server((s) => s.on('data', (d) => received.push(d)));
    const sock = client({ port: srv.port });
    await sock.send('abc');
    await sock.send(new Uint8Array([100, 101]));
    await sleep(50);
    expect(Buffer.concat(received).toString()).toBe('abcde');
  });

  it('rejects a write of the wrong type at once', () => {
    const sock = new ResilientSocket({ port: 1 });
    expect(() => sock.write(42 as never)).toThrow(/write\(\) takes a string, Buffer or Uint8Array, got number/);
  });
});

describe('failures are classified and diagnosed', () => {
  it('reset while traffic flows: kind reset, peer-crashed, then reconnects', async () => {
    let first = true;
    const srv = await server((s) => {
      s.on('data', () => {
        if (first) {
          first = false;
          s.resetAndDestroy();
        }
      });
      s.write('hi');
    });
    const sock = client({ port: srv.port, reconnect: fast });
    await waitFor(sock, 'connect', 2000);
    const events = record(sock, ['failure', 'reset', 'disconnect', 'reconnecting', 'connect']);
    sock.write('boom');
    const again = await waitFor(sock, 'connect', 3000);
    expect(again.reconnected).toBe(true);
    expect(events.map((e) => e.name)).toEqual(['failure', 'reset', 'disconnect', 'reconnecting', 'connect']);
    const f = events[0]!.arg as Failure;
    expect(f).toMatchObject({ kind: 'reset', code: 'ECONNRESET', phase: 'open', retryable: true });
    expect(f.diagnosis.cause).toBe('peer-crashed');
    expect(f.connectionAge).toBeGreaterThanOrEqual(0);
    expect(f.bytesRead).toBe(2);
    expect(f.endpoint).toEqual({ host: 'localhost', port: srv.port });
    expect(sock.stats().failures).toEqual({ reset: 1 });
  });

  it('reset on the first write after a long quiet: intermediary-idle-timeout', async () => {
    // Models a NAT that forgot the flow: the first segment after the quiet period is answered with RST.
    const srv = await server((s) => s.on('data', () => s.resetAndDestroy()));
    const sock = client({ port: srv.port, reconnect: fast, diagnose: { idleThreshold: 150 } });
    await waitFor(sock, 'connect', 2000);
    await sleep(250);
    sock.write('after the quiet');
    const f = await waitFor(sock, 'failure', 2000);
    expect(f.kind).toBe('reset');
    expect(f.diagnosis.cause).toBe('intermediary-idle-timeout');
    expect(f.diagnosis.summary).toMatch(/first write after \d+ ms of silence|first write after [\d.]+ s of silence/);
    expect(f.idleFor).toBeGreaterThanOrEqual(150);
  });

  it('peer FIN: kind peer-closed, peer-closed-gracefully', async () => {
    const srv = await server((s) => setTimeout(() => s.end(), 20));
    const sock = client({ port: srv.port, reconnect: fast });
    const f = await waitFor(sock, 'disconnect', 2000);
    expect(f).toMatchObject({ kind: 'peer-closed', code: 'ERR_RESOCK_PEER_CLOSED', phase: 'open' });
    expect(f.diagnosis.cause).toBe('peer-closed-gracefully');
  });

  it('writing to a peer that went away: broken-pipe or reset, never a crash', async () => {
    const srv = await server((s) => s.destroy());
    const sock = client({ port: srv.port, reconnect: false, offlineQueue: false });
    await waitFor(sock, 'connect', 2000).catch(() => undefined);
    const errors: Error[] = [];
    for (let i = 0; i < 50 && sock.state === 'open'; i++) {
      sock.write(Buffer.alloc(1024), (err) => err && errors.push(err));
      await sleep(5);
    }
    const closed = await waitFor(sock, 'close', 2000).catch(() => undefined);
    expect(sock.state).toBe('closed');
    const f = sock.stats().lastFailure!;
    expect(['broken-pipe', 'reset', 'peer-closed']).toContain(f.kind);
    if (f.kind === 'broken-pipe') expect(f.diagnosis.cause).toBe('write-after-reset');
    expect(closed === undefined || closed.reason === 'gave-up').toBe(true);
  });

  it('refused from the first attempt is peer-down; after the peer was up it is peer-restarting, then back', async () => {
    const port = await freePort();
    const sock = client({ port, host: '127.0.0.1', reconnect: { minDelay: 20, maxDelay: 50, stableAfter: 0 } });
    const down = await waitFor(sock, 'failure', 2000);
    expect(down).toMatchObject({ kind: 'refused', code: 'ECONNREFUSED', phase: 'connect' });
    expect(down.diagnosis.cause).toBe('peer-down');

    const srv = await listen(() => {}, port);
    const up = await waitFor(sock, 'connect', 3000);
    expect(up.attempt).toBeGreaterThan(1);
    // Restart: the listener goes away together with the connection.
    await srv.close();
    const lost = await waitFor(sock, 'disconnect', 2000);
    expect(['peer-closed', 'reset']).toContain(lost.kind);
    const refused = await waitFor(sock, 'failure', 2000, (f) => f.kind === 'refused');
    expect(refused.diagnosis.cause).toBe('peer-restarting');
    const srv2 = await listen(() => {}, port);
    cleanups.push(() => srv2.close());
    const back = await waitFor(sock, 'connect', 3000);
    expect(back.reconnected).toBe(true);
    expect(back.downtime).toBeGreaterThan(0);
  });

  it('a failing onConnect is a handshake failure; a slow one times out within connectTimeout', async () => {
    const srv = await server();
    const sock = client({
      port: srv.port,
      reconnect: false,
      onConnect: () => {
        throw new Error('auth rejected');
      },
    });
    const closed = await waitFor(sock, 'close', 2000);
    expect(closed.reason).toBe('gave-up');
    expect(closed.failure).toMatchObject({ kind: 'handshake', phase: 'handshake', message: 'auth rejected' });
    expect(closed.failure!.diagnosis.cause).toBe('peer-rejected');

    let aborted = false;
    const slow = client({
      port: srv.port,
      reconnect: false,
      connectTimeout: 150,
      onConnect: (_s, signal) =>
        new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          });
        }),
    });
    const t0 = performance.now();
    const c2 = await waitFor(slow, 'close', 2000);
    expect(performance.now() - t0).toBeLessThan(150 + 1000);
    expect(c2.failure).toMatchObject({ kind: 'connect-timeout', phase: 'handshake', code: 'ERR_RESOCK_HANDSHAKE_TIMEOUT' });
    expect(aborted).toBe(true);
  });

  it('no listeners at all: failures never crash the process', async () => {
    const port = await freePort();
    const sock = new ResilientSocket({ port, reconnect: { retries: 2, minDelay: 1, maxDelay: 5 }, keepAlive: false });
    sock.connect();
    await sock.ready().catch(() => undefined);
    expect(sock.state).toBe('closed');
    expect(sock.stats()).toMatchObject({ attempts: 3, failures: { refused: 3 } });
  });
});

describe('reconnect', () => {
  it('rotates endpoints on failure', async () => {
    const dead = await freePort();
    const srv = await server();
    const sock = client({ endpoints: [{ host: '127.0.0.1', port: dead }, { host: '127.0.0.1', port: srv.port }], reconnect: fast });
    const f = await waitFor(sock, 'failure', 2000);
    expect(f.endpoint).toEqual({ host: '127.0.0.1', port: dead });
    const c = await waitFor(sock, 'connect', 2000);
    expect(c.endpoint).toEqual({ host: '127.0.0.1', port: srv.port });
  });

  it('gives up after `retries` and closes with gave-up', async () => {
    const port = await freePort();
    const sock = client({ port, reconnect: { retries: 3, minDelay: 5, maxDelay: 10 } });
    const reconnecting = record(sock, ['reconnecting']);
    const closed = await waitFor(sock, 'close', 3000);
    expect(closed.reason).toBe('gave-up');
    expect(closed.failure?.kind).toBe('refused');
    expect(reconnecting.map((e) => (e.arg as { attempt: number }).attempt)).toEqual([2, 3, 4]);
    expect(sock.stats().attempts).toBe(4);
  });

  it('shouldReconnect can stop the loop', async () => {
    const port = await freePort();
    const seen: string[] = [];
    const sock = client({ port, reconnect: { minDelay: 5, shouldReconnect: (f) => (seen.push(f.kind), false) } });
    const closed = await waitFor(sock, 'close', 2000);
    expect(closed.reason).toBe('gave-up');
    expect(seen).toEqual(['refused']);
  });

  it('maxElapsed bounds a run of failures', async () => {
    const port = await freePort();
    const sock = client({ port, reconnect: { minDelay: 20, maxDelay: 20, jitter: 'none', maxElapsed: 300 } });
    const t0 = performance.now();
    const closed = await waitFor(sock, 'close', 3000);
    expect(closed.reason).toBe('gave-up');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(performance.now() - t0).toBeLessThan(300 + 1500);
  });

  it('a server that accepts and drops at once cannot cause a tight loop (stableAfter)', async () => {
    let accepted = 0;
    const srv = await server((s) => {
      accepted++;
      s.destroy();
    });
    const minDelay = 40;
    const sock = client({ port: srv.port, reconnect: { minDelay, maxDelay: 2000, factor: 2, jitter: 'none', stableAfter: 1000 } });
    const failures: Failure[] = [];
    sock.on('disconnect', (f) => failures.push(f));
    await sleep(1000);
    // Without jitter the delays are 40, 80, 160, 320, 640 ms: at most 5 or 6 connections fit in one second.
    expect(accepted).toBeGreaterThanOrEqual(3);
    expect(accepted).toBeLessThanOrEqual(6);
    const late = failures.slice(2);
    expect(late.length).toBeGreaterThan(0);
    for (const f of late) expect(f.diagnosis.cause).toBe('peer-rejected');
  });

  it('a connection that stayed up stableAfter resets the backoff', async () => {
    const conns: net.Socket[] = [];
    const srv = await server((s) => conns.push(s));
    const sock = client({ port: srv.port, reconnect: { minDelay: 10, maxDelay: 10, jitter: 'none', stableAfter: 100 } });
    await waitFor(sock, 'connect', 2000);
    await sleep(200);
    conns.at(-1)!.resetAndDestroy();
    const r = await waitFor(sock, 'reconnecting', 2000);
    expect(r.attempt).toBe(1);
    expect(r.delay).toBe(10);
    // The failure belongs to the attempt that opened the lost connection.
    expect(r.failure.attempt).toBe(1);
  });
});

describe('closing', () => {
  it('close() is graceful: written bytes arrive, FIN is sent, state closed, close event once', async () => {
    const received: Buffer[] = [];
    let ended = false;
    const srv = await server((s) => {
      s.on('data', (d) => received.push(d));
      s.on('end', () => (ended = true));
    });
    const sock = client({ port: srv.port });
    await sock.ready();
    const closes = record(sock, ['close']);
    sock.write(Buffer.alloc(200_000, 7));
    await sock.close();
    await sleep(20);
    expect(sock.state).toBe('closed');
    expect(ended).toBe(true);
    expect(Buffer.concat(received).length).toBe(200_000);
    expect(closes).toHaveLength(1);
    expect(closes[0]!.arg).toEqual({ reason: 'closed' });
    await sock.close();
    expect(closes).toHaveLength(1);
  });

  it('close and abort leave no handle or timer behind', async () => {
    // The server reads, so it sees our FIN and closes its side too.
    const srv = await server((s) => s.resume());
    const port = await freePort();
    const baseline = activeResources();
    const a = connect({ port: srv.port, heartbeat: { ping: 'p', interval: 50, timeout: 50 }, offlineQueue: { maxAge: 10_000 } });
    await a.ready();
    a.write('queued? no, open');
    await a.close();

    const ac = new AbortController();
    const b = connect({ port, signal: ac.signal, reconnect: { minDelay: 1000 } });
    b.write('waits in the queue');
    await waitFor(b, 'reconnecting', 2000);
    ac.abort();
    expect(b.state).toBe('closed');
    expect(b.stats().queuedWrites).toBe(0);

    const c = connect({ port, reconnect: { minDelay: 1000 } });
    await waitFor(c, 'reconnecting', 2000);
    c.destroy();

    expect(await settleResources(baseline)).toEqual([]);
  });

  it('abort closes for good with reason aborted', async () => {
    const srv = await server();
    const ac = new AbortController();
    const sock = client({ port: srv.port, signal: ac.signal });
    await sock.ready();
    const closed = waitFor(sock, 'close', 1000);
    ac.abort();
    expect((await closed).reason).toBe('aborted');
    await expect(sock.ready()).rejects.toMatchObject({ code: 'ERR_RESOCK_CLOSED' });
  });

  it('a pre-aborted signal closes on connect()', async () => {
    const ac = new AbortController();
    ac.abort();
    const sock = new ResilientSocket({ port: 1, signal: ac.signal });
    sock.connect();
    expect(sock.state).toBe('closed');
  });

  it('writes after close fail with ERR_RESOCK_CLOSED', async () => {
    const srv = await server();
    const sock = client({ port: srv.port });
    await sock.ready();
    await sock.close();
    await expect(sock.send('late')).rejects.toMatchObject({ code: 'ERR_RESOCK_CLOSED' });
    expect(sock.write('late')).toBe(false);
  });
});
