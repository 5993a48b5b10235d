// Hostile peers: each must end in a classified failure, quickly, without resock holding more than one frame's worth of
// bytes. The decoders are wrapped in a probe that records what they hold after every chunk.
import net from 'node:net';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, lengthPrefixed, lines, type FrameDecoder, type FramingCodec, type ResilientSocket } from '../src/index.js';
import { createRng } from './soak/soak.js';
import { listen, sleep, waitFor, type TestServer } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(onSocket: (s: net.Socket) => void): Promise<TestServer> {
  const s = await listen(onSocket);
  cleanups.push(() => s.close());
  return s;
}

function client(opts: Parameters<typeof connect>[0]): ResilientSocket {
  const sock = connect({ host: '127.0.0.1', keepAlive: false, reconnect: false, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

interface Probe {
  codec: FramingCodec;
  /** Most bytes a decoder held after a chunk it accepted. */
  maxBuffered: number;
  maxChunk: number;
  chunks: number;
  /** Highest jsMemory() seen right after a chunk was decoded. */
  memPeak: number;
}

function probe(inner: FramingCodec): Probe {
  const p: Probe = { codec: inner, maxBuffered: 0, maxChunk: 0, chunks: 0, memPeak: 0 };
  p.codec = {
    name: inner.name,
    encode: (frame) => inner.encode(frame),
    decoder(): FrameDecoder {
      const d = inner.decoder();
      return {
        push(chunk, onFrame) {
          p.chunks++;
          p.maxChunk = Math.max(p.maxChunk, chunk.length);
          d.push(chunk, onFrame);
          // After a throw the decoder holds nothing; what counts is what it held while it still accepted bytes.
          p.maxBuffered = Math.max(p.maxBuffered, d.buffered);
          p.memPeak = Math.max(p.memPeak, jsMemory());
        },
        get buffered() {
          return d.buffered;
        },
      };
    },
  };
  return p;
}

/** The V8 heap plus Buffer memory: a decoder that allocated for an announced length would show in the latter. */
function jsMemory(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

let gcFn: (() => void) | undefined;
function memoryAfterGc(): number {
  if (gcFn === undefined) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  return jsMemory();
}

/** Writes `chunk` until `maxBytes`, `maxMs` or the socket closes, honouring backpressure. */
async function stream(s: net.Socket, chunk: Buffer, maxBytes: number, maxMs: number): Promise<{ written: number; stalls: number }> {
  const deadline = performance.now() + maxMs;
  let written = 0;
  let stalls = 0;
  while (!s.destroyed && s.writable && written < maxBytes && performance.now() < deadline) {
    written += chunk.length;
    if (!s.write(chunk)) {
      stalls++;
      await untilDrain(s, deadline - performance.now());
    }
  }
  return { written, stalls };
}

function untilDrain(s: net.Socket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    s.on('drain', done);
    s.on('close', done);
  });
}

const PING = 'P';
const isPong = (frame: Buffer): boolean => frame.length === 1 && frame[0] === 0x51;
// Bounds: what the configuration allows plus generous slack for a loaded CI machine.
const SLACK = 700;
const FEW_MB = 8 * 1024 * 1024;

describe('oversized frames', () => {
  it('a length prefix announcing 2 GiB is a protocol failure at once, nothing allocated', async () => {
    const srv = await server((s) => s.write(Buffer.from([0x80, 0, 0, 0, 1, 2, 3])));
    const p = probe(lengthPrefixed({ maxLength: 64 * 1024 }));
    const memBefore = memoryAfterGc();
    const t0 = performance.now();
    const sock = client({ port: srv.port, framing: p.codec });
    const closed = await waitFor(sock, 'close', 3000);
    expect(performance.now() - t0).toBeLessThan(SLACK);
    expect(closed.reason).toBe('gave-up');
    expect(closed.failure).toMatchObject({ kind: 'protocol', code: 'ERR_RESOCK_FRAME_TOO_LONG', phase: 'open' });
    expect(closed.failure!.diagnosis.cause).toBe('protocol-violation');
    expect(closed.failure!.message).toContain('2147483648');
    expect(p.maxBuffered).toBe(0);
    expect(memoryAfterGc() - memBefore).toBeLessThan(FEW_MB);
  });

  it('a line that never ends is cut at maxLength; the decoder never holds more than maxLength + 1', async () => {
    const maxLength = 64 * 1024;
    let sent: Promise<{ written: number; stalls: number }> | undefined;
    const srv = await server((s) => {
      sent = stream(s, Buffer.alloc(16 * 1024, 0x61), 64 * 1024 * 1024, 3000);
    });
    const p = probe(lines({ maxLength }));
    const memBefore = memoryAfterGc();
    const t0 = performance.now();
    const sock = client({ port: srv.port, framing: p.codec });
    const closed = await waitFor(sock, 'close', 3000);
    expect(performance.now() - t0).toBeLessThan(SLACK);
    expect(closed.failure).toMatchObject({ kind: 'protocol', code: 'ERR_RESOCK_FRAME_TOO_LONG' });
    // #holdRest refuses a chunk that would pass maxLength (+1 for a '\r' that may end the line) before keeping it.
    expect(p.maxBuffered).toBeLessThanOrEqual(maxLength + 1);
    expect(p.maxBuffered).toBeGreaterThan(maxLength - p.maxChunk);
    expect(p.memPeak - memBefore).toBeLessThan(FEW_MB);
    // The peer is cut off long before its 64 MiB: the flood is bounded by the close, not by the peer.
    expect((await sent!).written).toBeLessThan(16 * 1024 * 1024);
  });
});

describe('garbage', () => {
  it('random bytes under lengthPrefixed: protocol failure, bounded hold', async () => {
    const rng = createRng(0x5eed);
    const garbage = Buffer.from(Array.from({ length: 64 * 1024 }, () => rng.int(0, 255)));
    // A first prefix below maxLength would be a valid frame: make sure the test is about garbage that cannot be one.
    garbage.writeUInt32BE(0xdeadbeef, 0);
    const srv = await server((s) => s.write(garbage));
    const maxLength = 1024;
    const p = probe(lengthPrefixed({ maxLength }));
    const sock = client({ port: srv.port, framing: p.codec });
    const closed = await waitFor(sock, 'close', 3000);
    expect(closed.failure).toMatchObject({ kind: 'protocol', code: 'ERR_RESOCK_FRAME_TOO_LONG' });
    expect(p.maxBuffered).toBeLessThanOrEqual(maxLength + 4);
  });

  it('random bytes under lines(): a run without newline past maxLength is a protocol failure', async () => {
    const rng = createRng(0xbad);
    // Newlines come every ~256 bytes on average: a 64-byte limit is passed within the first chunk.
    const garbage = Buffer.from(Array.from({ length: 4096 }, () => rng.int(0, 255)));
    const srv = await server((s) => s.write(garbage));
    const maxLength = 64;
    const p = probe(lines({ maxLength }));
    let messages = 0;
    const sock = client({ port: srv.port, framing: p.codec });
    sock.on('message', () => messages++);
    const closed = await waitFor(sock, 'close', 3000);
    expect(closed.failure).toMatchObject({ kind: 'protocol', code: 'ERR_RESOCK_FRAME_TOO_LONG' });
    expect(p.maxBuffered).toBeLessThanOrEqual(maxLength + 1);
    expect(messages).toBeLessThan(4096 / 2);
  });
});

describe('slowloris', () => {
  const heartbeat = { interval: 200, timeout: 200, ping: PING, isPong };

  /** Announces a 1000-byte frame, then trickles its payload one byte every `every` ms; counts what it receives. */
  function trickler(every: number, got: { bytes: number }) {
    return (s: net.Socket): void => {
      s.on('data', (d) => (got.bytes += d.length));
      s.write(Buffer.from([0, 0, 3, 0xe8]));
      const timer = setInterval(() => s.write('x'), every);
      s.on('close', () => clearInterval(timer));
    };
  }

  it('one byte per second: the gaps exceed the timeout, heartbeat-timeout within interval + timeout + one gap', async () => {
    const every = 1000;
    const got = { bytes: 0 };
    const srv = await server(trickler(every, got));
    const p = probe(lengthPrefixed());
    const sock = client({ port: srv.port, framing: p.codec, heartbeat });
    await waitFor(sock, 'connect', 2000);
    const t0 = performance.now();
    const closed = await waitFor(sock, 'close', 5000);
    const took = performance.now() - t0;
    expect(closed.failure).toMatchObject({ kind: 'heartbeat-timeout', phase: 'open' });
    expect(closed.failure!.diagnosis.cause).toBe('peer-unresponsive');
    expect(took).toBeGreaterThanOrEqual(heartbeat.interval + heartbeat.timeout - 20);
    expect(took).toBeLessThan(heartbeat.interval + heartbeat.timeout + every + SLACK);
    expect(got.bytes).toBeGreaterThan(0);
    expect(p.maxBuffered).toBeLessThan(1004);
  });

  // With framing and isPong only whole frames postpone a ping and only a pong answers it: a peer trickling a frame
  // that never completes is caught within interval + timeout, however fast it trickles.
  it('one byte per 50 ms with framing and isPong: heartbeat-timeout within interval + timeout', async () => {
    const got = { bytes: 0 };
    const srv = await server(trickler(50, got));
    const sock = client({ port: srv.port, framing: lengthPrefixed(), heartbeat });
    await waitFor(sock, 'connect', 2000);
    const t0 = performance.now();
    const closed = await waitFor(sock, 'close', 5000);
    const took = performance.now() - t0;
    expect(closed.failure).toMatchObject({ kind: 'heartbeat-timeout', phase: 'open' });
    expect(took).toBeLessThan(heartbeat.interval + heartbeat.timeout + SLACK);
    expect(got.bytes).toBeGreaterThan(0);
  });

  // Without isPong any inbound byte is the reply (README): a trickle faster than the timeout is indistinguishable from
  // a slow, live peer, and the connection stays open.
  it('one byte per 50 ms without framing: every byte answers the ping, the connection stays open', async () => {
    const got = { bytes: 0 };
    const srv = await server(trickler(50, got));
    const sock = client({ port: srv.port, heartbeat: { interval: heartbeat.interval, timeout: heartbeat.timeout, ping: PING } });
    await waitFor(sock, 'connect', 2000);
    const failures: string[] = [];
    sock.on('failure', (f) => failures.push(f.kind));
    await sleep(3 * (heartbeat.interval + heartbeat.timeout));
    expect(failures).toEqual([]);
    expect(sock.state).toBe('open');
  });
});

describe('handshakes that never finish', () => {
  it('a TLS server that accepts TCP and never answers the ClientHello: connect-timeout within connectTimeout', async () => {
    let hello = 0;
    const srv = await server((s) => s.on('data', (d) => (hello += d.length)));
    const connectTimeout = 300;
    const t0 = performance.now();
    const sock = client({ port: srv.port, tls: { rejectUnauthorized: false }, connectTimeout });
    const closed = await waitFor(sock, 'close', 3000);
    const took = performance.now() - t0;
    // TCP was up, so it is the TLS handshake that stalled, not the SYN.
    expect(closed.failure).toMatchObject({ kind: 'connect-timeout', code: 'ERR_RESOCK_HANDSHAKE_TIMEOUT', phase: 'connect' });
    expect(closed.failure!.diagnosis.cause).toBe('peer-unresponsive');
    expect(took).toBeGreaterThanOrEqual(connectTimeout - 20);
    expect(took).toBeLessThan(connectTimeout + SLACK);
    expect(hello).toBeGreaterThan(0);
    // The stalled TCP connection is torn down, not left behind.
    for (let i = 0; i < 50 && srv.sockets.size > 0; i++) await sleep(20);
    expect(srv.sockets.size).toBe(0);
  });
});

describe('a peer that floods faster than the application reads', () => {
  // resock has no read buffer of its own: each chunk is decoded and emitted synchronously, so a slow 'message' listener
  // slows the reads themselves, the kernel buffers fill and TCP flow control stalls the peer. The flood also counts as
  // life, so the heartbeat cannot end it; it ends heartbeat-timeout once the peer stops sending (and never pongs).
  it('holds at most one partial frame, pushes back on the peer, then times out once the flood stops', async () => {
    const frame = lengthPrefixed().encode(Buffer.alloc(16 * 1024, 0x7a));
    const floodMs = 1500;
    let sent: Promise<{ written: number; stalls: number }> | undefined;
    const srv = await server((s) => {
      sent = stream(s, frame, 1024 * 1024 * 1024, floodMs);
    });
    const maxLength = 64 * 1024;
    const p = probe(lengthPrefixed({ maxLength }));
    const heartbeat = { interval: 300, timeout: 300, ping: PING, isPong };
    const memBefore = memoryAfterGc();
    const sock = client({ port: srv.port, framing: p.codec, heartbeat });
    let received = 0;
    let lastFrameAt = 0;
    sock.on('message', (m) => {
      lastFrameAt = performance.now();
      received += m.length;
      // A slow application: ~0.2 ms per 16 KiB frame, far below what loopback can carry.
      const until = performance.now() + 0.2;
      while (performance.now() < until);
    });
    const stalls: string[] = [];
    sock.on('warning', (w) => stalls.push(w.code));
    const closed = await waitFor(sock, 'close', floodMs + 5000);
    const closedAt = performance.now();
    const { written, stalls: peerStalls } = await sent!;
    expect(closed.failure).toMatchObject({ kind: 'heartbeat-timeout' });
    // The heartbeat's clock starts at the last frame the application got, not when the peer stopped writing: in between
    // the client still reads what the kernel buffers hold, at the slow listener's pace, which a loaded machine stretches.
    expect(lastFrameAt).toBeGreaterThan(0);
    // A stall of our own event loop while waiting for the pong buys the peer one more timeout (README, Heartbeats).
    const stallGrace = stalls.includes('EVENT_LOOP_STALL') ? heartbeat.timeout : 0;
    expect(closedAt - lastFrameAt).toBeLessThan(heartbeat.interval + heartbeat.timeout + stallGrace + SLACK);
    expect(received).toBeGreaterThan(1024 * 1024);
    // The peer had to wait for drain: the backlog sat in kernel buffers, not in resock.
    expect(peerStalls).toBeGreaterThan(0);
    expect(written - received).toBeLessThan(16 * 1024 * 1024);
    expect(p.maxBuffered).toBeLessThanOrEqual(maxLength + 4 + p.maxChunk);
    expect(p.memPeak - memBefore).toBeLessThan(32 * 1024 * 1024);
    expect(memoryAfterGc() - memBefore).toBeLessThan(FEW_MB);
  });
});
