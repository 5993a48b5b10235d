import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createEchoServer,
  createFaultProxy,
  createHeartbeatServer,
  type FaultProxy,
  type ProxyConnection,
} from '../src/testing/index.js';
import { createPingMatcher } from '../src/testing/servers.js';

const HOST = '127.0.0.1';
// How long "nothing arrives" is watched for; loopback round trips take well under 1 ms.
const QUIET_MS = 300;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function echoProxy(): Promise<{ proxy: FaultProxy; echo: Awaited<ReturnType<typeof createEchoServer>> }> {
  const echo = await createEchoServer();
  cleanups.push(() => echo.close());
  const proxy = await createFaultProxy({ target: echo });
  cleanups.push(() => proxy.close());
  return { proxy, echo };
}

interface Client {
  socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  chunks: Buffer[];
  error: Promise<NodeJS.ErrnoException>;
  ended: Promise<void>;
  closed: Promise<void>;
}

function watch(socket: Socket): Client {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const error = new Promise<NodeJS.ErrnoException>((resolve) => socket.on('error', resolve));
  const ended = new Promise<void>((resolve) => socket.on('end', resolve));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  cleanups.push(async () => {
    socket.destroy();
    await closed;
  });
  return { socket, chunks, received: () => Buffer.concat(chunks), error, ended, closed };
}

/** Connects through the proxy and returns the client together with the proxy's side of that connection. */
async function dial(proxy: FaultProxy): Promise<{ client: Client; conn: ProxyConnection }> {
  const arrived = new Promise<ProxyConnection>((resolve) => {
    const off = proxy.on('connection', (conn) => {
      off();
      resolve(conn);
    });
  });
  const socket = connect(proxy.port, proxy.host);
  const client = watch(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const conn = await arrived;
  expect(conn.client.remotePort).toBe(socket.localPort);
  return { client, conn };
}

/** Resolves once `n` bytes have arrived; rejects after `timeoutMs`. */
async function waitForBytes(client: Client, n: number, timeoutMs = 5_000): Promise<Buffer> {
  const deadline = performance.now() + timeoutMs;
  while (client.received().length < n) {
    if (performance.now() > deadline) throw new Error(`got ${client.received().length} of ${n} bytes in ${timeoutMs} ms`);
    await sleep(2);
  }
  return client.received();
}

async function roundTrip(client: Client, payload: string): Promise<number> {
  const before = client.received().length;
  const start = performance.now();
  client.socket.write(payload);
  await waitForBytes(client, before + payload.length);
  return performance.now() - start;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`${what} did not happen within ${ms} ms`);
    }),
  ]);
}

describe('createFaultProxy: plain forwarding', () => {
  it('forwards both ways and counts the bytes', async () => {
    const { proxy } = await echoProxy();
    const { client, conn } = await dial(proxy);
    await roundTrip(client, 'hello');
    expect(client.received().toString()).toBe('hello');
    expect(conn.bytesToUpstream).toBe(5);
    expect(conn.bytesToClient).toBe(5);
    expect(conn.mode).toEqual({ kind: 'forward' });
    expect(proxy.connections).toEqual([conn]);
  });

  it('passes a half-close through and drops the connection once both sides closed', async () => {
    const { proxy } = await echoProxy();
    const { client, conn } = await dial(proxy);
    const connClosed = new Promise<void>((resolve) => conn.on('close', resolve));
    client.socket.end('bye');
    await within(client.ended, 2_000, "client 'end'");
    await within(connClosed, 2_000, 'proxy connection close');
    expect(client.received().toString()).toBe('bye');
    expect(conn.closed).toBe(true);
    expect(proxy.connections).toHaveLength(0);
  });
});

describe('createFaultProxy: faults', () => {
  it('reset() sends RST to the client (ECONNRESET) and leaves later connections alone', async () => {
    const { proxy } = await echoProxy();
    const { client } = await dial(proxy);
    await roundTrip(client, 'x');
    proxy.reset();
    const err = await within(client.error, 2_000, 'ECONNRESET');
    expect(err.code).toBe('ECONNRESET');

    const later = await dial(proxy);
    await roundTrip(later.client, 'still works');
    expect(later.client.received().toString()).toBe('still works');
  });

  it('blackhole() stalls both ways with sockets open; heal() delivers the held bytes and new connections flow', async () => {
    const { proxy } = await echoProxy();
    const { client, conn } = await dial(proxy);
    proxy.blackhole();
    expect(conn.mode).toEqual({ kind: 'blackhole' });
    client.socket.write('hello');
    await sleep(QUIET_MS);
    expect(client.received().length).toBe(0);
    expect(client.socket.destroyed).toBe(false);
    expect(conn.closed).toBe(false);
    expect(conn.bytesToUpstream).toBe(0);

    // New connections are swallowed too, until heal().
    const during = await dial(proxy);
    during.client.socket.write('ping');
    await sleep(QUIET_MS);
    expect(during.client.received().length).toBe(0);

    await proxy.heal();
    await waitForBytes(client, 5);
    expect(client.received().toString()).toBe('hello');
    await waitForBytes(during.client, 4);
    const after = await dial(proxy);
    await roundTrip(after.client, 'flows');
    expect(after.client.received().toString()).toBe('flows');
  });

  it('blackhole() stops reading, so the sender stalls on full kernel buffers', async () => {
    const { proxy } = await echoProxy();
    const { client, conn } = await dial(proxy);
    proxy.blackhole();
    // Far more than loopback socket buffers hold (a few MiB each way).
    const total = 32 * 1024 * 1024;
    client.socket.write(Buffer.alloc(total));
    await sleep(QUIET_MS);
    expect(client.socket.writableLength).toBeGreaterThan(0);
    expect(conn.client.bytesRead).toBeLessThan(total);
    expect(conn.bytesToUpstream).toBe(0);
  });

  it('a delaying mode holds at most about 1 MiB per direction, then stops reading', async () => {
    const { proxy } = await echoProxy();
    const { client, conn } = await dial(proxy);
    proxy.latency(60_000);
    const total = 32 * 1024 * 1024;
    client.socket.write(Buffer.alloc(total));
    await sleep(QUIET_MS);
    expect(conn.bytesToUpstream).toBe(0);
    // 1 MiB held, plus at most one read (64 KiB) past the mark and the readable stream's own buffer.
    expect(conn.client.bytesRead).toBeLessThan(1024 * 1024 + 256 * 1024);
    expect(client.socket.writableLength).toBeGreaterThan(0);
  });

  it('latency() delays each direction by at least ms', async () => {
    const { proxy } = await echoProxy();
    const { client } = await dial(proxy);
    const ms = 100;
    proxy.latency(ms);
    const rtt = await roundTrip(client, 'slow');
    // Timers may fire up to 1 ms early against performance.now().
    expect(rtt).toBeGreaterThanOrEqual(2 * ms - 2);
    expect(rtt).toBeLessThan(2 * ms + 2_000);
  });

  it('latency() with jitter keeps byte order', async () => {
    const { proxy } = await echoProxy();
    const { client } = await dial(proxy);
    proxy.latency(30, 25);
    let sent = '';
    for (let i = 0; i < 40; i++) {
      const piece = `<${i}>`;
      sent += piece;
      client.socket.write(piece);
      await sleep(2);
    }
    await waitForBytes(client, sent.length);
    expect(client.received().toString()).toBe(sent);
  });

  it('bandwidth() holds throughput near the limit', async () => {
    const { proxy } = await echoProxy();
    const { client } = await dial(proxy);
    const rate = 64 * 1024;
    const total = 48 * 1024;
    proxy.bandwidth(rate);
    const start = performance.now();
    client.socket.write(Buffer.alloc(total, 7));
    await waitForBytes(client, total, 20_000);
    const elapsed = performance.now() - start;
    // The first piece (1/20 s of traffic) goes at once; the rest is paced. Each direction is limited on its own.
    const expected = ((total - rate / 20) / rate) * 1000;
    expect(elapsed).toBeGreaterThanOrEqual(expected * 0.9);
    expect(elapsed).toBeLessThan(expected * 4 + 2_000);
  });

  it('slice() delivers in pieces of at most size bytes, delayMs apart', async () => {
    const { proxy } = await echoProxy();
    const { client } = await dial(proxy);
    const size = 4;
    const delayMs = 25;
    proxy.slice(size, delayMs);
    const payload = 'abcdefghijklmnopqrst';
    const start = performance.now();
    client.socket.write(payload);
    await waitForBytes(client, payload.length);
    const elapsed = performance.now() - start;
    expect(client.received().toString()).toBe(payload);
    expect(client.chunks.length).toBeGreaterThanOrEqual(payload.length / size);
    for (const chunk of client.chunks) expect(chunk.length).toBeLessThanOrEqual(size);
    expect(elapsed).toBeGreaterThanOrEqual((payload.length / size - 1) * delayMs * 0.9);
  });

  it('closeAfter() ends both sides once that many bytes crossed, both directions counted together', async () => {
    const { proxy, echo } = await echoProxy();
    proxy.closeAfter(4_000);
    const { client, conn } = await dial(proxy);
    client.socket.write(Buffer.alloc(3_000, 1));
    await within(client.ended, 2_000, "client 'end'");
    expect(client.received().length).toBe(1_000);
    expect(conn.bytesToUpstream).toBe(3_000);
    expect(conn.bytesToClient).toBe(1_000);
    await within(client.closed, 2_000, 'client close');
    await within(new Promise<void>((resolve) => conn.on('close', resolve)), 2_000, 'proxy connection close');
    expect(echo.connections).toBe(0);
  });

  it('closeAfter(0) ends each new connection at once', async () => {
    const { proxy } = await echoProxy();
    proxy.closeAfter(0);
    const { client } = await dial(proxy);
    await within(client.ended, 2_000, "client 'end'");
    expect(client.received().length).toBe(0);
  });

  it('refuse() makes connects fail with ECONNREFUSED; heal() listens again on the same port', async () => {
    const { proxy } = await echoProxy();
    const open = await dial(proxy);
    const port = proxy.port;
    proxy.refuse();

    const refused = watch(connect(port, HOST));
    const err = await within(refused.error, 2_000, 'ECONNREFUSED');
    expect(err.code).toBe('ECONNREFUSED');
    // Open connections are not the listener's business.
    await roundTrip(open.client, 'open');
    expect(open.client.received().toString()).toBe('open');

    await proxy.heal();
    expect(proxy.port).toBe(port);
    const again = await dial(proxy);
    expect(again.client.socket.remotePort).toBe(port);
    await roundTrip(again.client, 'back');
    expect(again.client.received().toString()).toBe('back');
  });

  it('a fault given a connection affects only that one, and heal(conn) heals only it', async () => {
    const { proxy } = await echoProxy();
    const a = await dial(proxy);
    const b = await dial(proxy);
    proxy.blackhole(a.conn);
    const ms = 80;
    proxy.latency(ms, 0, b.conn);
    expect(proxy.mode).toEqual({ kind: 'forward' });

    a.client.socket.write('aaa');
    const rttB = await roundTrip(b.client, 'bbb');
    expect(rttB).toBeGreaterThanOrEqual(2 * ms - 2);
    const c = await dial(proxy);
    const rttC = await roundTrip(c.client, 'ccc');
    expect(rttC).toBeLessThan(ms);
    await sleep(QUIET_MS);
    expect(a.client.received().length).toBe(0);

    await proxy.heal(a.conn);
    await waitForBytes(a.client, 3);
    expect(b.conn.mode).toEqual({ kind: 'latency', ms, jitter: 0 });

    // A proxy-wide call applies to every connection again.
    proxy.slice(1, 1);
    expect(a.conn.mode).toEqual({ kind: 'slice', size: 1, delayMs: 1 });
    expect(b.conn.mode).toEqual({ kind: 'slice', size: 1, delayMs: 1 });
  });

  it('heal(conn) under a proxy-wide fault heals only that connection', async () => {
    const { proxy } = await echoProxy();
    const a = await dial(proxy);
    const b = await dial(proxy);
    proxy.blackhole();
    await proxy.heal(a.conn);
    expect(proxy.mode).toEqual({ kind: 'blackhole' });
    b.client.socket.write('bbb');
    await roundTrip(a.client, 'aaa');
    expect(a.client.received().toString()).toBe('aaa');
    await sleep(QUIET_MS);
    expect(b.client.received().length).toBe(0);
  });

  it('reset(conn) resets only that connection', async () => {
    const { proxy } = await echoProxy();
    const a = await dial(proxy);
    const b = await dial(proxy);
    proxy.reset(a.conn);
    expect((await within(a.client.error, 2_000, 'ECONNRESET')).code).toBe('ECONNRESET');
    await roundTrip(b.client, 'fine');
    expect(b.client.received().toString()).toBe('fine');
  });

  it('resets the client when the target refuses', async () => {
    const gone = await createEchoServer();
    const target = { host: gone.host, port: gone.port };
    await gone.close();
    const proxy = await createFaultProxy({ target });
    cleanups.push(() => proxy.close());
    const client = watch(connect(proxy.port, proxy.host));
    const err = await within(client.error, 2_000, 'ECONNRESET');
    expect(err.code).toBe('ECONNRESET');
  });
});

describe('createFaultProxy: lifecycle', () => {
  // Handles only: the process's timer count also holds vitest's own timers (it throttles its progress reports with a
  // 100 ms one), which come and go while a test runs. The proxy's timers are followed by trackTimers() instead.
  const tracked = ['TCPServerWrap', 'TCPSocketWrap'];
  const count = (): Record<string, number> => {
    const counts: Record<string, number> = Object.fromEntries(tracked.map((name) => [name, 0]));
    for (const name of process.getActiveResourcesInfo()) {
      if (name in counts) counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  };

  /**
   * Follows the timers set through the global setTimeout (as the proxy does) until restore(): pending() counts those
   * neither fired nor cleared. vitest keeps its own copies of the timer functions, so its timers are not counted.
   */
  function trackTimers(): { pending(): number; restore(): void } {
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    const live = new Set<unknown>();
    globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const timer = realSet(
        (...a: unknown[]) => {
          live.delete(timer);
          fn(...a);
        },
        ms,
        ...args,
      );
      live.add(timer);
      return timer;
    }) as typeof setTimeout;
    globalThis.clearTimeout = ((timer: Parameters<typeof clearTimeout>[0]) => {
      live.delete(timer);
      realClear(timer);
    }) as typeof clearTimeout;
    const restore = (): void => {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    };
    cleanups.push(restore);
    return { pending: () => live.size, restore };
  }

  it('close() leaves no listener, socket or timer behind, even with delayed bytes and a refused listener', async () => {
    const before = count();
    const timers = trackTimers();
    const echo = await createEchoServer();
    const proxy = await createFaultProxy({ target: echo });
    const clients: Client[] = [];
    for (let i = 0; i < 3; i++) {
      const client = watch(connect(proxy.port, proxy.host));
      clients.push(client);
      await new Promise((resolve) => client.socket.once('connect', resolve));
    }
    const sockets = clients.map((client) => client.socket);
    await sleep(20);
    proxy.latency(10_000);
    for (const socket of sockets) socket.write('pending');
    proxy.refuse();
    await proxy.heal();
    proxy.slice(1, 10_000);
    for (const socket of sockets) socket.write('more');
    await sleep(20);
    expect(count().TCPServerWrap).toBeGreaterThan(before.TCPServerWrap ?? 0);
    // Each connection's sliced bytes wait on a timer.
    expect(timers.pending()).toBeGreaterThanOrEqual(sockets.length);

    await proxy.close();
    expect(proxy.connections).toHaveLength(0);
    // Only the echo server's listener is left of ours, and no timer at all.
    expect(count().TCPServerWrap).toBe((before.TCPServerWrap ?? 0) + 1);
    expect(timers.pending()).toBe(0);
    timers.restore();
    for (const socket of sockets) socket.destroy();
    // 'close' is emitted from the handle's close callback ('closed' turns true earlier).
    await Promise.all(clients.map((client) => client.closed));
    await echo.close();
    expect(count()).toEqual(before);
  });

  it('close() is idempotent and a closed proxy refuses connections', async () => {
    const { proxy } = await echoProxy();
    const port = proxy.port;
    const first = proxy.close();
    expect(proxy.close()).toBe(first);
    await first;
    const client = watch(connect(port, HOST));
    expect((await within(client.error, 2_000, 'ECONNREFUSED')).code).toBe('ECONNREFUSED');
  });

  it('close() after refuse() without heal() releases the old listener and its connections', async () => {
    const before = process.getActiveResourcesInfo().filter((name) => name === 'TCPServerWrap').length;
    const { proxy } = await echoProxy();
    const { client } = await dial(proxy);
    proxy.refuse();
    await proxy.close();
    await within(client.closed, 2_000, 'client close');
    // The echo server is the one listener left.
    expect(process.getActiveResourcesInfo().filter((name) => name === 'TCPServerWrap').length).toBe(before + 1);
  });

  it('rejects invalid options naming the option and the value', async () => {
    await expect(createFaultProxy({ target: { host: HOST, port: 0 } })).rejects.toThrow(
      'target.port must be an integer between 1 and 65535, got 0',
    );
    await expect(createFaultProxy({ target: { host: '', port: 1 } })).rejects.toThrow(
      'target.host must be a non-empty string, got ""',
    );
    await expect(createFaultProxy({ target: { host: HOST, port: 1 }, listen: { port: 70_000 } })).rejects.toThrow(
      RangeError,
    );
    const { proxy } = await echoProxy();
    expect(() => proxy.latency(-1)).toThrow('latency.ms must be a finite number >= 0, got -1');
    expect(() => proxy.latency(1, Number.NaN)).toThrow('latency.jitter must be a finite number >= 0, got NaN');
    expect(() => proxy.bandwidth(0)).toThrow('bandwidth.bytesPerSec must be a finite number > 0, got 0');
    expect(() => proxy.slice(0, 1)).toThrow('slice.size must be an integer >= 1, got 0');
    expect(() => proxy.closeAfter(1.5)).toThrow('closeAfter.bytes must be an integer >= 0, got 1.5');
    expect(() => proxy.blackhole({} as ProxyConnection)).toThrow(TypeError);
    expect(proxy.mode).toEqual({ kind: 'forward' });
  });
});

describe('servers', () => {
  it('createEchoServer counts its open connections', async () => {
    const echo = await createEchoServer();
    cleanups.push(() => echo.close());
    const client = watch(connect(echo.port, echo.host));
    await roundTrip(client, 'hi');
    expect(echo.connections).toBe(1);
    client.socket.end();
    await within(client.closed, 2_000, 'close');
    for (let i = 0; i < 100 && echo.connections > 0; i++) await sleep(5);
    expect(echo.connections).toBe(0);
  });

  it('createHeartbeatServer answers pings split byte by byte and echoes the rest', async () => {
    const hb = await createHeartbeatServer({ ping: 'PING', pong: 'PONG', echo: true });
    cleanups.push(() => hb.close());
    const proxy = await createFaultProxy({ target: hb });
    cleanups.push(() => proxy.close());
    // One byte per write, 5 ms apart: every ping reaches the server split across segments.
    proxy.slice(1, 5);
    const { client } = await dial(proxy);
    client.socket.write('abPINGcdPIPINGxPPING');
    const expected = 'abPONGcdPIPONGxPPONG';
    await waitForBytes(client, expected.length);
    expect(client.received().toString()).toBe(expected);
  });

  it('createHeartbeatServer without echo sends only pongs', async () => {
    const hb = await createHeartbeatServer({ ping: Buffer.from([0xaa, 0xaa, 0xbb]), pong: Buffer.from([0x01]) });
    cleanups.push(() => hb.close());
    const proxy = await createFaultProxy({ target: hb });
    cleanups.push(() => proxy.close());
    proxy.slice(2, 5);
    const { client } = await dial(proxy);
    client.socket.write(Buffer.from([0xaa, 0xaa, 0xaa, 0xbb, 0x00, 0xaa, 0xbb, 0xaa, 0xaa, 0xbb]));
    await waitForBytes(client, 2);
    await sleep(50);
    expect([...client.received()]).toEqual([0x01, 0x01]);
  });

  it('createHeartbeatServer rejects an empty ping', async () => {
    await expect(createHeartbeatServer({ ping: '', pong: 'x' })).rejects.toThrow('ping must not be empty, got ""');
  });

  it('the ping matcher replaces like replaceAll, whatever the chunking', () => {
    const text = (min: number) => fc.string({ unit: fc.constantFrom('a', 'b', 'c'), minLength: min, maxLength: min === 1 ? 4 : 60 });
    fc.assert(
      fc.property(
        text(1),
        text(0),
        fc.array(fc.nat(60), { maxLength: 8 }),
        fc.boolean(),
        (ping, input, cuts, echo) => {
          const matcher = createPingMatcher(Buffer.from(ping, 'latin1'), Buffer.from('X'), echo);
          const points = [...new Set(cuts.map((cut) => cut % (input.length + 1)))].sort((x, y) => x - y);
          const out: Buffer[] = [];
          let from = 0;
          for (const point of [...points, input.length]) {
            out.push(matcher.push(Buffer.from(input.slice(from, point), 'latin1')));
            from = point;
          }
          out.push(matcher.flush());
          const replaced = input.split(ping).join('X');
          const expected = echo ? replaced : 'X'.repeat(input.split(ping).length - 1);
          expect(Buffer.concat(out).toString('latin1')).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });
});
