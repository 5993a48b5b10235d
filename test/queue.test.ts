import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WRITE_OVERHEAD } from '../src/queue.js';
import { connect, lengthPrefixed, type Failure, type ResilientSocket } from '../src/index.js';
import { freePort, listen, pattern, sleep, waitFor, type TestServer } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function client(opts: Parameters<typeof connect>[0]): ResilientSocket {
  const sock = connect({ keepAlive: false, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

async function collectingServer(port = 0): Promise<TestServer & { received: () => Buffer }> {
  const chunks: Buffer[] = [];
  const srv = await listen((s) => s.on('data', (d) => chunks.push(d)), port);
  cleanups.push(() => srv.close());
  return Object.assign(srv, { received: () => Buffer.concat(chunks) });
}

describe('offline queue', () => {
  it('holds writes while down and flushes them in order after connect, before later writes', async () => {
    const port = await freePort();
    const sock = client({ port, host: '127.0.0.1', reconnect: { minDelay: 20, maxDelay: 50, stableAfter: 0 } });
    const results: Array<string> = [];
    for (let i = 0; i < 5; i++) sock.write(`m${i};`, (err) => results.push(err ? `err${i}` : `ok${i}`));
    expect(sock.stats()).toMatchObject({ queuedWrites: 5, queuedBytes: 15 });
    await waitFor(sock, 'failure', 2000);
    const srv = await collectingServer(port);
    sock.once('connect', () => sock.write('after;'));
    await waitFor(sock, 'connect', 3000);
    await sleep(100);
    expect(srv.received().toString()).toBe('m0;m1;m2;m3;m4;after;');
    expect(results).toEqual(['ok0', 'ok1', 'ok2', 'ok3', 'ok4']);
    expect(sock.stats().queuedWrites).toBe(0);
  });

  it("overflow 'reject' refuses the new write with ERR_RESOCK_QUEUE_FULL and keeps the old ones", async () => {
    const port = await freePort();
    // Room for 10 bytes of payload in 3 writes, each write also costing WRITE_OVERHEAD.
    const sock = client({ port, offlineQueue: { maxBytes: 10 + 3 * WRITE_OVERHEAD, maxWrites: 3 }, reconnect: { minDelay: 1000 } });
    const errs: Record<string, string> = {};
    const note = (k: string) => (err?: Error | null) => (errs[k] = err ? (err as unknown as { code: string }).code : 'ok');
    expect(sock.write('aaaa', note('a'))).toBe(true);
    expect(sock.write('bbbb', note('b'))).toBe(true);
    expect(sock.write('cccc', note('c'))).toBe(false);
    expect(sock.write('dd', note('d'))).toBe(true);
    expect(sock.write('e', note('e'))).toBe(false);
    expect(sock.write('x'.repeat(11 + 3 * WRITE_OVERHEAD), note('big'))).toBe(false);
    await sleep(10);
    expect(errs).toEqual({ c: 'ERR_RESOCK_QUEUE_FULL', e: 'ERR_RESOCK_QUEUE_FULL', big: 'ERR_RESOCK_QUEUE_FULL' });
    expect(sock.stats()).toMatchObject({ queuedWrites: 3, queuedBytes: 10 });
    sock.destroy();
    await sleep(10);
    expect(errs).toMatchObject({ a: 'ERR_RESOCK_CLOSED', b: 'ERR_RESOCK_CLOSED', d: 'ERR_RESOCK_CLOSED' });
  });

  it("overflow 'drop-oldest' drops the oldest with ERR_RESOCK_DROPPED", async () => {
    const port = await freePort();
    const sock = client({ port, offlineQueue: { maxBytes: 8 + 2 * WRITE_OVERHEAD, overflow: 'drop-oldest' }, reconnect: { minDelay: 1000 } });
    const sendA = sock.send('aaaa');
    const sendB = sock.send('bbbb');
    const sendC = sock.send('cccc');
    await expect(sendA).rejects.toMatchObject({ code: 'ERR_RESOCK_DROPPED' });
    expect(sock.stats()).toMatchObject({ queuedWrites: 2, queuedBytes: 8 });
    sock.destroy();
    await expect(sendB).rejects.toMatchObject({ code: 'ERR_RESOCK_CLOSED' });
    await expect(sendC).rejects.toMatchObject({ code: 'ERR_RESOCK_CLOSED' });
  });

  it('expires writes older than maxAge with ERR_RESOCK_EXPIRED, by its own timer', async () => {
    const port = await freePort();
    const sock = client({ port, offlineQueue: { maxAge: 100 }, reconnect: { minDelay: 5000, maxDelay: 5000, jitter: 'none' } });
    const t0 = performance.now();
    const p = sock.send('stale');
    await expect(p).rejects.toMatchObject({ code: 'ERR_RESOCK_EXPIRED' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
    expect(performance.now() - t0).toBeLessThan(100 + 1000);
    expect(sock.stats().queuedWrites).toBe(0);
  });

  it('offlineQueue: false refuses writes once the first dial failed, with ERR_RESOCK_NOT_OPEN', async () => {
    const port = await freePort();
    const sock = client({ port, offlineQueue: false, reconnect: { minDelay: 1000 } });
    // Made during the first dial: it waits for it, and is refused with it.
    const early = sock.send('x');
    await expect(early).rejects.toMatchObject({ code: 'ERR_RESOCK_NOT_OPEN' });
    expect(sock.state).toBe('reconnecting');
    await expect(sock.send('y')).rejects.toMatchObject({ code: 'ERR_RESOCK_NOT_OPEN' });
  });
});

/** A server that never reads, so the client's kernel and Node buffers fill; victim() is its latest connection. */
async function stallingServer(): Promise<TestServer & { victim: () => net.Socket | undefined }> {
  let victim: net.Socket | undefined;
  const srv = await listen((s) => {
    s.pause();
    victim = s;
  });
  cleanups.push(() => srv.close());
  return Object.assign(srv, { victim: () => victim });
}

describe('writes never reach the kernel are requeued: no loss, no duplicate', () => {
  it('after a reset with a full send buffer, the next connection gets exactly the unsent tail', async () => {
    // First server: never reads, so the client's kernel and Node buffers fill; then it resets.
    const stall = await stallingServer();
    const port = stall.port;
    const sock = client({ port, host: '127.0.0.1', reconnect: { minDelay: 50, maxDelay: 100, stableAfter: 0 }, offlineQueue: { maxBytes: 64 << 20 } });
    await waitFor(sock, 'connect', 2000);

    const chunk = 64 * 1024;
    const total = 12 * 1024 * 1024;
    let callbacksOk = 0;
    let callbacksErr = 0;
    const calls = new Map<number, string[]>();
    for (let off = 0; off < total; off += chunk) {
      sock.write(pattern(off, chunk), (err) => {
        calls.set(off / chunk, [...(calls.get(off / chunk) ?? []), err ? 'error' : 'ok']);
        if (err) callbacksErr++;
        else callbacksOk++;
      });
    }
    await sleep(200);
    const lost = waitFor(sock, 'disconnect', 2000);
    // Free the port for the second server before the reset so the reconnect lands there.
    stall.server.close();
    stall.victim()!.resetAndDestroy();
    const f: Failure = await lost;
    expect(f.kind).toBe('reset');
    const w = f.writes!;
    expect(w.confirmedBytes + w.unconfirmedBytes + w.requeuedBytes).toBe(total);
    expect(w.requeuedBytes).toBeGreaterThan(0);
    expect(w.unconfirmedBytes).toBeGreaterThan(0);
    expect(sock.stats().queuedBytes).toBe(w.requeuedBytes);

    const chunks: Buffer[] = [];
    const next = await listen((s) => s.on('data', (d) => chunks.push(d)), port);
    cleanups.push(() => next.close());
    await waitFor(sock, 'connect', 3000);
    const deadline = performance.now() + 5000;
    while (Buffer.concat(chunks).length < w.requeuedBytes && performance.now() < deadline) await sleep(20);
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(w.requeuedBytes);
    expect(got.equals(pattern(total - w.requeuedBytes, w.requeuedBytes))).toBe(true);
    await sleep(50);
    // Every write callback ran exactly once, and none failed: requeued ones completed on the new connection.
    expect([...calls].filter(([, v]) => v.length !== 1)).toEqual([]);
    expect(callbacksOk + callbacksErr).toBe(total / chunk);
    expect(callbacksErr).toBe(0);
  });

  it('with framing, a frame cut by the reset is sent again whole on the next connection', async () => {
    const stall = await stallingServer();
    const port = stall.port;
    const codec = lengthPrefixed({ bytes: 4, maxLength: 1 << 20 });
    const sock = client({ port, host: '127.0.0.1', framing: codec, reconnect: { minDelay: 50, stableAfter: 0 }, offlineQueue: { maxBytes: 64 << 20 } });
    await waitFor(sock, 'connect', 2000);
    const frames = 200;
    const size = 50_000;
    for (let i = 0; i < frames; i++) sock.write(Buffer.alloc(size, i & 255));
    await sleep(200);
    stall.server.close();
    const lost = waitFor(sock, 'disconnect', 2000);
    stall.victim()!.resetAndDestroy();
    const f = await lost;
    const w = f.writes!;
    const wire = size + 4;
    expect(w.confirmedBytes + w.unconfirmedBytes + w.requeuedBytes).toBe(frames * wire);
    expect(w.requeuedBytes % wire).toBe(0);

    const got: Buffer[] = [];
    const next = await listen((s) => {
      const dec = codec.decoder();
      s.on('data', (d) => dec.push(d, (fr: Buffer) => got.push(Buffer.from(fr))));
    }, port);
    cleanups.push(() => next.close());
    await waitFor(sock, 'connect', 3000);
    const want = w.requeuedBytes / wire;
    const deadline = performance.now() + 5000;
    while (got.length < want && performance.now() < deadline) await sleep(20);
    expect(got.length).toBe(want);
    const firstIndex = frames - want;
    got.forEach((fr, k) => {
      expect(fr.length).toBe(size);
      expect(fr[0]).toBe((firstIndex + k) & 255);
    });
  });
});
