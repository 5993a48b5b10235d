// IPC (unix domain sockets) through the public API: a `path` endpoint, alone or next to TCP endpoints.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ResilientSocket, connect, type Endpoint, type Failure } from '../src/index.js';
import { readKeepAlive } from '../src/keepalive.js';
import { listen, record, sleep, waitFor } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

let dir: string;
let next = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'resock-ipc-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh socket path in the test's temp dir; nothing listens on it yet. */
const socketPath = (): string => join(dir, `s${next++}.sock`);

const fast = { minDelay: 20, maxDelay: 200, stableAfter: 0 } as const;

interface IpcServer {
  sockets: Set<net.Socket>;
  /** Destroys every connection, stops listening and removes the socket file. */
  stop(): Promise<void>;
}

/** An echo server listening on the unix socket `path`. */
async function ipcServer(path: string): Promise<IpcServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => {
        // A crashed server leaves its socket file behind; a restarting one must remove it before listening again.
        rmSync(path, { force: true });
        resolve();
      });
    }));
  cleanups.push(stop);
  return { sockets, stop };
}

function client(opts: ConstructorParameters<typeof ResilientSocket>[0]): ResilientSocket {
  const sock = connect(opts);
  cleanups.push(() => sock.destroy());
  return sock;
}

async function expectEcho(sock: ResilientSocket, text: string): Promise<void> {
  let got = '';
  const done = waitFor(sock, 'data', 2000, (chunk) => (got += chunk.toString()).length >= text.length);
  sock.write(text);
  await done;
  expect(got).toBe(text);
}

describe('IPC endpoint', () => {
  it('connects to a unix socket, echoes, and reconnects after the server restarts on the same path', async () => {
    const path = socketPath();
    const first = await ipcServer(path);
    const sock = client({ path, reconnect: fast });

    expect(await waitFor(sock, 'connect', 2000)).toMatchObject({ endpoint: { path }, reconnected: false });
    expect(sock.socket).toBeInstanceOf(net.Socket);
    expect(sock.socket?.remoteAddress).toBeUndefined();
    await expectEcho(sock, 'over ipc');

    const events = record(sock, ['failure', 'connect']);
    await first.stop();
    // Down long enough for at least one refused dial against the missing file.
    await waitFor(sock, 'failure', 2000, (f) => f.kind === 'refused');
    await ipcServer(path);
    const again = await waitFor(sock, 'connect', 2000);

    expect(again).toMatchObject({ endpoint: { path }, reconnected: true });
    const failures = events.filter((e) => e.name === 'failure').map((e) => e.arg as Failure);
    expect(failures[0]).toMatchObject({ kind: 'peer-closed', phase: 'open', endpoint: { path } });
    // ECONNREFUSED when a dial lands between the listener closing and its file being removed.
    const refusals = failures.slice(1).map((f) => `${f.kind} ${f.phase} ${f.code === 'ECONNREFUSED' ? 'ENOENT' : f.code}`);
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(new Set(refusals)).toEqual(new Set(['refused connect ENOENT']));
    await expectEcho(sock, 'back');
  });

  it('a path with no socket file: kind refused, diagnosis peer-down', async () => {
    const path = socketPath();
    const sock = client({ path, reconnect: false });

    const closed = await waitFor(sock, 'close', 2000);

    expect(closed.reason).toBe('gave-up');
    expect(closed.failure).toMatchObject({
      kind: 'refused',
      code: 'ENOENT',
      phase: 'connect',
      retryable: true,
      endpoint: { path },
      diagnosis: { cause: 'peer-down' },
    });
  });

  it('does not apply keepalive and does not warn about it', async () => {
    const path = socketPath();
    await ipcServer(path);
    const keepAlive = { idle: 7000, interval: 2000, count: 4, userTimeout: 15000 };
    const sock = client({ path, keepAlive, reconnect: fast });
    const warnings = record(sock, ['warning']);

    await waitFor(sock, 'connect', 2000);
    await sleep(20);

    expect(warnings).toEqual([]);
    expect(sock.stats().keepAlive).toEqual({ requested: keepAlive, applied: false });
    expect(readKeepAlive(sock.socket!)).toBeUndefined();
  });
});

describe('endpoints mixing IPC and TCP', () => {
  it('stats().keepAlive follows the transport: applied on TCP, not on the IPC connection that replaces it', async () => {
    const path = socketPath();
    await ipcServer(path);
    const tcp = await listen((s) => s.pipe(s));
    cleanups.push(() => tcp.close());
    const keepAlive = { idle: 5000, interval: 1000, count: 3, userTimeout: 0 };
    const sock = client({ endpoints: [{ host: '127.0.0.1', port: tcp.port }, { path }], keepAlive, reconnect: fast });
    await waitFor(sock, 'connect', 2000);
    expect(sock.stats().keepAlive.applied).not.toBe(false);
    for (const s of tcp.sockets) s.resetAndDestroy();
    const next = await waitFor(sock, 'connect', 2000);
    expect(next.endpoint).toEqual({ path });
    expect(sock.stats().keepAlive).toEqual({ requested: keepAlive, applied: false });
  });

  it('rotate past a dead path to a live TCP endpoint, and back through it after a loss', async () => {
    const dead = socketPath();
    const tcp = await listen((s) => s.pipe(s));
    cleanups.push(() => tcp.close());
    const live: Endpoint = { host: '127.0.0.1', port: tcp.port };
    const sock = client({ endpoints: [{ path: dead }, live], keepAlive: false, reconnect: fast });
    const events = record(sock, ['connecting', 'failure', 'connect']);

    await waitFor(sock, 'connect', 2000);
    await expectEcho(sock, 'tcp');
    for (const s of tcp.sockets) s.resetAndDestroy();
    await waitFor(sock, 'connect', 2000);

    const seen = events.map((e) => {
      const arg = e.arg as { endpoint: Endpoint; kind?: string };
      return `${e.name} ${'path' in arg.endpoint ? 'ipc' : 'tcp'}${arg.kind ? ` ${arg.kind}` : ''}`;
    });
    expect(seen).toEqual([
      'connecting ipc',
      'failure ipc refused',
      'connecting tcp',
      'connect tcp',
      'failure tcp reset',
      'connecting ipc',
      'failure ipc refused',
      'connecting tcp',
      'connect tcp',
    ]);
    await expectEcho(sock, 'tcp again');
  });
});
