// Heartbeats on real loopback sockets: detection of a silent peer behind a fault proxy, no false alarm when our own
// event loop is blocked, round-trip times, any inbound byte as life, write accounting at the loss, cleanup.
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ResockError, connect, lines, type Failure, type ResilientSocket, type ResilientSocketOptions } from '../src/index.js';
import { createFaultProxy, createHeartbeatServer, type FaultProxy, type HeartbeatServer } from '../src/testing/index.js';
import { activeResources, listen, record, settleResources, sleep, waitFor, type TestServer } from './support/net.js';

const PING = 'PING\n';
const PONG = 'PONG\n';
// Room for timer lateness and a loaded CI machine on top of what the configuration allows.
const SLACK = 1000;
const fast = { minDelay: 20, maxDelay: 200, stableAfter: 0 } as const;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function heartbeatServer(): Promise<HeartbeatServer> {
  const srv = await createHeartbeatServer({ ping: PING, pong: PONG });
  cleanups.push(() => srv.close());
  return srv;
}

async function proxyTo(target: { host: string; port: number }): Promise<FaultProxy> {
  const proxy = await createFaultProxy({ target });
  cleanups.push(() => proxy.close());
  return proxy;
}

async function server(onSocket: (s: net.Socket) => void): Promise<TestServer> {
  const srv = await listen(onSocket);
  cleanups.push(() => srv.close());
  return srv;
}

function client(port: number, opts: Omit<ResilientSocketOptions, 'port'>): ResilientSocket {
  const sock = connect({ host: '127.0.0.1', port, keepAlive: false, reconnect: fast, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

/** Blocks this process's event loop, as a long GC pause or synchronous work would. */
function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Spinning is the point: no timer or I/O callback can run meanwhile.
  }
}

/**
 * A ping function that, when asked, blocks the event loop for `ms` right after the ping it makes has been written and
 * the reply timer armed, so the stall covers the wait for exactly that ping's reply.
 */
function stallingPing(ms: number): { ping: () => Buffer; stallNext(): void; pings(): number } {
  let pending = false;
  let count = 0;
  return {
    ping: () => {
      count++;
      if (pending) {
        pending = false;
        setImmediate(() => blockEventLoop(ms));
      }
      return Buffer.from(PING);
    },
    stallNext: () => {
      pending = true;
    },
    pings: () => count,
  };
}

/** Resolves after `n` further 'heartbeat' events. */
async function heartbeats(sock: ResilientSocket, n: number, ms: number): Promise<number[]> {
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) rtts.push((await waitFor(sock, 'heartbeat', ms)).rtt);
  return rtts;
}

const sum = (w: Failure['writes']): number => (w ? w.confirmedBytes + w.unconfirmedBytes + w.requeuedBytes : NaN);

describe('heartbeat: a peer that stops answering', () => {
  it('is found within interval + timeout, diagnosed peer-unresponsive, and the socket reconnects once the path heals', async () => {
    const hb = { interval: 200, timeout: 300, ping: PING };
    const proxy = await proxyTo(await heartbeatServer());
    const sock = client(proxy.port, { heartbeat: hb });
    await heartbeats(sock, 1, hb.interval + hb.timeout + SLACK);

    const failed = waitFor(sock, 'failure', hb.interval + hb.timeout + 2 * SLACK);
    const t0 = performance.now();
    proxy.blackhole();
    const f = await failed;
    const took = performance.now() - t0;
    expect(f).toMatchObject({ kind: 'heartbeat-timeout', code: 'ERR_RESOCK_HEARTBEAT_TIMEOUT', phase: 'open', retryable: true });
    expect(f.diagnosis.cause).toBe('peer-unresponsive');
    // A verdict needs a whole timeout of silence after a ping (one sent just before the black hole at the earliest).
    expect(took).toBeGreaterThanOrEqual(hb.timeout - 20);
    expect(took).toBeLessThanOrEqual(hb.interval + hb.timeout + SLACK);
    expect(f.idleFor).toBeGreaterThanOrEqual(hb.timeout - 20);

    const reconnected = waitFor(sock, 'connect', 5000);
    await proxy.heal();
    expect((await reconnected).reconnected).toBe(true);
    await heartbeats(sock, 1, hb.interval + hb.timeout + SLACK);
    expect(sock.state).toBe('open');
    expect(sock.stats().failures).toEqual({ 'heartbeat-timeout': 1 });
  });
});

describe('heartbeat: our own event loop blocked', () => {
  it('a stall of 3 × timeout while the peer is healthy is a warning, not a failure', async () => {
    const interval = 100;
    const timeout = 200;
    const stall = 3 * timeout;
    const pinger = stallingPing(stall);
    const srv = await heartbeatServer();
    const sock = client(srv.port, { heartbeat: { interval, timeout, ping: pinger.ping } });
    const events = record(sock, ['failure', 'warning']);
    await heartbeats(sock, 1, interval + timeout + SLACK);

    pinger.stallNext();
    const warning = await waitFor(sock, 'warning', interval + timeout + stall + SLACK, (w) => w.code === 'EVENT_LOOP_STALL');
    expect(warning.message).toMatch(/fired \d+ ms late/);
    // The reply that waited behind the stall is read, and heartbeats go on.
    await heartbeats(sock, 2, interval + timeout + SLACK);
    expect(events.filter((e) => e.name === 'failure')).toEqual([]);
    expect(sock.stats().connects).toBe(1);
  });

  // A stall only a little longer than the timeout, starting right after a ping, hides a reply that is already in the
  // kernel just as well as a long one does.
  it('a stall of 1.25 × timeout right after a ping is not blamed on a healthy peer either', async () => {
    const interval = 100;
    const timeout = 200;
    const pinger = stallingPing(timeout * 1.25);
    const srv = await heartbeatServer();
    const sock = client(srv.port, { heartbeat: { interval, timeout, ping: pinger.ping } });
    const events = record(sock, ['failure']);
    await heartbeats(sock, 1, interval + timeout + SLACK);
    pinger.stallNext();
    await heartbeats(sock, 3, interval + timeout + SLACK);
    expect(events).toEqual([]);
  });

  it('a stall while the peer is really gone still ends in a heartbeat timeout, one timeout after the stall', async () => {
    const interval = 100;
    const timeout = 200;
    const stall = 3 * timeout;
    const pinger = stallingPing(stall);
    const proxy = await proxyTo(await heartbeatServer());
    const sock = client(proxy.port, { heartbeat: { interval, timeout, ping: pinger.ping }, reconnect: false });
    const events = record(sock, ['warning', 'failure']);
    await heartbeats(sock, 1, interval + timeout + SLACK);

    const failed = waitFor(sock, 'failure', interval + timeout + stall + 2 * SLACK);
    const t0 = performance.now();
    proxy.blackhole();
    pinger.stallNext();
    const f = await failed;
    const took = performance.now() - t0;
    expect(f.kind).toBe('heartbeat-timeout');
    expect(took).toBeGreaterThanOrEqual(stall + timeout - 20);
    expect(took).toBeLessThanOrEqual(interval + timeout + stall + SLACK);
    expect(events.map((e) => (e.name === 'warning' ? (e.arg as { code: string }).code : e.name))).toEqual([
      'EVENT_LOOP_STALL',
      'failure',
    ]);
  });
});

describe('heartbeat: round-trip time', () => {
  it('reports each reply as a heartbeat event with its rtt, and the last one in stats()', async () => {
    const hb = { interval: 50, timeout: 100, ping: PING };
    const srv = await heartbeatServer();
    const sock = client(srv.port, { heartbeat: hb });
    expect(sock.stats().rtt).toBeUndefined();
    const rtts = await heartbeats(sock, 3, hb.interval + hb.timeout + SLACK);
    for (const rtt of rtts) {
      expect(rtt).toBeGreaterThanOrEqual(0);
      expect(rtt).toBeLessThan(hb.timeout);
    }
    expect(sock.stats().rtt).toBe(rtts[2]);
  });

  it('measures both directions of a delayed path: 100 ms each way is an rtt of at least 200 ms', async () => {
    const latency = 100;
    const hb = { interval: 50, timeout: 300, ping: PING };
    const proxy = await proxyTo(await heartbeatServer());
    proxy.latency(latency);
    const sock = client(proxy.port, { heartbeat: hb });
    const rtts = await heartbeats(sock, 2, hb.interval + hb.timeout + SLACK);
    for (const rtt of rtts) {
      // performance.now() on both sides of the same process: the only error is sub-millisecond rounding.
      expect(rtt).toBeGreaterThanOrEqual(2 * latency - 1);
      expect(rtt).toBeLessThan(2 * latency + SLACK);
    }
    expect(sock.stats().rtt).toBe(rtts[1]);
  });
});

describe('heartbeat: any inbound byte is life', () => {
  it('a peer that never answers pings but keeps sending data is never declared dead', async () => {
    const hb = { interval: 60, timeout: 150, ping: PING };
    // Data every 100 ms: longer than the interval, so pings do go out, shorter than interval + timeout.
    const every = 100;
    const received: Buffer[] = [];
    const srv = await server((s) => {
      s.on('data', (d) => received.push(d));
      const timer = setInterval(() => s.write('x'), every);
      s.on('close', () => clearInterval(timer));
    });
    const sock = client(srv.port, { heartbeat: hb });
    const events = record(sock, ['failure', 'heartbeat', 'data']);
    await waitFor(sock, 'connect', 2000);
    await sleep(6 * every + hb.timeout);

    expect(events.filter((e) => e.name === 'failure')).toEqual([]);
    expect(Buffer.concat(received).toString()).toMatch(/^(PING\n)+$/);
    // The bytes that arrived while a ping was out answered it.
    expect(events.filter((e) => e.name === 'heartbeat').length).toBeGreaterThanOrEqual(3);
    expect(events.filter((e) => e.name === 'data').length).toBeGreaterThanOrEqual(5);
  });
});

describe('heartbeat: write accounting at the loss', () => {
  const hb = { interval: 50, timeout: 150, ping: PING };

  /** Writes `n` bytes, then waits for two replies: the second one's ping left after those bytes. */
  async function writeConfirmed(sock: ResilientSocket, n: number): Promise<void> {
    sock.write(Buffer.alloc(n, 0x61));
    await heartbeats(sock, 2, hb.interval + hb.timeout + SLACK);
  }

  it('reset after a confirmed heartbeat: what was written before the ping is confirmed, the rest unconfirmed', async () => {
    const proxy = await proxyTo(await heartbeatServer());
    const sock = client(proxy.port, { heartbeat: hb, reconnect: false });
    await waitFor(sock, 'connect', 2000);
    const before = 3000;
    const after = 700;
    await writeConfirmed(sock, before);
    const lost = waitFor(sock, 'disconnect', 2000);
    // No reply can come back between this write and the reset.
    sock.write(Buffer.alloc(after, 0x62));
    proxy.reset();
    const f = await lost;
    expect(f.kind).toBe('reset');
    expect(f.writes).toEqual({ confirmedBytes: before, unconfirmedBytes: after, requeuedBytes: 0 });
    expect(sum(f.writes)).toBe(before + after);
  });

  it('black hole until the heartbeat times out: everything since the last confirmation is unconfirmed', async () => {
    const proxy = await proxyTo(await heartbeatServer());
    const sock = client(proxy.port, { heartbeat: hb, reconnect: false });
    await waitFor(sock, 'connect', 2000);
    const before = 2048;
    const after = 512;
    await writeConfirmed(sock, before);
    const lost = waitFor(sock, 'disconnect', hb.interval + hb.timeout + SLACK);
    proxy.blackhole();
    sock.write(Buffer.alloc(after, 0x62));
    const f = await lost;
    expect(f.kind).toBe('heartbeat-timeout');
    expect(f.writes).toEqual({ confirmedBytes: before, unconfirmedBytes: after, requeuedBytes: 0 });
  });

  it('black hole with more written than the kernels can hold: the rest is requeued, and the three still add up', async () => {
    const proxy = await proxyTo(await heartbeatServer());
    const sock = client(proxy.port, { heartbeat: hb, reconnect: false });
    await waitFor(sock, 'connect', 2000);
    const before = 4096;
    await writeConfirmed(sock, before);
    const lost = waitFor(sock, 'disconnect', hb.interval + hb.timeout + SLACK);
    const closed = waitFor(sock, 'close', hb.interval + hb.timeout + 2 * SLACK);
    proxy.blackhole();
    // Far beyond the 4 MiB tcp_wmem maximum plus what a paused reader's receive buffer takes on loopback.
    const chunk = Buffer.alloc(64 * 1024, 0x63);
    const chunks = 256;
    const rejected: Error[] = [];
    for (let i = 0; i < chunks; i++) sock.write(chunk, (err) => err && rejected.push(err));
    const f = await lost;
    const after = chunk.length * chunks;
    expect(f.kind).toBe('heartbeat-timeout');
    const w = f.writes!;
    expect(w.confirmedBytes).toBe(before);
    expect(w.requeuedBytes).toBeGreaterThan(0);
    expect(w.unconfirmedBytes).toBeGreaterThan(0);
    expect(sum(w)).toBe(before + after);
    // What never left the process is rejected when the socket gives up: each write is told, none is lost silently.
    await closed;
    await sleep(10);
    expect(rejected.length).toBeGreaterThan(0);
    for (const err of rejected) expect((err as NodeJS.ErrnoException).code).toBe('ERR_RESOCK_CLOSED');
  });

  it('peer FIN after a confirmed heartbeat: confirmed and unconfirmed bytes add up to what was written', async () => {
    const proxy = await proxyTo(await heartbeatServer());
    const sock = client(proxy.port, { heartbeat: hb, reconnect: false });
    await waitFor(sock, 'connect', 2000);
    const before = 1500;
    const after = 300;
    await writeConfirmed(sock, before);
    const lost = waitFor(sock, 'disconnect', 2000);
    sock.write(Buffer.alloc(after, 0x62));
    // Ends both sides with FIN at once.
    proxy.closeAfter(0);
    const f = await lost;
    expect(f.kind).toBe('peer-closed');
    expect(f.writes).toEqual({ confirmedBytes: before, unconfirmedBytes: after, requeuedBytes: 0 });
  });
});

describe('heartbeat: a ping function that throws', () => {
  // A local bug, not the peer's: its own code wraps the user's error (whose code is never read) and it is not retried.
  it('fails the connection with ERR_RESOCK_PING_FAILED, not retried; nothing escapes the timer', async () => {
    const thrown = Object.assign(new Error('cannot make a ping'), { code: 'ECONNRESET' });
    const srv = await heartbeatServer();
    const sock = client(srv.port, {
      heartbeat: {
        interval: 50,
        timeout: 200,
        ping: () => {
          throw thrown;
        },
      },
    });
    const failures = record(sock, ['failure']);
    const closed = await waitFor(sock, 'close', 2000);
    expect(closed.reason).toBe('fatal');
    expect(failures).toHaveLength(1);
    const f = closed.failure!;
    expect(f).toMatchObject({ kind: 'unknown', code: 'ERR_RESOCK_PING_FAILED', phase: 'open', retryable: false });
    expect(f.message).toBe('heartbeat.ping() threw: cannot make a ping');
    expect(f.error).toBeInstanceOf(ResockError);
    expect(f.error!.cause).toBe(thrown);
  });

  it('a ping function returning something other than a Buffer fails the connection naming heartbeat.ping', async () => {
    const srv = await heartbeatServer();
    const sock = client(srv.port, {
      heartbeat: { interval: 50, timeout: 200, ping: (() => 'PING') as unknown as () => Buffer },
      reconnect: false,
    });
    const f = await waitFor(sock, 'failure', 2000);
    expect(f.code).toBe('ERR_RESOCK_INVALID_OPTION');
    expect(f.retryable).toBe(false);
    expect(f.message).toMatch(/^heartbeat\.ping\(\) must return a Buffer, got/);
  });

  it('a ping function returning what the framing cannot carry is the local bug, not a peer protocol violation', async () => {
    const srv = await heartbeatServer();
    const sock = client(srv.port, {
      framing: lines(),
      heartbeat: { interval: 50, timeout: 200, ping: () => Buffer.from('PING\n') },
    });
    const failures = record(sock, ['failure']);
    const closed = await waitFor(sock, 'close', 2000);
    expect(closed.reason).toBe('fatal');
    expect(failures).toHaveLength(1);
    expect(closed.failure).toMatchObject({ kind: 'unknown', code: 'ERR_RESOCK_INVALID_OPTION', retryable: false });
    expect(closed.failure!.diagnosis.cause).not.toBe('protocol-violation');
    expect(closed.failure!.message).toMatch(/^heartbeat\.ping\(\) must return one frame the lines framing can send .*, got "PING\\n"$/);
  });
});

describe('heartbeat: keeps nothing alive', () => {
  it('after close() no ping is made and no handle or timer is left', async () => {
    const baseline = activeResources();
    const pinger = stallingPing(0);
    const srv = await heartbeatServer();
    const sock = client(srv.port, { heartbeat: { interval: 20, timeout: 200, ping: pinger.ping } });
    await heartbeats(sock, 2, 2000);
    await sock.close();
    const pings = pinger.pings();
    await sleep(100);
    expect(pinger.pings()).toBe(pings);
    await srv.close();
    expect(await settleResources(baseline)).toEqual([]);
  });

  it('after a heartbeat timeout that gives up, nothing is left either', async () => {
    const baseline = activeResources();
    const srv = await heartbeatServer();
    const proxy = await proxyTo(srv);
    const sock = client(proxy.port, { heartbeat: { interval: 50, timeout: 100, ping: PING }, reconnect: false });
    await heartbeats(sock, 1, 2000);
    proxy.blackhole();
    const closed = await waitFor(sock, 'close', 2000);
    expect(closed.reason).toBe('gave-up');
    expect(closed.failure?.kind).toBe('heartbeat-timeout');
    await proxy.close();
    await srv.close();
    expect(await settleResources(baseline)).toEqual([]);
  });
});
