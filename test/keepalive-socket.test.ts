// TCP keepalive as ResilientSocket applies it to each raw socket, read back from the kernel with getsockopt.
// ETIMEDOUT on an open connection (keepalive or TCP_USER_TIMEOUT expiry → keepalive-timeout / path-dead) needs a
// real black hole, so it is covered by test/kernel/resock-faults.test.ts, not here.
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ResilientSocket, connect } from '../src/index.js';
import { deriveLiveness } from '../src/detect.js';
import { __setSockoptForTests, readKeepAlive, sockoptSupport } from '../src/keepalive.js';
import { certsUnavailable, testCerts } from './support/certs.js';
import { listen, record, sleep, waitFor, type TestServer } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  __setSockoptForTests(undefined);
  while (cleanups.length > 0) await cleanups.pop()!();
});

// readKeepAlive goes through the same FFI path; without it there is nothing to read back.
const support = sockoptSupport();
beforeEach((ctx) => {
  if (!support.available) ctx.skip(`keepalive cannot be read back here: ${support.reason}`);
});

const fast = { minDelay: 20, maxDelay: 200, stableAfter: 0 } as const;
const explicit = { idle: 7000, interval: 2000, count: 4, userTimeout: 15000 } as const;
const allApplied = { idle: true, interval: true, count: true, userTimeout: true };

async function echoServer(): Promise<TestServer> {
  const srv = await listen((s) => s.pipe(s));
  cleanups.push(() => srv.close());
  return srv;
}

function client(opts: ConstructorParameters<typeof ResilientSocket>[0]): ResilientSocket {
  const sock = connect({ host: '127.0.0.1', reconnect: fast, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

/** Resets every server-side connection and waits for the client to be open again on a new raw socket. */
async function bounce(sock: ResilientSocket, srv: TestServer): Promise<void> {
  const before = sock.socket;
  const reconnected = waitFor(sock, 'connect', 3000);
  for (const s of srv.sockets) s.resetAndDestroy();
  await reconnected;
  expect(sock.socket).not.toBeNull();
  expect(sock.socket).not.toBe(before);
}

describe('keepalive on the sockets of a ResilientSocket', () => {
  it('applies explicit settings, and again on the socket of each reconnect', async () => {
    const srv = await echoServer();
    const sock = client({ port: srv.port, keepAlive: explicit });
    await waitFor(sock, 'connect', 2000);

    expect(readKeepAlive(sock.socket!)).toEqual({ keepAlive: true, ...explicit });
    expect(sock.stats().keepAlive).toEqual({ requested: explicit, applied: allApplied });

    await bounce(sock, srv);

    expect(readKeepAlive(sock.socket!)).toEqual({ keepAlive: true, ...explicit });
    expect(sock.stats().keepAlive).toEqual({ requested: explicit, applied: allApplied });
  });

  it('applies the settings derived from detectWithin', async () => {
    const srv = await echoServer();
    const sock = client({ port: srv.port, detectWithin: 10_000 });
    await waitFor(sock, 'connect', 2000);

    const derived = deriveLiveness(10_000).keepAlive;
    expect(readKeepAlive(sock.socket!)).toEqual({ keepAlive: true, ...derived });
    expect(sock.stats().keepAlive).toEqual({ requested: derived, applied: allApplied });
  });

  it('keepAlive: false leaves SO_KEEPALIVE off and reports nothing requested', async () => {
    const srv = await echoServer();
    const sock = client({ port: srv.port, keepAlive: false });
    await waitFor(sock, 'connect', 2000);

    expect(readKeepAlive(sock.socket!)).toMatchObject({ keepAlive: false, userTimeout: 0 });
    expect(sock.stats().keepAlive).toEqual({ requested: false, applied: false });
  });

  it('applies keepalive to the TCP socket under a TLS connection', async (ctx) => {
    if (certsUnavailable !== undefined) return ctx.skip(certsUnavailable);
    const { ca, server } = testCerts();
    const sockets = new Set<tls.TLSSocket>();
    const tlsServer = tls.createServer(server, (s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          tlsServer.close(() => resolve());
        }),
    );
    const port = (tlsServer.address() as { port: number }).port;
    const sock = client({ port, tls: { ca }, keepAlive: explicit });
    await waitFor(sock, 'connect', 3000);

    expect(sock.socket).toBeInstanceOf(tls.TLSSocket);
    expect(readKeepAlive(sock.socket!)).toEqual({ keepAlive: true, ...explicit });
    expect(sock.stats().keepAlive).toEqual({ requested: explicit, applied: allApplied });
  });
});

describe('keepalive without the FFI path', () => {
  it('warns once over several reconnects and reports which settings were not applied', async () => {
    const srv = await echoServer();
    __setSockoptForTests(null);
    const sock = client({ port: srv.port, keepAlive: explicit });
    const warnings = record(sock, ['warning']);
    await waitFor(sock, 'connect', 2000);

    await bounce(sock, srv);
    await bounce(sock, srv);
    await sleep(20);

    expect(sock.stats().connects).toBe(3);
    expect(warnings.map((w) => w.arg)).toEqual([
      {
        code: 'KEEPALIVE_NOT_APPLIED',
        message: expect.stringMatching(/interval, count, userTimeout not applied: setsockopt disabled by a test hook/),
      },
    ]);
    expect(sock.stats().keepAlive).toEqual({
      requested: explicit,
      applied: { idle: true, interval: false, count: false, userTimeout: false },
    });

    // With the FFI back, the socket shows what Node alone managed: SO_KEEPALIVE and idle, nothing else of ours.
    __setSockoptForTests(undefined);
    const reading = readKeepAlive(sock.socket!);
    expect(reading).toMatchObject({ keepAlive: true, idle: explicit.idle, userTimeout: 0 });
    expect(reading?.count).not.toBe(explicit.count);
  });
});
