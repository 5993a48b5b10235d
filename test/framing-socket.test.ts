// Framing on a live connection: frames in and out through ResilientSocket, heartbeat replies recognised by isPong,
// frames split and merged by the network, and a peer that breaks the framing.
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ResilientSocket,
  ResockError,
  connect,
  lengthPrefixed,
  lines,
  type FramingCodec,
  type ResilientSocketOptions,
} from '../src/index.js';
import { createFaultProxy, createHeartbeatServer, type FaultProxy, type HeartbeatServer } from '../src/testing/index.js';
import { listen, record, sleep, waitFor, type TestServer } from './support/net.js';

const PING = Buffer.from('PING');
const PONG = Buffer.from('PONG');
const isPong = (frame: Buffer): boolean => frame.equals(PONG);
// Loopback and a 1 ms-per-byte proxy answer far within this; it only bounds how long a failing test hangs.
const WAIT = 3000;
const fast = { minDelay: 20, maxDelay: 200, stableAfter: 0 } as const;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(onSocket: (s: net.Socket, n: number) => void): Promise<TestServer> {
  let n = 0;
  const srv = await listen((s) => onSocket(s, ++n));
  cleanups.push(() => srv.close());
  return srv;
}

/** Answers each framed PING with a framed PONG and echoes every other byte. */
async function framedHeartbeatServer(codec: FramingCodec): Promise<HeartbeatServer> {
  const srv = await createHeartbeatServer({ ping: codec.encode(PING), pong: codec.encode(PONG), echo: true });
  cleanups.push(() => srv.close());
  return srv;
}

async function proxyTo(target: { host: string; port: number }): Promise<FaultProxy> {
  const proxy = await createFaultProxy({ target });
  cleanups.push(() => proxy.close());
  return proxy;
}

function client(port: number, opts: Omit<ResilientSocketOptions, 'port'>): ResilientSocket {
  const sock = connect({ host: '127.0.0.1', port, keepAlive: false, reconnect: fast, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

/** Collects 'message' frames as strings (copied: a frame may be a view into a chunk). */
function messages(sock: ResilientSocket): string[] {
  const out: string[] = [];
  sock.on('message', (frame) => out.push(Buffer.from(frame).toString()));
  return out;
}

/** Waits (bounded) until `list` has at least `n` entries. */
async function until<T>(list: T[], n: number, ms = WAIT): Promise<T[]> {
  const deadline = performance.now() + ms;
  while (list.length < n) {
    if (performance.now() > deadline) throw new Error(`only ${list.length} of ${n} items within ${ms} ms: ${JSON.stringify(list)}`);
    await sleep(5);
  }
  return list;
}

async function heartbeats(sock: ResilientSocket, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await waitFor(sock, 'heartbeat', WAIT);
}

const codecs: Array<[string, (maxLength?: number) => FramingCodec]> = [
  ['lines', (maxLength) => lines(maxLength === undefined ? {} : { maxLength })],
  ['lengthPrefixed', (maxLength) => lengthPrefixed(maxLength === undefined ? {} : { maxLength })],
];

/** Bytes that announce (lengthPrefixed) or carry (lines) a frame of `length` bytes, bypassing the encoder's limit. */
function oversized(name: string, length: number): Buffer {
  const payload = Buffer.alloc(length, 0x78);
  if (name === 'lines') return Buffer.concat([payload, Buffer.from('\n')]);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(length);
  return Buffer.concat([prefix, payload]);
}

describe.each(codecs)('framing %s over a socket', (name, makeCodec) => {
  it('replies recognised by isPong answer heartbeats and never reach message; user frames do', async () => {
    const codec = makeCodec();
    const srv = await framedHeartbeatServer(codec);
    const sock = client(srv.port, { framing: codec, heartbeat: { interval: 30, timeout: 1000, ping: PING, isPong } });
    const got = messages(sock);
    const raw = record(sock, ['data']);
    await waitFor(sock, 'connect', WAIT);
    sock.sendMessage('hello');
    sock.write('world');
    await heartbeats(sock, 2);
    await until(got, 2);
    await sleep(50);
    expect(got).toEqual(['hello', 'world']);
    // With framing every inbound byte goes through the decoder.
    expect(raw).toEqual([]);
  });

  it('frames cut into 1-byte pieces by the network come out whole, pongs included', async () => {
    const codec = makeCodec();
    const proxy = await proxyTo(await framedHeartbeatServer(codec));
    proxy.slice(1, 1);
    const sock = client(proxy.port, { framing: codec, heartbeat: { interval: 30, timeout: 1000, ping: PING, isPong } });
    const got = messages(sock);
    await waitFor(sock, 'connect', WAIT);
    const sent = ['alpha', '', 'beta gamma', 'PONGISH', 'δέλτα'];
    for (const frame of sent) sock.sendMessage(frame);
    await until(got, sent.length);
    await heartbeats(sock, 1);
    expect(got).toEqual(sent);
  });

  it('many frames in one write come out one message each, in order; a pong among them is not a message', async () => {
    const codec = makeCodec();
    const frames = Array.from({ length: 200 }, (_, i) => `frame-${i}`);
    const wire = Buffer.concat([...frames.slice(0, 100), 'PONG', ...frames.slice(100)].map((f) => codec.encode(Buffer.from(f))));
    const srv = await server((s) => s.write(wire));
    const sock = client(srv.port, { framing: codec, heartbeat: { interval: 1000, timeout: 1000, ping: PING, isPong } });
    const got = messages(sock);
    await until(got, frames.length);
    await sleep(20);
    expect(got).toEqual(frames);
  });

  it('a frame over maxLength from the peer is a protocol failure, and the socket reconnects', async () => {
    const maxLength = 64;
    const codec = makeCodec(maxLength);
    const srv = await server((s, n) => {
      if (n === 1) s.write(Buffer.concat([codec.encode(Buffer.from('first')), oversized(name, maxLength + 1)]));
      else s.write(codec.encode(Buffer.from('second')));
    });
    const sock = client(srv.port, { framing: codec });
    const got = messages(sock);
    const events = record(sock, ['message', 'failure', 'connect']);
    const f = await waitFor(sock, 'failure', WAIT);
    expect(f).toMatchObject({ kind: 'protocol', code: 'ERR_RESOCK_FRAME_TOO_LONG', phase: 'open', retryable: true });
    expect(f.message).toContain(`maxLength (${maxLength} bytes)`);
    expect(f.diagnosis.cause).toBe('protocol-violation');
    expect((await waitFor(sock, 'connect', WAIT)).reconnected).toBe(true);
    await until(got, 2);
    expect(got).toEqual(['first', 'second']);
    // The frame before the bad one was delivered before the failure.
    expect(events.map((e) => e.name)).toEqual(['connect', 'message', 'failure', 'connect', 'message']);
  });

  it('write() and sendMessage() frame what they send, queued writes included; the peer decodes exactly those frames', async () => {
    const codec = makeCodec();
    const frames: Buffer[] = [];
    const srv = await server((s) => {
      const decoder = codec.decoder();
      s.on('data', (chunk: Buffer) =>
        decoder.push(chunk, (frame) => {
          if (frame.equals(PING)) s.write(codec.encode(PONG));
          else frames.push(Buffer.from(frame));
        }),
      );
    });
    const sock = client(srv.port, { framing: codec, heartbeat: { interval: 20, timeout: 1000, ping: PING, isPong } });
    // Not open yet: this one waits in the offline queue, already framed.
    sock.write('queued');
    await waitFor(sock, 'connect', WAIT);
    sock.sendMessage('one');
    sock.write(new Uint8Array([1, 2, 3]));
    sock.sendMessage(Buffer.alloc(0));
    await until(frames, 4);
    // The pings went out framed too: the server decoded them and the replies came back.
    await heartbeats(sock, 1);
    expect(frames).toEqual([Buffer.from('queued'), Buffer.from('one'), Buffer.from([1, 2, 3]), Buffer.alloc(0)]);
  });
});

describe('framing: heartbeat replies behind a large frame', () => {
  // TCP delivers in order: a pong cannot overtake a large frame on a slow path. With isPong only a pong is a reply, so
  // heartbeat.timeout must exceed the time the largest frame takes; then the slow transfer is not a dead peer.
  it('a reply queued behind a large inbound frame is not a dead peer when the timeout covers the frame time', async () => {
    const codec = lines();
    const proxy = await proxyTo(await framedHeartbeatServer(codec));
    const bytesPerSec = 64 * 1024;
    proxy.bandwidth(bytesPerSec);
    // About 0.75 s each way at this bandwidth; the ping waits behind the frame out and the pong behind its echo.
    const big = 'y'.repeat(48 * 1024);
    const frameMs = (big.length / bytesPerSec) * 1000;
    const hb = { interval: 100, timeout: Math.ceil(3 * frameMs), ping: PING, isPong };
    const sock = client(proxy.port, { framing: codec, heartbeat: hb, reconnect: false });
    await waitFor(sock, 'connect', WAIT);
    const first = Promise.race([
      waitFor(sock, 'message', WAIT, (frame) => frame.length === big.length).then(() => 'message'),
      waitFor(sock, 'failure', WAIT).then((f) => `failure ${f.kind} (idleFor ${f.idleFor} ms)`),
    ]);
    sock.sendMessage(big);
    expect(await first).toBe('message');
  });
});

describe('framing: a peer that does not speak it', () => {
  it('garbage where a length prefix should be is a protocol failure', async () => {
    // A 4-byte prefix read from "GET " announces 1,195,725,856 bytes.
    const srv = await server((s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const sock = client(srv.port, { framing: lengthPrefixed(), reconnect: false });
    const got = messages(sock);
    const f = await waitFor(sock, 'failure', WAIT);
    expect(f).toMatchObject({ kind: 'protocol', code: 'ERR_RESOCK_FRAME_TOO_LONG' });
    expect(f.message).toContain('1195725856 bytes');
    expect(got).toEqual([]);
  });

  it('a 2-byte prefix announcing more than maxLength is refused before the payload arrives', async () => {
    const srv = await server((s) => s.write(Buffer.from([0x01, 0x00])));
    const sock = client(srv.port, { framing: lengthPrefixed({ bytes: 2, maxLength: 255 }), reconnect: false });
    const f = await waitFor(sock, 'failure', WAIT);
    expect(f).toMatchObject({ kind: 'protocol', code: 'ERR_RESOCK_FRAME_TOO_LONG' });
    expect(f.message).toContain('256 bytes');
  });
});

describe('framing: misuse', () => {
  it('sendMessage() without the framing option throws ERR_RESOCK_PROTOCOL', () => {
    const sock = new ResilientSocket({ port: 1 });
    let caught: unknown;
    try {
      sock.sendMessage('x');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ResockError);
    expect((caught as ResockError).code).toBe('ERR_RESOCK_PROTOCOL');
    expect((caught as Error).message).toMatch(/framing option/);
    expect(sock.stats().queuedBytes).toBe(0);
  });

  it('a frame the codec cannot carry throws at the call and nothing is queued', () => {
    const sock = new ResilientSocket({ port: 1, framing: lines({ maxLength: 8 }) });
    expect(() => sock.sendMessage('a\nb')).toThrow(expect.objectContaining({ code: 'ERR_RESOCK_PROTOCOL' }));
    expect(() => sock.write('far too long')).toThrow(expect.objectContaining({ code: 'ERR_RESOCK_FRAME_TOO_LONG' }));
    expect(sock.stats()).toMatchObject({ queuedBytes: 0, queuedWrites: 0 });
  });
});
