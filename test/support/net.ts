// Test-side plumbing: real servers on 127.0.0.1 port 0 and bounded waits for events.
import net from 'node:net';
import { afterEach } from 'vitest';
import { connect, type ResilientSocket } from '../../src/index.js';
import type { ResilientSocketEvents, ResilientSocketOptions } from '../../src/types.js';

export interface TestServer {
  server: net.Server;
  port: number;
  sockets: Set<net.Socket>;
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1 (port 0 unless given) that tracks its sockets so close() can end them all. */
export async function listen(onSocket: (s: net.Socket) => void = () => {}, port = 0): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    onSocket(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port that was just free: something listened on it and stopped. */
export async function freePort(): Promise<number> {
  const s = await listen();
  await s.close();
  return s.port;
}

type Args<E extends keyof ResilientSocketEvents> = Parameters<ResilientSocketEvents[E]>;

/** Resolves with the first event `name` whose arguments pass `match`; rejects after `ms`. */
export function waitFor<E extends keyof ResilientSocketEvents>(
  sock: ResilientSocket,
  name: E,
  ms: number,
  match: (...args: Args<E>) => boolean = () => true,
): Promise<Args<E>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.off(name, listener as never);
      reject(new Error(`no '${String(name)}' event within ${ms} ms (state ${sock.state})`));
    }, ms);
    const listener = (...args: Args<E>): void => {
      if (!match(...args)) return;
      clearTimeout(timer);
      sock.off(name, listener as never);
      resolve(args[0]);
    };
    sock.on(name, listener as never);
  });
}

/** Records every event of the given names, in order, with a timestamp. */
export function record(sock: ResilientSocket, names: Array<keyof ResilientSocketEvents>): Array<{ name: string; arg: unknown; t: number }> {
  const out: Array<{ name: string; arg: unknown; t: number }> = [];
  for (const name of names) sock.on(name, ((arg: unknown) => out.push({ name, arg, t: performance.now() })) as never);
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Our handle and timer kinds currently alive, to compare before and after a test. */
export function activeResources(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'FSReqCallback');
}

/** Waits (bounded) until the active resources are back to `baseline`, and returns what is still extra. */
export async function settleResources(baseline: string[], ms = 2000): Promise<string[]> {
  const deadline = performance.now() + ms;
  for (;;) {
    const extra = diffCounts(activeResources(), baseline);
    if (extra.length === 0 || performance.now() > deadline) return extra;
    await sleep(20);
  }
}

function diffCounts(now: string[], before: string[]): string[] {
  const counts = new Map<string, number>();
  for (const r of before) counts.set(r, (counts.get(r) ?? 0) + 1);
  const extra: string[] = [];
  for (const r of now) {
    const c = counts.get(r) ?? 0;
    if (c > 0) counts.set(r, c - 1);
    else extra.push(r);
  }
  return extra;
}

/**
 * Takes over uncaught exceptions until restore(): a listener's exception that resock surfaces on a later tick lands in
 * `errors` instead of failing the run. Restores the runner's own handlers afterwards.
 */
export function captureUncaught(): { errors: unknown[]; restore: () => void } {
  const saved = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  const errors: unknown[] = [];
  const mine = (err: unknown): void => {
    errors.push(err);
  };
  process.on('uncaughtException', mine);
  return {
    errors,
    restore: () => {
      process.off('uncaughtException', mine);
      for (const l of saved) process.on('uncaughtException', l);
    },
  };
}

/** Resolves once `check()` is true, polling; rejects after `ms`. */
export async function until(check: () => boolean, ms: number, what = 'condition'): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await sleep(5);
  }
}

/** Bytes offset..offset+n-1 of a stream whose byte i is (i * 7 + i >> 8) & 255: any loss, duplicate, reorder or cut shows. */
export function pattern(offset: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) {
    const k = offset + i;
    b[i] = (k * 7 + (k >> 8)) & 255;
  }
  return b;
}

/**
 * A server-side sender: writes `total` bytes of pattern() to `s` in `chunk`-sized writes, honouring backpressure.
 * `sent()` says how far it got, which a paused reader keeps small.
 */
export function sendPattern(s: net.Socket, total: number, chunk: number): { sent(): number } {
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      const n = Math.min(chunk, total - sent);
      const ok = s.write(pattern(sent, n));
      sent += n;
      if (!ok) {
        s.once('drain', pump);
        return;
      }
    }
  };
  pump();
  return { sent: () => sent };
}

/**
 * One test file's cleanup list, run after each test in reverse order, and the ResilientSocket and server makers that
 * register with it. `defaults` are the client options of that file.
 */
export function harness(defaults: Partial<ResilientSocketOptions>): {
  defer(fn: () => unknown): void;
  client(opts: ResilientSocketOptions): ResilientSocket;
  server(onSocket?: (s: net.Socket) => void, port?: number): Promise<TestServer>;
} {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  return {
    defer: (fn) => void cleanups.push(fn),
    client: (opts) => {
      const sock = connect({ host: '127.0.0.1', keepAlive: false, ...defaults, ...opts });
      cleanups.push(() => sock.destroy());
      return sock;
    },
    server: async (onSocket, port) => {
      const srv = await listen(onSocket, port);
      cleanups.push(() => srv.close());
      return srv;
    },
  };
}
