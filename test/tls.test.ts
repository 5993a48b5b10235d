// TLS through the public API, against real TLS servers on 127.0.0.1 with certificates made at test time.
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ResilientSocket, connect, type Failure } from '../src/index.js';
import { certsUnavailable, testCerts, type KeyPair } from './support/certs.js';
import { listen, record, sleep, waitFor } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** For the describes that need certificates; the handshake stall test needs none. */
function needsCerts(): void {
  beforeEach((ctx) => {
    if (certsUnavailable !== undefined) ctx.skip(certsUnavailable);
  });
}

const fast = { minDelay: 20, maxDelay: 200, stableAfter: 0 } as const;

interface TlsTestServer {
  port: number;
  /** TCP connections accepted, whether or not their handshake succeeded. */
  accepted: number;
  /** The raw TCP sockets under the TLS sockets, to reset them from the server side. */
  raw: Set<net.Socket>;
}

/** A TLS echo server with `keys`; resets are done on the raw TCP socket, which a TLSSocket cannot do itself. */
async function tlsServer(keys: KeyPair): Promise<TlsTestServer> {
  const raw = new Set<net.Socket>();
  const server = tls.createServer({ ...keys }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  // A failed handshake is the client's business here; the server just drops it.
  server.on('tlsClientError', () => {});
  const state: TlsTestServer = { port: 0, accepted: 0, raw };
  server.on('connection', (s: net.Socket) => {
    state.accepted++;
    raw.add(s);
    s.on('error', () => {});
    s.on('close', () => raw.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  state.port = (server.address() as net.AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of raw) s.destroy();
        server.close(() => resolve());
      }),
  );
  return state;
}

function client(opts: ConstructorParameters<typeof ResilientSocket>[0]): ResilientSocket {
  const sock = connect({ keepAlive: false, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

/** The next `data` events until `text` has arrived in full. */
async function echoed(sock: ResilientSocket, text: string, ms: number): Promise<string> {
  let got = '';
  await waitFor(sock, 'data', ms, (chunk) => (got += chunk.toString()).length >= text.length);
  return got;
}

describe('TLS with a trusted CA', () => {
  needsCerts();

  it('connects after the handshake, echoes, and reconnects after a server-side reset', async () => {
    const { ca, server } = testCerts();
    const srv = await tlsServer(server);
    const sock = client({ host: '127.0.0.1', port: srv.port, tls: { ca }, reconnect: fast });

    const first = await waitFor(sock, 'connect', 3000);
    expect(first).toMatchObject({ attempt: 1, reconnected: false });
    const raw = sock.socket;
    expect(raw).toBeInstanceOf(tls.TLSSocket);
    // 'connect' comes after secureConnect: the peer is already verified and a protocol negotiated.
    expect((raw as tls.TLSSocket).authorized).toBe(true);
    expect((raw as tls.TLSSocket).getProtocol()).toMatch(/^TLSv1\.[23]$/);
    expect((raw as tls.TLSSocket).getPeerCertificate().subject.CN).toBe('localhost');

    const reply = echoed(sock, 'over tls', 2000);
    sock.write('over tls');
    expect(await reply).toBe('over tls');

    const events = record(sock, ['failure', 'connect']);
    expect(srv.raw.size).toBe(1);
    for (const s of srv.raw) s.resetAndDestroy();
    const again = await waitFor(sock, 'connect', 3000);

    expect(again).toMatchObject({ reconnected: true });
    const failure = events.find((e) => e.name === 'failure')?.arg as Failure;
    expect(failure).toMatchObject({ kind: 'reset', phase: 'open', retryable: true });
    expect(sock.socket).toBeInstanceOf(tls.TLSSocket);
    expect(sock.socket).not.toBe(raw);
    expect(srv.accepted).toBe(2);
    const reply2 = echoed(sock, 'again', 2000);
    sock.write('again');
    expect(await reply2).toBe('again');
  });

  it('runs onConnect on the TLS socket after the handshake, before connect', async () => {
    const { ca, server } = testCerts();
    const srv = await tlsServer(server);
    const seen: string[] = [];
    const sock = client({
      host: '127.0.0.1',
      port: srv.port,
      tls: { ca },
      onConnect: async (s) => {
        const t = s as tls.TLSSocket;
        seen.push(`onConnect tls=${s instanceof tls.TLSSocket} authorized=${t.authorized} encrypted=${t.encrypted}`);
        // An application-level exchange inside onConnect only works over an established TLS session.
        const reply = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
        s.write('hello');
        seen.push(`reply ${await reply}`);
      },
    });
    sock.on('connect', () => seen.push('connect'));

    await waitFor(sock, 'connect', 3000);

    expect(seen).toEqual(['onConnect tls=true authorized=true encrypted=true', 'reply hello', 'connect']);
  });
});

describe('TLS certificate problems are fatal', () => {
  needsCerts();

  async function expectFatalTls(opts: ConstructorParameters<typeof ResilientSocket>[0], srv: TlsTestServer, code: string) {
    const sock = client({ ...opts, reconnect: fast });
    const events = record(sock, ['connecting', 'failure', 'reconnecting', 'connect']);
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    cleanups.push(() => process.off('uncaughtException', onUncaught));

    const closed = await waitFor(sock, 'close', 3000);

    expect(closed.reason).toBe('fatal');
    expect(closed.failure).toMatchObject({
      kind: 'tls',
      code,
      phase: 'connect',
      retryable: false,
      diagnosis: { cause: 'tls-misconfigured' },
    });
    // Several backoff periods of the fast config: no second attempt sneaks in after the close.
    await sleep(100);
    expect(events.map((e) => e.name)).toEqual(['connecting', 'failure']);
    expect(sock.stats()).toMatchObject({ state: 'closed', attempts: 1, connects: 0, failures: { tls: 1 } });
    expect(srv.accepted).toBe(1);
    expect(sock.socket).toBeNull();
    expect(uncaught).toEqual([]);
    await expect(sock.ready()).rejects.toMatchObject({ code: 'ERR_RESOCK_CLOSED' });
  }

  it('an untrusted self-signed certificate: one attempt, kind tls, closed with reason fatal', async () => {
    const { ca, selfSigned } = testCerts();
    const srv = await tlsServer(selfSigned);
    await expectFatalTls({ host: '127.0.0.1', port: srv.port, tls: { ca } }, srv, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('a trusted certificate for another name: one attempt, kind tls, closed with reason fatal', async () => {
    const { ca, otherName } = testCerts();
    const srv = await tlsServer(otherName);
    await expectFatalTls({ host: '127.0.0.1', port: srv.port, tls: { ca } }, srv, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('the name is checked against servername when one is given', async () => {
    const { ca, server } = testCerts();
    const srv = await tlsServer(server);
    await expectFatalTls(
      { host: '127.0.0.1', port: srv.port, tls: { ca, servername: 'other.invalid' } },
      srv,
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
  });

  it('connects to an untrusted certificate when rejectUnauthorized: false is given explicitly', async () => {
    const { selfSigned } = testCerts();
    const srv = await tlsServer(selfSigned);
    const sock = client({ host: '127.0.0.1', port: srv.port, tls: { rejectUnauthorized: false } });

    await waitFor(sock, 'connect', 3000);

    const raw = sock.socket as tls.TLSSocket;
    expect(raw).toBeInstanceOf(tls.TLSSocket);
    expect(raw.authorized).toBe(false);
    // Typed as an Error, but Node stores the OpenSSL code string.
    expect(String(raw.authorizationError)).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    const reply = echoed(sock, 'insecure', 2000);
    sock.write('insecure');
    expect(await reply).toBe('insecure');
  });
});

describe('a TLS server that never finishes the handshake', () => {
  it('fails with connect-timeout within connectTimeout', async () => {
    // Accepts TCP and reads the ClientHello, never answers.
    const mute = await listen((s) => s.resume());
    cleanups.push(() => mute.close());
    const connectTimeout = 300;
    const sock = client({ host: '127.0.0.1', port: mute.port, tls: true, connectTimeout, reconnect: false });
    const started = performance.now();

    const closed = await waitFor(sock, 'close', connectTimeout + 2000);
    const elapsed = performance.now() - started;

    expect(closed.reason).toBe('gave-up');
    expect(closed.failure).toMatchObject({
      kind: 'connect-timeout',
      code: 'ERR_RESOCK_HANDSHAKE_TIMEOUT',
      phase: 'connect',
      retryable: true,
    });
    // TCP got through, so this is not a dropped SYN: the peer is there but does not answer.
    expect(closed.failure!.diagnosis.cause).toBe('peer-unresponsive');
    expect(closed.failure!.message).toMatch(/the TLS handshake to 127\.0\.0\.1:\d+ did not finish/);
    expect(elapsed).toBeGreaterThanOrEqual(connectTimeout - 5);
    expect(elapsed).toBeLessThan(connectTimeout + 1000);
    // The attempt's socket was torn down: the server sees its connection end.
    const deadline = performance.now() + 2000;
    while (mute.sockets.size > 0 && performance.now() < deadline) await sleep(10);
    expect(mute.sockets.size).toBe(0);
  });
});
