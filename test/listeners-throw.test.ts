// A listener that throws, for every event and in each phase it fires in: resock goes on exactly as it would have
// (reconnects, or closes exactly once), and the exception surfaces as an uncaught exception on a later tick.
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { lines, type ResilientSocket } from '../src/index.js';
import type { ResilientSocketEvents } from '../src/types.js';
import { captureUncaught, freePort, harness, sleep, until, waitFor, type TestServer } from './support/net.js';

const h = harness({ reconnect: { minDelay: 20, maxDelay: 50 } });
const client = h.client;
/** An echo server unless told otherwise. */
const server = (onSocket: (s: net.Socket) => void = (s) => s.pipe(s), port?: number): Promise<TestServer> => h.server(onSocket, port);

function uncaught(): unknown[] {
  const cap = captureUncaught();
  h.defer(() => cap.restore());
  return cap.errors;
}

/** A listener for `name` that throws a fresh error every time (or only the first `times`), and what it threw. */
function thrower<E extends keyof ResilientSocketEvents>(sock: ResilientSocket, name: E, times = Infinity) {
  const thrown: Error[] = [];
  sock.on(name, (() => {
    if (thrown.length >= times) return;
    const err = new Error(`listener of '${String(name)}' threw (${thrown.length + 1})`);
    thrown.push(err);
    throw err;
  }) as never);
  return thrown;
}

function resetAll(srv: TestServer): void {
  for (const s of srv.sockets) s.resetAndDestroy();
}

describe('a throwing listener while connecting', () => {
  for (const name of ['connecting', 'connect'] as const) {
    it(`'${name}': the connection opens and carries data; the exception surfaces`, async () => {
      const errors = uncaught();
      const srv = await server();
      const sock = client({ port: srv.port });
      // Listeners after a throwing one do not run for that event, as with Node's emitters: this one comes first.
      const connected = waitFor(sock, 'connect', 2000);
      const thrown = thrower(sock, name);
      await connected;
      expect(sock.state).toBe('open');
      const echoed = waitFor(sock, 'data', 2000);
      sock.write('hi');
      expect(String(await echoed)).toBe('hi');
      await until(() => errors.length >= thrown.length && thrown.length > 0, 1000, 'surfaced exception');
      expect(errors).toEqual(expect.arrayContaining(thrown));
    });
  }

  for (const name of ['reconnecting', 'failure'] as const) {
    it(`'${name}' on refused dials: resock keeps dialling and connects once the peer listens`, async () => {
      const errors = uncaught();
      const port = await freePort();
      const sock = client({ port });
      const thrown = thrower(sock, name);
      await until(() => thrown.length >= 2, 2000, `two '${name}' events`);
      expect(sock.state === 'reconnecting' || sock.state === 'connecting').toBe(true);
      await server(undefined, port);
      await waitFor(sock, 'connect', 2000);
      expect(sock.state).toBe('open');
      await until(() => errors.length >= 2, 1000, 'surfaced exceptions');
      expect(thrown).toEqual(expect.arrayContaining(errors.slice(0, 2)));
    });
  }
});

describe('a throwing listener when an open connection is lost', () => {
  for (const name of ['failure', 'reset', 'disconnect'] as const) {
    it(`'${name}': resock still reconnects, and the listener already sees 'reconnecting'`, async () => {
      const errors = uncaught();
      const srv = await server();
      const sock = client({ port: srv.port });
      await waitFor(sock, 'connect', 2000);
      const states: string[] = [];
      sock.on(name, () => states.push(sock.state));
      const thrown = thrower(sock, name, 1);
      const reconnected = waitFor(sock, 'connect', 3000);
      resetAll(srv);
      expect((await reconnected).reconnected).toBe(true);
      expect(states[0]).toBe('reconnecting');
      // Writes are not stranded in a queue that never flushes.
      await expect(sock.send('after')).resolves.toBeUndefined();
      await until(() => errors.length > 0, 1000, 'surfaced exception');
      expect(errors[0]).toBe(thrown[0]);
    });
  }

  it("'disconnect' with reconnect off: the listener sees the socket closing, and 'close' follows exactly once", async () => {
    const errors = uncaught();
    const srv = await server();
    const sock = client({ port: srv.port, reconnect: false });
    await waitFor(sock, 'connect', 2000);
    const states: string[] = [];
    sock.on('disconnect', () => states.push(sock.state));
    thrower(sock, 'disconnect');
    const closes: string[] = [];
    sock.on('close', ({ reason }) => closes.push(reason));
    resetAll(srv);
    await until(() => closes.length > 0, 2000, "'close'");
    await sleep(50);
    expect(states).toEqual(['closing']);
    expect(closes).toEqual(['gave-up']);
    expect(sock.state).toBe('closed');
    expect(errors).toHaveLength(1);
  });
});

describe('a throwing listener on an open connection', () => {
  it("'data': later chunks still arrive and the connection stays up", async () => {
    const errors = uncaught();
    let peer: net.Socket | undefined;
    const srv = await server((s) => (peer = s));
    const sock = client({ port: srv.port });
    await waitFor(sock, 'connect', 2000);
    const seen: string[] = [];
    sock.on('data', (c) => {
      seen.push(String(c));
      if (seen.length === 1) throw new Error('data listener threw');
    });
    await until(() => peer !== undefined, 1000);
    peer!.write('a');
    await until(() => seen.length === 1, 1000);
    peer!.write('b');
    await until(() => seen.length === 2, 1000, 'second chunk');
    expect(seen).toEqual(['a', 'b']);
    expect(sock.state).toBe('open');
    expect(sock.stats().failures).toEqual({});
    expect(errors).toHaveLength(1);
  });

  it("'message': every frame of the chunk is still delivered, in order, and the decoder stays intact", async () => {
    const errors = uncaught();
    let peer: net.Socket | undefined;
    const srv = await server((s) => (peer = s));
    const sock = client({ port: srv.port, framing: lines() });
    await waitFor(sock, 'connect', 2000);
    const seen: string[] = [];
    sock.on('message', (m) => {
      seen.push(String(m));
      if (seen.length === 1) throw new Error('message listener threw');
    });
    await until(() => peer !== undefined, 1000);
    peer!.write('one\ntwo\nthr');
    peer!.write('ee\n');
    await until(() => seen.length === 3, 1000, 'three frames');
    expect(seen).toEqual(['one', 'two', 'three']);
    expect(sock.state).toBe('open');
    expect(errors).toHaveLength(1);
  });

  it("'heartbeat': the chunk that carried the reply still reaches 'data'", async () => {
    const errors = uncaught();
    const srv = await server((s) => s.on('data', () => s.write('PONG\n')));
    const sock = client({ port: srv.port, heartbeat: { interval: 30, timeout: 500, ping: 'PING\n' } });
    const thrown = thrower(sock, 'heartbeat');
    const data: string[] = [];
    sock.on('data', (c) => data.push(String(c)));
    await until(() => thrown.length >= 2, 2000, 'two heartbeats');
    await until(() => data.join('').split('PONG\n').length - 1 >= 2, 1000, 'the replies as data');
    expect(sock.state).toBe('open');
    expect(errors.length).toBeGreaterThanOrEqual(2);
  });

  it("'warning': heartbeat detection stays on after a throwing listener", async () => {
    const errors = uncaught();
    let silent = false;
    const srv = await server((s) => s.on('data', () => silent || s.write('PONG\n')));
    const interval = 40;
    const timeout = 120;
    // The ping that follows stallNext blocks the event loop well past the timeout while its reply is awaited: resock
    // warns instead of blaming the peer.
    let stall = false;
    const ping = (): Buffer => {
      if (stall) {
        stall = false;
        // After the ping is written and its reply timer armed.
        setImmediate(() => {
          const end = performance.now() + timeout * 3;
          while (performance.now() < end) {
            /* blocked on purpose */
          }
        });
      }
      return Buffer.from('PING\n');
    };
    const sock = client({ port: srv.port, heartbeat: { interval, timeout, ping }, reconnect: false });
    await waitFor(sock, 'heartbeat', 2000);
    const warned = waitFor(sock, 'warning', 3000);
    thrower(sock, 'warning');
    stall = true;
    expect((await warned).code).toBe('EVENT_LOOP_STALL');
    silent = true;
    const t0 = performance.now();
    const f = await waitFor(sock, 'failure', 5000);
    expect(f.kind).toBe('heartbeat-timeout');
    // One ping interval plus the timeout after the peer went silent, with room for a ping already in flight.
    expect(performance.now() - t0).toBeLessThan(2 * (interval + timeout) + 500);
    expect(errors.length).toBeGreaterThanOrEqual(1);
  });

  it("'drain': the next write's 'drain' still comes", async () => {
    const errors = uncaught();
    let peer: net.Socket | undefined;
    const srv = await server((s) => {
      peer = s;
      s.pause();
    });
    const sock = client({ port: srv.port });
    await waitFor(sock, 'connect', 2000);
    const thrown = thrower(sock, 'drain');
    const big = Buffer.alloc(8 * 1024 * 1024, 1);
    expect(sock.write(big)).toBe(false);
    await until(() => peer !== undefined, 1000);
    peer!.resume();
    await until(() => thrown.length === 1, 5000, "first 'drain'");
    expect(sock.write(big)).toBe(false);
    await until(() => thrown.length === 2, 5000, "second 'drain'");
    expect(sock.state).toBe('open');
    await until(() => errors.length === 2, 1000);
  });
});

describe('a throwing listener while closing', () => {
  it("'close': close() still resolves, and 'close' fires once", async () => {
    const errors = uncaught();
    const srv = await server();
    const sock = client({ port: srv.port });
    await waitFor(sock, 'connect', 2000);
    const thrown = thrower(sock, 'close');
    const closed = sock.close();
    await expect(Promise.race([closed.then(() => 'resolved'), sleep(2000).then(() => 'pending')])).resolves.toBe('resolved');
    await sleep(20);
    expect(thrown).toHaveLength(1);
    expect(errors).toEqual(thrown);
    expect(sock.state).toBe('closed');
  });

  it("'close' on a give-up: ready() rejects and close() resolves", async () => {
    const errors = uncaught();
    const port = await freePort();
    const sock = client({ port, reconnect: { retries: 1, minDelay: 10 } });
    thrower(sock, 'close');
    await expect(sock.ready()).rejects.toMatchObject({ code: 'ERR_RESOCK_CLOSED' });
    await expect(sock.close()).resolves.toBeUndefined();
    await until(() => errors.length === 1, 1000);
  });
});

describe('user callbacks that throw', () => {
  it('shouldReconnect: its throw is no answer, resock reconnects and surfaces it', async () => {
    const errors = uncaught();
    const srv = await server();
    let asked = 0;
    const sock = client({
      port: srv.port,
      reconnect: {
        minDelay: 10,
        shouldReconnect: () => {
          asked++;
          throw new Error('shouldReconnect threw');
        },
      },
    });
    await waitFor(sock, 'connect', 2000);
    const again = waitFor(sock, 'connect', 3000);
    resetAll(srv);
    await again;
    expect(asked).toBe(1);
    await until(() => errors.length === 1, 1000);
    expect((errors[0] as Error).message).toBe('shouldReconnect threw');
  });

  it('isPong: a throw is the application bug it is, a fatal failure with the error as cause, never blamed on the peer', async () => {
    const srv = await server((s) => s.on('data', () => s.write('PONG\n')));
    const sock = client({
      port: srv.port,
      framing: lines(),
      heartbeat: {
        interval: 20,
        timeout: 500,
        ping: 'PING',
        isPong: () => {
          throw new Error('isPong threw');
        },
      },
    });
    const f = await waitFor(sock, 'failure', 2000);
    expect(f).toMatchObject({ code: 'ERR_RESOCK_CALLBACK', kind: 'unknown', retryable: false });
    expect((f.error?.cause as Error).message).toBe('isPong threw');
    await until(() => sock.state === 'closed', 1000);
  });
});
