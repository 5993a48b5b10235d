// The core's promises against ordinary and careless use: write() like net.Socket, writes whole across connections,
// honest backpressure, a bounded offline queue, no spinning, and a lifecycle no caller can strand.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect, lines, ResockError, type Failure, type ResilientSocket } from '../src/index.js';
import { WRITE_OVERHEAD } from '../src/queue.js';
import { freePort, harness, pattern, sleep, type TestServer, until, waitFor } from './support/net.js';

const { client, server, defer } = harness({ reconnect: { minDelay: 20, maxDelay: 100 } });

/** A server that keeps what each of its connections received. */
async function recorder(port?: number): Promise<TestServer & { received: Buffer[][] }> {
  const received: Buffer[][] = [];
  const srv = await server((s) => {
    const mine: Buffer[] = [];
    received.push(mine);
    s.on('data', (d) => mine.push(d));
  }, port);
  return Object.assign(srv, { received });
}

const joined = (chunks: Buffer[] | undefined): Buffer => Buffer.concat(chunks ?? []);

describe('write() takes what net.Socket#write takes', () => {
  it('an encoding, with and without a callback, open and queued; the callback runs once', async () => {
    const port = await freePort();
    const sock = client({ port });
    const calls: string[] = [];
    // Queued: the server is not there yet.
    expect(sock.write('68656c6c6f', 'hex', (err) => calls.push(`hex:${err ?? 'ok'}`))).toBe(true);
    sock.write('IHdvcmxk', 'base64');
    const rec = await recorder(port);
    await waitFor(sock, 'connect', 3000);
    // Open.
    sock.write('x', 'utf8', (err) => calls.push(`utf8:${err ?? 'ok'}`));
    sock.write('\u00e9', 'latin1', (err) => calls.push(`latin1:${err ?? 'ok'}`));
    await sock.send('21', 'hex');
    await until(() => joined(rec.received[0]).length >= 14, 2000);
    expect(joined(rec.received[0])).toEqual(Buffer.concat([Buffer.from('hello worldx'), Buffer.from([0xe9, 0x21])]));
    expect(calls).toEqual(['hex:ok', 'utf8:ok', 'latin1:ok']);
  });

  it('an empty write completes like any other; a huge one arrives whole', async () => {
    const rec = await recorder();
    const sock = client({ port: rec.port });
    await waitFor(sock, 'connect', 2000);
    await expect(sock.send('')).resolves.toBeUndefined();
    await expect(sock.send(Buffer.alloc(0))).resolves.toBeUndefined();
    const big = pattern(0, 16 * 1024 * 1024);
    await sock.send(big);
    await until(() => joined(rec.received[0]).length >= big.length, 10_000, '16 MiB');
    expect(joined(rec.received[0]).equals(big)).toBe(true);
  });

  it('bad arguments throw a TypeError at once and lose nothing written before', async () => {
    const rec = await recorder();
    const sock = client({ port: rec.port });
    await waitFor(sock, 'connect', 2000);
    sock.write('a');
    const bad: Array<() => unknown> = [
      () => sock.write(123 as unknown as string),
      () => sock.write(null as unknown as string),
      () => sock.write({} as unknown as string),
      () => sock.write('x', 'klingon' as BufferEncoding),
      () => sock.write('x', 'utf8', 'cb' as unknown as () => void),
      () => sock.write('x', (() => {}) as never, (() => {}) as never),
      () => sock.write(Buffer.from('x'), 5 as unknown as BufferEncoding),
    ];
    for (const call of bad) {
      let thrown: unknown;
      try {
        call();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(TypeError);
      expect((thrown as { code?: string }).code).toMatch(/^ERR_(INVALID_ARG_TYPE|UNKNOWN_ENCODING)$/);
    }
    await sock.send('b');
    await until(() => joined(rec.received[0]).length >= 2, 1000);
    expect(String(joined(rec.received[0]))).toBe('ab');
  });

  it('a frame the framing refuses goes to the callback (or send() rejects); write() does not throw then', async () => {
    const rec = await recorder();
    const sock = client({ port: rec.port, framing: lines() });
    await waitFor(sock, 'connect', 2000);
    const err = await new Promise<Error | null | undefined>((resolve) => {
      expect(() => sock.write('two\nlines', resolve)).not.toThrow();
    });
    expect(err).toBeInstanceOf(ResockError);
    await expect(sock.send('a\nb')).rejects.toBeInstanceOf(ResockError);
    // Without a callback nothing else could report it: the caller learns at once.
    expect(() => sock.write('a\nb')).toThrow(ResockError);
    await sock.send('fine');
    await until(() => joined(rec.received[0]).length >= 5, 1000);
    expect(String(joined(rec.received[0]))).toBe('fine\n');
  });
});

/** A server in another process, so this process's event loop can be blocked while the peer's reset arrives. */
async function childServer(): Promise<{ port: number; child: ChildProcess; received: () => Promise<string[]> }> {
  const script = `
    const net = require('node:net');
    const got = [];
    let n = 0;
    const srv = net.createServer((s) => {
      const i = n++;
      got[i] = [];
      s.on('error', () => {});
      s.on('data', (d) => {
        got[i].push(d.toString('latin1'));
        if (i === 0 && got[0].join('').includes('reset\\n')) s.resetAndDestroy();
      });
    });
    srv.listen(0, '127.0.0.1', () => process.stdout.write(srv.address().port + '\\n'));
    process.stdin.on('data', () => process.stdout.write(JSON.stringify(got.map((c) => c.join(''))) + '\\n'));
    setTimeout(() => process.exit(0), 20000).unref();
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  defer(() => child.kill('SIGKILL'));
  const lines: string[] = [];
  let buf = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (d) => {
    buf += String(d);
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const nextLine = async (): Promise<string> => {
    const want = lines.length + 1;
    const deadline = performance.now() + 5000;
    while (lines.length < want) {
      if (performance.now() > deadline) throw new Error('child server did not answer');
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return lines[want - 1]!;
  };
  const port = Number(await nextLine());
  return {
    port,
    child,
    received: async () => {
      const line = nextLine();
      child.stdin!.write('?\n');
      return JSON.parse(await line) as string[];
    },
  };
}

function blockFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* blocked on purpose: the peer's reset lands in the kernel unread */
  }
}

describe('writes are whole across connections', () => {
  for (const withCallback of [true, false]) {
    it(`a write whose syscall fails (reset already in the kernel) is resent whole, never counted as sent (${withCallback ? 'with' : 'without'} callback)`, async () => {
      const peer = await childServer();
      const sock = client({ port: peer.port, reconnect: { minDelay: 10, stableAfter: 0 } });
      await waitFor(sock, 'connect', 2000);
      const lost = waitFor(sock, 'disconnect', 3000);
      sock.write('reset\n');
      blockFor(300);
      const payload = 'P'.repeat(1000);
      const calls: Array<Error | null | undefined> = [];
      if (withCallback) sock.write(payload, (err) => calls.push(err));
      else sock.write(payload);
      const f: Failure = await lost;
      expect(f.kind).toBe('reset');
      expect(f.writes).toEqual({ confirmedBytes: 0, unconfirmedBytes: 'reset\n'.length, requeuedBytes: payload.length });
      await waitFor(sock, 'connect', 3000);
      await until(() => !withCallback || calls.length > 0, 2000, 'the callback');
      let got: string[] = [];
      await until(() => false, 0).catch(() => {});
      const deadline = performance.now() + 3000;
      do {
        got = await peer.received();
      } while ((got[1] ?? '').length < payload.length && performance.now() < deadline);
      expect(got[1]).toBe(payload);
      if (withCallback) {
        expect(calls).toHaveLength(1);
        expect(calls[0]).toBeFalsy();
      }
    });
  }

  it('a large write cut by a reset starts over from its first byte on the next connection, never with its tail', async () => {
    let first: net.Socket | undefined;
    const received: Buffer[][] = [];
    const srv = await server((s) => {
      const mine: Buffer[] = [];
      received.push(mine);
      if (received.length === 1) {
        first = s;
        s.pause();
      } else {
        s.on('data', (d) => mine.push(d));
      }
    });
    const sock = client({ port: srv.port, reconnect: { minDelay: 10, stableAfter: 0 }, offlineQueue: { maxBytes: 64 << 20 } });
    await waitFor(sock, 'connect', 2000);
    const big = pattern(0, 16 * 1024 * 1024);
    const small = Buffer.from('after');
    let bigDone = 0;
    sock.write(big, () => bigDone++);
    sock.write(small);
    await until(() => first !== undefined, 1000);
    // Let part of it into the kernels, then reset: the write is cut in the middle.
    await sleep(100);
    const lost = waitFor(sock, 'disconnect', 2000);
    first!.resetAndDestroy();
    const f = await lost;
    expect(f.writes!.requeuedBytes).toBe(big.length + small.length);
    await waitFor(sock, 'connect', 3000);
    await until(() => joined(received[1]).length >= big.length + small.length, 10_000, 'the resent write');
    const got = joined(received[1]);
    expect(got.subarray(0, 16).equals(big.subarray(0, 16))).toBe(true);
    expect(got.equals(Buffer.concat([big, small]))).toBe(true);
    expect(bigDone).toBe(1);
  });
});

describe('cork() keeps a message written in pieces together', () => {
  async function pingedLineServer(): Promise<TestServer & { received: () => string }> {
    let all = '';
    const srv = await server((s) => s.on('data', (d) => (all += String(d))));
    return Object.assign(srv, { received: () => all });
  }

  it('without cork a heartbeat ping may come between two writes; with cork it never does', async () => {
    const srv = await pingedLineServer();
    const sock = client({ port: srv.port, heartbeat: { interval: 20, timeout: 5000, ping: 'PING\n' } });
    await waitFor(sock, 'connect', 2000);
    // The rule, shown: separate writes 100 ms apart get a ping between them.
    sock.write('SET a ');
    await sleep(100);
    sock.write('1\n');
    await until(() => srv.received().includes('1\n'), 1000);
    expect(srv.received()).toMatch(/SET a PING\n/);

    sock.cork();
    sock.write('SET b ');
    await sleep(100);
    sock.write('2\n');
    sock.uncork();
    await until(() => srv.received().includes('2\n'), 1000);
    expect(srv.received()).toContain('SET b 2\n');
  });

  it('corked writes are resent together after a reset, and their callbacks run once', async () => {
    const port = await freePort();
    const sock = client({ port });
    const done: string[] = [];
    sock.cork();
    sock.write('one ', () => done.push('one'));
    sock.write('two\n', () => done.push('two'));
    expect(sock.stats().queuedWrites).toBe(0);
    sock.uncork();
    expect(sock.stats().queuedWrites).toBe(1);
    const rec = await recorder(port);
    await waitFor(sock, 'connect', 3000);
    await until(() => done.length === 2, 1000);
    expect(String(joined(rec.received[0]))).toBe('one two\n');
  });

  it('close() sends what is corked; destroy() reports it', async () => {
    const rec = await recorder();
    const a = client({ port: rec.port });
    await waitFor(a, 'connect', 2000);
    a.cork();
    a.write('kept\n');
    await a.close();
    await until(() => joined(rec.received[0]).length > 0, 1000);
    expect(String(joined(rec.received[0]))).toBe('kept\n');

    const b = client({ port: rec.port });
    await waitFor(b, 'connect', 2000);
    b.cork();
    const p = b.send('dropped\n');
    b.destroy();
    await expect(p).rejects.toMatchObject({ code: 'ERR_RESOCK_CLOSED' });
  });
});

describe('backpressure is honest', () => {
  it("write() answering false is followed by 'drain' when the queue is refused, after the reconnect", async () => {
    const port = await freePort();
    const sock = client({ port, offlineQueue: { maxBytes: 2 * (100 + WRITE_OVERHEAD) } });
    let drains = 0;
    sock.on('drain', () => drains++);
    expect(sock.write(Buffer.alloc(100))).toBe(true);
    expect(sock.write(Buffer.alloc(100))).toBe(true);
    const refused = sock.send(Buffer.alloc(100));
    await expect(refused).rejects.toMatchObject({ code: 'ERR_RESOCK_QUEUE_FULL' });
    expect(sock.write(Buffer.alloc(100))).toBe(false);
    await server(undefined, port);
    await waitFor(sock, 'connect', 3000);
    await until(() => drains > 0, 1000, "'drain'");
    expect(drains).toBe(1);
  });

  it("queued writes past the high-water mark answer false, and 'drain' follows the flush", async () => {
    const port = await freePort();
    const sock = client({ port });
    const answers: boolean[] = [];
    for (let i = 0; i < 40; i++) answers.push(sock.write(Buffer.alloc(1024)));
    expect(answers[0]).toBe(true);
    expect(answers.at(-1)).toBe(false);
    const drained = waitFor(sock, 'drain', 3000);
    await recorder(port);
    await drained;
  });

  it('offlineQueue: false buffers writes made during the first dial, like net.Socket, and refuses them once it is lost', async () => {
    const rec = await recorder();
    const sock = client({ port: rec.port, offlineQueue: false });
    const hello = sock.send('CONNECT\n');
    await waitFor(sock, 'connect', 2000);
    await expect(hello).resolves.toBeUndefined();
    await until(() => joined(rec.received[0]).length > 0, 1000);
    expect(String(joined(rec.received[0]))).toBe('CONNECT\n');
    const lost = waitFor(sock, 'disconnect', 2000);
    for (const s of rec.sockets) s.resetAndDestroy();
    await lost;
    await expect(sock.send('late')).rejects.toMatchObject({ code: 'ERR_RESOCK_NOT_OPEN' });
  });
});

describe('the offline queue is bounded in memory, and its flush does not block for long', () => {
  it('maxBytes counts a per-write overhead: empty writes are bounded too, and maxBytes 0 refuses them', async () => {
    const port = await freePort();
    const zero = client({ port, offlineQueue: { maxBytes: 0 } });
    await expect(zero.send('')).rejects.toMatchObject({ code: 'ERR_RESOCK_QUEUE_FULL' });

    const sock = client({ port, reconnect: { minDelay: 60_000 } });
    let accepted = 0;
    for (let i = 0; i < 1_000_000; i++) {
      if (!sock.write('x', noop)) {
        if (sock.stats().queuedWrites === accepted) break;
      }
      accepted = sock.stats().queuedWrites;
    }
    const defaults = sock.options.offlineQueue as { maxBytes: number; maxWrites: number };
    expect(accepted).toBeLessThanOrEqual(Math.min(defaults.maxWrites, Math.floor(defaults.maxBytes / (1 + WRITE_OVERHEAD))));
    expect(accepted).toBeGreaterThan(0);
  });

  it('a full queue of small writes flushes in one go without blocking the event loop for long', async () => {
    const port = await freePort();
    const sock = client({ port });
    const { maxWrites, maxBytes } = sock.options.offlineQueue as { maxWrites: number; maxBytes: number };
    const fits = Math.min(maxWrites, Math.floor(maxBytes / (1 + WRITE_OVERHEAD)));
    for (let i = 0; i < fits + 100; i++) sock.write('y', noop);
    expect(sock.stats().queuedWrites).toBe(fits);
    let longest = 0;
    let last = performance.now();
    const probe = setInterval(() => {
      const t = performance.now();
      longest = Math.max(longest, t - last);
      last = t;
    }, 1);
    defer(() => clearInterval(probe));
    const rec = await recorder(port);
    await waitFor(sock, 'connect', 3000);
    await until(() => joined(rec.received[0]).length >= fits, 5000);
    // About a microsecond per queued write; 250 ms leaves room for a loaded machine.
    expect(longest).toBeLessThan(250);
  });
});

describe('never spins, never strands', () => {
  it('minDelay 0 against a refused port: a handful of dials, not hundreds', async () => {
    const port = await freePort();
    const sock = client({ port, reconnect: { minDelay: 0, maxDelay: 0 } });
    let dials = 0;
    sock.on('connecting', () => dials++);
    await sleep(1000);
    // From the second retry on each waits at least 10 ms: at most ~100 a second, however the options are set.
    expect(dials).toBeLessThanOrEqual(101);
    expect(dials).toBeGreaterThan(1);
  });

  it('close() from a connecting listener cancels that dial: the server never sees it, onConnect never runs', async () => {
    let accepted = 0;
    const srv = await server(() => accepted++);
    let handshakes = 0;
    const sock = client({ port: srv.port, onConnect: () => void handshakes++ });
    sock.once('connecting', () => void sock.close());
    await waitFor(sock, 'close', 2000);
    await sleep(100);
    expect(accepted).toBe(0);
    expect(handshakes).toBe(0);
  });

  it('destroy() from a connecting listener too', async () => {
    let accepted = 0;
    const srv = await server(() => accepted++);
    const sock = client({ port: srv.port });
    sock.once('connecting', () => sock.destroy());
    await waitFor(sock, 'close', 2000);
    await sleep(100);
    expect(accepted).toBe(0);
  });

  it('awaiting a write through the socket inside onConnect fails at once as the application bug it is, never blamed on the peer', async () => {
    const srv = await server();
    const sock = client({
      port: srv.port,
      connectTimeout: 5000,
      onConnect: async () => {
        await sock.send('AUTH\n');
      },
    });
    const t0 = performance.now();
    const f = await waitFor(sock, 'failure', 2000);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(f).toMatchObject({ code: 'ERR_RESOCK_CALLBACK', retryable: false });
    expect(f.diagnosis.cause).not.toBe('peer-unresponsive');
    expect(f.message).toMatch(/socket onConnect receives/);
    await until(() => sock.state === 'closed', 1000);
  });

  it('a pre-aborted signal closes asynchronously: listeners attached after connect() hear it, ready() rejects', async () => {
    const port = await freePort();
    const ac = new AbortController();
    ac.abort(new Error('shutting down'));
    const sock = client({ port, signal: ac.signal });
    const closes: string[] = [];
    sock.on('close', ({ reason }) => closes.push(reason));
    expect(sock.state).toBe('closed');
    const ready = sock.ready();
    await expect(ready).rejects.toMatchObject({ code: 'ERR_RESOCK_ABORTED' });
    await sleep(10);
    expect(closes).toEqual(['aborted']);
  });

  it('one AbortSignal shared by 50 sockets: no MaxListenersExceededWarning, and it closes them all', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    defer(() => process.off('warning', onWarning));
    const srv = await server();
    const ac = new AbortController();
    const socks = Array.from({ length: 50 }, () => client({ port: srv.port, signal: ac.signal }));
    await Promise.all(socks.map((s) => s.ready()));
    // A socket closed before the abort stops listening: closing one must not disturb the others.
    await socks[0]!.close();
    ac.abort();
    await until(() => socks.every((s) => s.state === 'closed'), 2000);
    await sleep(10);
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('stats().bytesWritten never goes negative when onConnect writes a lot straight to the socket', async () => {
    const srv = await server((s) => s.pause());
    let inHandshake = 0;
    const sock = client({
      port: srv.port,
      onConnect: (raw) => {
        const big = Buffer.alloc(16 * 1024 * 1024);
        inHandshake = big.length;
        raw.write(big);
      },
    });
    await waitFor(sock, 'connect', 3000);
    const s = sock.stats();
    expect(s.bytesWritten).toBeGreaterThanOrEqual(0);
    expect(s.bytesWritten).toBeLessThanOrEqual(inHandshake);
  });
});

function noop(): void {}
