import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  __setSockoptForTests,
  applyKeepAlive,
  readKeepAlive,
  sockoptSupport,
  type SockoptBackend,
} from '../src/keepalive.js';
import type { ResolvedKeepAlive } from '../src/types.js';
import { certsUnavailable, testCerts, type TestCerts } from './support/certs.js';

const tuned: ResolvedKeepAlive = { idle: 7000, interval: 3000, count: 4, userTimeout: 12000 };
const isLinux = process.platform === 'linux';

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'resock-keepalive-'));
});

afterEach(() => {
  __setSockoptForTests(undefined);
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A plain TCP client connected to a fresh loopback server, with the server's side of the connection. */
async function tcpPair(): Promise<{ client: net.Socket; server: net.Socket }> {
  let accepted!: (s: net.Socket) => void;
  const serverSide = new Promise<net.Socket>((resolve) => (accepted = resolve));
  const server = net.createServer((s) => {
    sockets.push(s);
    accepted(s);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  sockets.push(client);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { client, server: await serverSide };
}

async function tlsPair(certs: TestCerts): Promise<{ client: tls.TLSSocket; server: tls.TLSSocket }> {
  let accepted!: (s: tls.TLSSocket) => void;
  const serverSide = new Promise<tls.TLSSocket>((resolve) => (accepted = resolve));
  const server = tls.createServer(certs.server, (s) => {
    sockets.push(s);
    accepted(s);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = tls.connect({ host: '127.0.0.1', port, ca: certs.ca, servername: 'localhost' });
  sockets.push(client);
  await new Promise<void>((resolve, reject) => {
    client.once('secureConnect', resolve);
    client.once('error', reject);
  });
  return { client, server: await serverSide };
}

const allApplied = { idle: true, interval: true, count: true, userTimeout: true };
const noneApplied = { idle: false, interval: false, count: false, userTimeout: false };

describe('sockoptSupport', () => {
  it('is available on Linux with koffi installed, and names the platform elsewhere', () => {
    const support = sockoptSupport();
    if (isLinux) expect(support).toEqual({ available: true });
    else expect(support).toEqual({ available: false, reason: expect.stringContaining(process.platform) });
  });

  it('reports the test hook as the reason when the FFI path is disabled', () => {
    __setSockoptForTests(null);
    expect(sockoptSupport()).toEqual({ available: false, reason: expect.stringContaining('test hook') });
  });
});

describe.skipIf(!isLinux)('applyKeepAlive on Linux', () => {
  it('sets idle, interval, count and user timeout on a TCP client socket', async () => {
    const { client } = await tcpPair();
    expect(readKeepAlive(client)).toMatchObject({ keepAlive: false, userTimeout: 0 });

    const result = applyKeepAlive(client, tuned);

    expect(result).toEqual({ applied: allApplied, problems: [] });
    expect(readKeepAlive(client)).toEqual({ keepAlive: true, ...tuned });
  });

  it('works on the server side of an accepted connection', async () => {
    const { server, client } = await tcpPair();
    const settings = { idle: 9000, interval: 2000, count: 5, userTimeout: 15000 };

    expect(applyKeepAlive(server, settings)).toEqual({ applied: allApplied, problems: [] });
    expect(readKeepAlive(server)).toEqual({ keepAlive: true, ...settings });
    // The other end of the connection has its own socket options.
    expect(readKeepAlive(client)).toMatchObject({ keepAlive: false });
  });

  it('works on TLS sockets, client and server side', async (ctx) => {
    if (certsUnavailable !== undefined) return ctx.skip(certsUnavailable);
    const { client, server } = await tlsPair(testCerts());

    expect(applyKeepAlive(client, tuned)).toEqual({ applied: allApplied, problems: [] });
    expect(readKeepAlive(client)).toEqual({ keepAlive: true, ...tuned });

    const settings = { idle: 11000, interval: 1000, count: 2, userTimeout: 4000 };
    expect(applyKeepAlive(server, settings)).toEqual({ applied: allApplied, problems: [] });
    expect(readKeepAlive(server)).toEqual({ keepAlive: true, ...settings });
  });

  it('floors interval to whole seconds and never below one second', async () => {
    const { client } = await tcpPair();

    applyKeepAlive(client, { idle: 7999, interval: 2999, count: 3, userTimeout: 0 });
    expect(readKeepAlive(client)).toMatchObject({ idle: 7000, interval: 2000 });

    applyKeepAlive(client, { idle: 7999, interval: 500, count: 3, userTimeout: 0 });
    expect(readKeepAlive(client)).toMatchObject({ interval: 1000 });
  });

  it('leaves the user timeout alone when it is 0', async () => {
    const { client } = await tcpPair();

    const result = applyKeepAlive(client, { ...tuned, userTimeout: 0 });

    expect(result).toEqual({ applied: { ...allApplied, userTimeout: false }, problems: [] });
    expect(readKeepAlive(client)).toEqual({ keepAlive: true, ...tuned, userTimeout: 0 });
  });

  it('keeps interval and count when applied again with another idle (setKeepAlive resets them first)', async () => {
    const { client } = await tcpPair();
    applyKeepAlive(client, tuned);

    const again = { idle: 20000, interval: 6000, count: 7, userTimeout: 30000 };
    expect(applyKeepAlive(client, again)).toEqual({ applied: allApplied, problems: [] });

    expect(readKeepAlive(client)).toEqual({ keepAlive: true, ...again });
  });

  it('reports a value the kernel rejects, by option and errno, and applies the rest', async () => {
    const { client } = await tcpPair();

    // Linux caps TCP_KEEPCNT at 127.
    const result = applyKeepAlive(client, { ...tuned, count: 1000 });

    expect(result.applied).toEqual({ ...allApplied, count: false });
    expect(result.problems).toEqual(['setsockopt(TCP_KEEPCNT, 1000) failed: EINVAL']);
    expect(readKeepAlive(client)).toMatchObject({ interval: 3000, userTimeout: 12000 });
  });

  it('notices an idle that setKeepAlive failed to set without saying so', async () => {
    const { client } = await tcpPair();

    // Linux caps TCP_KEEPIDLE at 32767 s; libuv's failure is swallowed by Node.
    const result = applyKeepAlive(client, { ...tuned, idle: 40_000_000 });

    expect(result.applied).toEqual({ ...allApplied, idle: false });
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]).toMatch(/setKeepAlive\(true, 40000000\) left SO_KEEPALIVE=\d, TCP_KEEPIDLE=\d+ s instead of 1, 40000 s/);
  });

  it('falls back to setKeepAlive alone when the FFI path is unavailable', async () => {
    const { client } = await tcpPair();
    __setSockoptForTests(null);

    const result = applyKeepAlive(client, tuned);

    expect(result.applied).toEqual({ ...noneApplied, idle: true });
    expect(result.problems).toEqual([
      'keepalive interval, count, userTimeout not applied: setsockopt disabled by a test hook',
    ]);
    expect(readKeepAlive(client)).toBeUndefined();

    __setSockoptForTests(undefined);
    // What Node alone does: idle as asked, interval and count pinned to 1 s and 10, no user timeout.
    expect(readKeepAlive(client)).toEqual({ keepAlive: true, idle: 7000, interval: 1000, count: 10, userTimeout: 0 });
  });

  it('passes whole seconds and the user timeout in ms to setsockopt, after setKeepAlive', async () => {
    const { client } = await tcpPair();
    const calls: string[] = [];
    const fake: SockoptBackend = {
      set(_fd, level, name, value) {
        calls.push(`set ${level}/${name}=${value}`);
        return name === 18 ? 22 : 0;
      },
      get(_fd, level, name, out) {
        out[0] = level === 1 ? 1 : 7;
        calls.push(`get ${level}/${name}`);
        return 0;
      },
      describeErrno: (errno) => (errno === 22 ? 'EINVAL' : `errno ${errno}`),
    };
    __setSockoptForTests(fake);

    const result = applyKeepAlive(client, { idle: 7500, interval: 3999, count: 4, userTimeout: 12345 });

    expect(calls).toEqual(['get 1/9', 'get 6/4', 'set 6/5=3', 'set 6/6=4', 'set 6/18=12345']);
    expect(result).toEqual({
      applied: { ...allApplied, userTimeout: false },
      problems: ['setsockopt(TCP_USER_TIMEOUT, 12345) failed: EINVAL'],
    });
  });

  it('turns a throwing FFI call into a problem', async () => {
    const { client } = await tcpPair();
    const boom = (): never => {
      throw new TypeError('bad argument');
    };
    __setSockoptForTests({ set: boom, get: boom, describeErrno: String });

    const result = applyKeepAlive(client, tuned);

    expect(result).toEqual({ applied: { ...noneApplied, idle: true }, problems: ['setsockopt threw: bad argument'] });
    expect(readKeepAlive(client)).toBeUndefined();
  });
});

describe('applyKeepAlive on sockets it does not apply to', () => {
  it('skips an IPC socket with one problem and no reading', async () => {
    const path = join(dir, 'ka.sock');
    const server = net.createServer((s) => sockets.push(s));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const client = net.connect(path);
    sockets.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });

    expect(applyKeepAlive(client, tuned)).toEqual({
      applied: noneApplied,
      problems: ['keepalive does not apply to IPC sockets'],
    });
    expect(readKeepAlive(client)).toBeUndefined();
  });

  it('reports a destroyed socket instead of throwing', async () => {
    const { client } = await tcpPair();
    client.destroy();

    const result = applyKeepAlive(client, tuned);

    expect(result.applied).toEqual(noneApplied);
    expect(result.problems).toEqual([expect.stringContaining('no open handle')]);
    expect(readKeepAlive(client)).toBeUndefined();
  });
});
