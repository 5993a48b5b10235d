// TLS options Node would refuse: refused in the constructor, naming the option, before any connection is made; and a
// refusal that only shows when dialing leaves no connection behind and is not retried.
import net from 'node:net';
import { createSecureContext, type ConnectionOptions } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { ResilientSocket } from '../src/index.js';
import { dial } from '../src/transport.js';
import { certsUnavailable, testCerts } from './support/certs.js';
import { sleep } from './support/net.js';

interface CountingServer {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Connections still open on the server side. */
  open: Set<net.Socket>;
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A TCP server that counts what it accepts; with `reset`, it resets each connection right away. */
async function countingServer(reset = false): Promise<CountingServer> {
  const state: CountingServer = { port: 0, accepted: 0, open: new Set() };
  const server = net.createServer((s) => {
    state.accepted++;
    state.open.add(s);
    s.on('error', () => {});
    s.on('close', () => state.open.delete(s));
    if (reset) s.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as net.AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of state.open) s.destroy();
        server.close(() => resolve());
      }),
  );
  return state;
}

function errorOf(fn: () => unknown): Error & { code?: string; option?: string; cause?: unknown } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string; option?: string };
  }
  throw new Error('expected a throw, none happened');
}

describe('tls options Node refuses are refused by the constructor', () => {
  it.each([
    ['servername', { servername: 123 }, 'tls.servername', TypeError, 'got 123'],
    ['ca', { ca: 123 }, 'tls.ca', TypeError, 'got 123'],
    ['cert', { cert: 'not a PEM' }, 'tls.cert', RangeError, 'got "not a PEM"'],
    ['minVersion', { minVersion: 'TLSv9' }, 'tls.minVersion', RangeError, 'got "TLSv9"'],
    ['ciphers', { ciphers: 'NO-SUCH-CIPHER' }, 'tls.ciphers', RangeError, 'ERR_SSL_NO_CIPHER_MATCH'],
    ['session', { session: 'not a buffer' }, 'tls.session', TypeError, 'got "not a buffer"'],
    ['rejectUnauthorized', { rejectUnauthorized: 'false' }, 'tls.rejectUnauthorized', TypeError, 'got "false"'],
    ['checkServerIdentity', { checkServerIdentity: true }, 'tls.checkServerIdentity', TypeError, 'got true'],
    ['ALPNProtocols', { ALPNProtocols: 'h2' }, 'tls.ALPNProtocols', TypeError, 'got "h2"'],
    // Node 20 aborts the process in a native assertion for this one.
    ['an empty ALPN name', { ALPNProtocols: [''] }, 'tls.ALPNProtocols[0]', RangeError, 'got ""'],
    ['localAddress', { localAddress: 'not-an-ip' }, 'tls.localAddress', RangeError, 'got "not-an-ip"'],
    ['minDHSize', { minDHSize: 0 }, 'tls.minDHSize', RangeError, 'got 0'],
    ['autoSelectFamily', { autoSelectFamily: 'yes' }, 'tls.autoSelectFamily', TypeError, 'got "yes"'],
    ['secureContext', { secureContext: {} }, 'tls.secureContext', TypeError, 'tls.createSecureContext()'],
  ] as const)('%s: ERR_RESOCK_INVALID_OPTION naming the option and value; no connection made', async (_, bad, option, kind, shown) => {
    const srv = await countingServer();
    const err = errorOf(() => new ResilientSocket({ host: '127.0.0.1', port: srv.port, tls: bad as ConnectionOptions }).connect());
    expect(err).toBeInstanceOf(kind);
    expect(err.code).toBe('ERR_RESOCK_INVALID_OPTION');
    expect(err.option).toBe(option);
    expect(err.message).toContain(option);
    expect(err.message).toContain(shown);
    await sleep(50);
    expect(srv.accepted).toBe(0);
  });

  it('a garbage key is named without echoing it, with what OpenSSL said on cause', () => {
    const secret = 'hunter2-not-a-private-key';
    const err = errorOf(() => new ResilientSocket({ port: 1, tls: { key: secret } }));
    expect(err).toMatchObject({ code: 'ERR_RESOCK_INVALID_OPTION', option: 'tls.key' });
    expect(err.message).toContain(`got a string of ${secret.length} characters`);
    expect(err.message).not.toContain(secret);
    expect((err.cause as { code?: string }).code).toMatch(/^ERR_OSSL_/);
  });

  it.skipIf(certsUnavailable !== undefined)('a key that does not match its certificate is refused as a pair', () => {
    const { server, otherName } = testCerts();
    const err = errorOf(() => new ResilientSocket({ port: 1, tls: { key: otherName.key, cert: server.cert } }));
    expect(err).toMatchObject({ code: 'ERR_RESOCK_INVALID_OPTION', option: 'tls' });
    expect(err.message).toContain('these tls options together');
    // The right pair passes, and equal options later are not checked again but share the resolved section.
    const a = new ResilientSocket({ port: 1, tls: { key: server.key, cert: server.cert } });
    const b = new ResilientSocket({ port: 1, tls: { key: server.key, cert: server.cert } });
    expect(b.options.tls).toBe(a.options.tls);
  });

  it('sane options and a secure context made by Node pass', () => {
    expect(() => new ResilientSocket({ port: 1, tls: { secureContext: createSecureContext() } })).not.toThrow();
    expect(() => new ResilientSocket({ port: 1, tls: { servername: 'db.internal', ALPNProtocols: ['h2'], minVersion: 'TLSv1.2' } })).not.toThrow();
    // An empty servername is how a caller turns SNI off.
    expect(() => new ResilientSocket({ port: 1, tls: { servername: '' } })).not.toThrow();
  });
});

describe('dial(): an option Node refuses only while dialing', () => {
  // dial() is reached with options resolveOptions has not seen, as a future option or a Node upgrade could do.
  it.each([
    // tls.connect() applies servername after starting the TCP connection: a throw there used to leave it open.
    ['servername', { servername: 123 }],
    ['autoSelectFamily', { autoSelectFamily: 'yes' }],
  ])('%s: rejects ERR_RESOCK_INVALID_OPTION, leaves no connection open and no orphan to crash on', async (_, bad) => {
    // The server resets what it accepts: an orphaned client socket would then raise an uncaught ECONNRESET.
    const srv = await countingServer(true);
    const aborter = new AbortController();
    const attempt = dial({ host: '127.0.0.1', port: srv.port }, bad as unknown as ConnectionOptions, true, aborter.signal);
    const err = (await attempt.then(
      () => {
        throw new Error('dial resolved');
      },
      (e: unknown) => e,
    )) as Error & { code?: string };
    expect(err.code).toBe('ERR_RESOCK_INVALID_OPTION');
    expect(err.message).toMatch(/tls/);
    await sleep(100);
    expect(srv.accepted).toBe(0);
    expect(srv.open.size).toBe(0);
  });
});

describe('TLS attempts that fail during the handshake', () => {
  it('are each closed: after destroy() the server holds no connection and nothing is thrown later', async () => {
    // Accepts TCP and resets it before any TLS reply: a retried failure, dialed again and again.
    const srv = await countingServer(true);
    const sock = new ResilientSocket({
      host: '127.0.0.1',
      port: srv.port,
      tls: { rejectUnauthorized: false },
      keepAlive: false,
      reconnect: { minDelay: 5, maxDelay: 20 },
    }).connect();
    const failures: string[] = [];
    sock.on('failure', (f) => failures.push(f.kind));
    for (let i = 0; i < 100 && failures.length < 3; i++) await sleep(20);
    expect(failures.length).toBeGreaterThanOrEqual(3);
    // The ClientHello may meet the RST on its way out.
    expect(failures.every((k) => k === 'reset' || k === 'broken-pipe')).toBe(true);
    sock.destroy();
    await sleep(100);
    expect(srv.accepted).toBeGreaterThanOrEqual(3);
    expect(srv.open.size).toBe(0);
  });
});
