// What failure.error and failure.code hold, on real loopback sockets: what onConnect throws is never read as a code
// unless it is an Error, and every failure resock detects itself carries a ResockError with a stable code.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ResockError, connect, type Failure, type ResilientSocket, type ResilientSocketOptions } from '../src/index.js';
import { listen, record, waitFor, type TestServer } from './support/net.js';

const fast = { minDelay: 10, maxDelay: 50, stableAfter: 0 } as const;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(onSocket?: (s: net.Socket) => void): Promise<TestServer> {
  const srv = await listen(onSocket);
  cleanups.push(() => srv.close());
  return srv;
}

function client(port: number, opts: Omit<ResilientSocketOptions, 'port'>): ResilientSocket {
  const sock = connect({ host: '127.0.0.1', port, keepAlive: false, reconnect: fast, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

describe('onConnect throwing something that is not an Error', () => {
  it.each([
    ['a string that looks like a fatal TLS code', 'CERT_HAS_EXPIRED', '"CERT_HAS_EXPIRED"'],
    ['an object without a prototype', Object.create(null) as object, 'an object'],
    ['an object with a code', { code: 'ERR_RESOCK_ABORTED' }, 'an object'],
    ['undefined', undefined, 'undefined'],
  ])('%s: a handshake failure with ERR_RESOCK_HANDSHAKE, retried, the value on cause', async (_, thrown, shown) => {
    const srv = await server();
    const sock = client(srv.port, {
      onConnect: () => {
        throw thrown;
      },
    });
    const failures = record(sock, ['failure']);
    // A second failure proves the first was retried.
    await waitFor(sock, 'failure', 3000, () => failures.length >= 1);
    await waitFor(sock, 'failure', 3000);
    expect(sock.state).not.toBe('closed');
    const f = failures[0]!.arg as Failure;
    expect(f).toMatchObject({ kind: 'handshake', code: 'ERR_RESOCK_HANDSHAKE', phase: 'handshake', retryable: true });
    expect(f.message).toBe(`onConnect threw a value that is not an Error: ${shown}`);
    expect(f.error).toBeInstanceOf(ResockError);
    expect(f.error!.cause).toBe(thrown);
    expect(f.diagnosis.cause).toBe('peer-rejected');
  });

  it('an Error keeps its own code: that is how a handshake reports a socket error it met', async () => {
    const srv = await server();
    const sock = client(srv.port, {
      reconnect: false,
      onConnect: () => {
        throw Object.assign(new Error('bad credentials'), { code: 'E_AUTH' });
      },
    });
    const f = await waitFor(sock, 'failure', 3000);
    expect(f).toMatchObject({ kind: 'handshake', code: 'E_AUTH', message: 'bad credentials' });
  });
});

describe('failures resock detects itself carry a ResockError', () => {
  it('peer FIN: ERR_RESOCK_PEER_CLOSED', async () => {
    const srv = await server((s) => setTimeout(() => s.end(), 20));
    const sock = client(srv.port, { reconnect: false });
    const f = await waitFor(sock, 'failure', 3000);
    expect(f.kind).toBe('peer-closed');
    expect(f.error).toBeInstanceOf(ResockError);
    expect((f.error as ResockError).code).toBe('ERR_RESOCK_PEER_CLOSED');
  });

  it('a TLS handshake that never finishes: ERR_RESOCK_HANDSHAKE_TIMEOUT', async () => {
    // A plain TCP server that never answers the ClientHello.
    const srv = await server();
    const sock = client(srv.port, { tls: { rejectUnauthorized: false }, connectTimeout: 100, reconnect: false });
    const f = await waitFor(sock, 'failure', 3000);
    expect(f.kind).toBe('connect-timeout');
    expect(f.error).toBeInstanceOf(ResockError);
    expect((f.error as ResockError).code).toBe('ERR_RESOCK_HANDSHAKE_TIMEOUT');
  });

  it('no heartbeat reply: ERR_RESOCK_HEARTBEAT_TIMEOUT', async () => {
    // Reads and never answers.
    const srv = await server((s) => s.resume());
    const sock = client(srv.port, { heartbeat: { ping: 'PING', interval: 30, timeout: 60 }, reconnect: false });
    const f = await waitFor(sock, 'failure', 3000);
    expect(f.kind).toBe('heartbeat-timeout');
    expect(f.error).toBeInstanceOf(ResockError);
    expect((f.error as ResockError).code).toBe('ERR_RESOCK_HEARTBEAT_TIMEOUT');
  });
});
