// Small real TCP servers to point a client (or a fault proxy) at in tests, and the listen/close plumbing they share
// with the proxy. Every socket gets an 'error' listener: a peer's reset must never become an uncaught exception.
import { createServer, type Server, type Socket } from 'node:net';
import { describeValue, invalidOption } from '../errors.js';

/** Where a test server listens. Defaults: host `127.0.0.1`, port `0` (the kernel picks a free port). */
export interface ListenOptions {
  host?: string;
  port?: number;
}

/** A running echo server: every byte received is written back on the same connection. */
export interface EchoServer {
  /** The port actually bound (useful when you asked for port 0). */
  readonly port: number;
  readonly host: string;
  /** Connections open right now. */
  readonly connections: number;
  /** Stops listening, destroys every open connection, and resolves once all their handles are released. */
  close(): Promise<void>;
}

/** Options of {@link createHeartbeatServer}. */
export interface HeartbeatServerOptions extends ListenOptions {
  /** The bytes that make a ping. Strings are UTF-8. Must not be empty. */
  ping: Buffer | string;
  /** The bytes sent back for each ping. Strings are UTF-8. Must not be empty. */
  pong: Buffer | string;
  /** Also echo every byte that is not part of a ping (default false: other bytes are swallowed). */
  echo?: boolean;
}

/** A running heartbeat server: answers each ping in the inbound stream with a pong. */
export interface HeartbeatServer {
  /** The port actually bound (useful when you asked for port 0). */
  readonly port: number;
  readonly host: string;
  /** Connections open right now. */
  readonly connections: number;
  /** Stops listening, destroys every open connection, and resolves once all their handles are released. */
  close(): Promise<void>;
}

const DEFAULT_HOST = '127.0.0.1';

const noop = (): void => {};

/**
 * Starts a TCP echo server.
 *
 * @example
 * const echo = await createEchoServer();
 * const proxy = await createFaultProxy({ target: echo });
 */
export async function createEchoServer(opts: ListenOptions = {}): Promise<EchoServer> {
  const { host, port } = checkListen(opts, 'createEchoServer');
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    track(sockets, socket);
    // pipe ends the socket after echoing everything once the peer half-closes.
    socket.pipe(socket);
  });
  return handle(server, sockets, host, await listenOn(server, host, port));
}

/**
 * Starts a TCP server that answers every occurrence of `ping` in each connection's inbound byte stream with `pong`,
 * in order, however the ping is split across TCP segments. Occurrences are matched left to right without overlap
 * (as `String.prototype.replaceAll` does). With `echo`, the other bytes are echoed around the pongs, so the reply
 * stream is the inbound stream with each ping replaced by a pong.
 *
 * @example
 * const hb = await createHeartbeatServer({ ping: 'PING\n', pong: 'PONG\n' });
 */
export async function createHeartbeatServer(opts: HeartbeatServerOptions): Promise<HeartbeatServer> {
  if (typeof opts !== 'object' || opts === null) {
    throw invalidOption('type', 'createHeartbeatServer', `createHeartbeatServer options must be an object, got ${describeValue(opts)}`);
  }
  const ping = toPattern(opts.ping, 'ping');
  const pong = toPattern(opts.pong, 'pong');
  if (opts.echo !== undefined && typeof opts.echo !== 'boolean') {
    throw invalidOption('type', 'echo', `echo must be a boolean, got ${describeValue(opts.echo)}`);
  }
  const echo = opts.echo ?? false;
  const { host, port } = checkListen(opts, 'createHeartbeatServer');
  const sockets = new Set<Socket>();
  // allowHalfOpen: a partial ping still held when the peer half-closes is echoed before our FIN.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    track(sockets, socket);
    const matcher = createPingMatcher(ping, pong, echo);
    socket.on('data', (chunk: Buffer) => {
      const out = matcher.push(chunk);
      if (out.length > 0) socket.write(out);
    });
    socket.on('end', () => {
      const rest = matcher.flush();
      if (rest.length > 0) socket.write(rest);
      socket.end();
    });
  });
  return handle(server, sockets, host, await listenOn(server, host, port));
}

/** What both servers return: the bound port, a live connection count, and a close() that runs once. */
function handle(server: Server, sockets: Set<Socket>, host: string, port: number): EchoServer {
  return {
    port,
    host,
    get connections() {
      return sockets.size;
    },
    close: once(() => closeServer(server, sockets)),
  };
}

/** Streaming ping→pong replacement; see {@link createPingMatcher}. */
export interface PingMatcher {
  /** Feeds one chunk; returns the bytes to send back for it (possibly empty). */
  push(chunk: Buffer): Buffer;
  /** At end of stream: the bytes of a partial ping still held back (empty unless echoing). */
  flush(): Buffer;
}

/**
 * The byte matcher behind {@link createHeartbeatServer}: a Knuth–Morris–Pratt scan that carries its match state across
 * chunks, so a ping split anywhere is still found. Bytes that might start a ping are held until they are known not to.
 * @internal exported for tests.
 */
export function createPingMatcher(ping: Buffer, pong: Buffer, echo: boolean): PingMatcher {
  const fail = failureTable(ping);
  // Bytes held back are always ping[0, state): a partial match needs no buffer of its own.
  let state = 0;
  return {
    push(chunk) {
      const out: Buffer[] = [];
      let run = -1; // start in `chunk` of plain bytes not yet emitted; only ever set while state === 0
      for (let i = 0; i < chunk.length; i++) {
        const byte = chunk[i];
        while (state > 0 && ping[state] !== byte) {
          const next = fail[state - 1] ?? 0;
          if (echo) out.push(ping.subarray(0, state - next));
          state = next;
        }
        if (ping[state] === byte) {
          if (state === 0 && run >= 0) {
            if (echo) out.push(chunk.subarray(run, i));
            run = -1;
          }
          state += 1;
          if (state === ping.length) {
            out.push(pong);
            state = 0;
          }
        } else if (run < 0) {
          run = i;
        }
      }
      if (run >= 0 && echo) out.push(chunk.subarray(run));
      return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    },
    flush() {
      const held = echo ? ping.subarray(0, state) : Buffer.alloc(0);
      state = 0;
      return held;
    },
  };
}

/** fail[i]: length of the longest proper prefix of pattern[0..i] that is also its suffix. */
function failureTable(pattern: Buffer): number[] {
  const fail = new Array<number>(pattern.length).fill(0);
  let k = 0;
  for (let i = 1; i < pattern.length; i++) {
    while (k > 0 && pattern[i] !== pattern[k]) k = fail[k - 1] ?? 0;
    if (pattern[i] === pattern[k]) k += 1;
    fail[i] = k;
  }
  return fail;
}

function toPattern(value: unknown, option: string): Buffer {
  if (typeof value === 'string' || Buffer.isBuffer(value)) {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    if (bytes.length === 0) throw invalidOption('range', option, `${option} must not be empty, got ${describeValue(value)}`);
    return bytes;
  }
  throw invalidOption('type', option, `${option} must be a Buffer or a string, got ${describeValue(value)}`);
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

function track(sockets: Set<Socket>, socket: Socket): void {
  sockets.add(socket);
  socket.on('error', noop);
  socket.on('close', () => sockets.delete(socket));
}

/** Validates listen options; `prefix` names the option object in error messages (`listen.port`). */
export function checkListen(opts: ListenOptions | undefined, prefix: string): { host: string; port: number } {
  if (opts === undefined) return { host: DEFAULT_HOST, port: 0 };
  if (typeof opts !== 'object' || opts === null) {
    throw invalidOption('type', prefix, `${prefix} must be an object, got ${describeValue(opts)}`);
  }
  const host = opts.host ?? DEFAULT_HOST;
  checkHost(host, `${prefix}.host`);
  const port = opts.port ?? 0;
  checkPort(port, `${prefix}.port`, 0);
  return { host, port };
}

/** Throws unless `host` is a non-empty string. */
export function checkHost(host: unknown, option: string): asserts host is string {
  if (typeof host !== 'string' || host.length === 0) {
    throw invalidOption('type', option, `${option} must be a non-empty string, got ${describeValue(host)}`);
  }
}

/** Throws unless `port` is an integer in [min, 65535]. */
export function checkPort(port: unknown, option: string, min: 0 | 1): asserts port is number {
  if (typeof port !== 'number') {
    throw invalidOption('type', option, `${option} must be an integer between ${min} and 65535, got ${describeValue(port)}`);
  }
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw invalidOption('range', option, `${option} must be an integer between ${min} and 65535, got ${describeValue(port)}`);
  }
}

/** Listens and resolves with the bound port; afterwards keeps an 'error' listener so a late accept error cannot crash. */
export function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', noop);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/** Closes the listener, destroys the sockets, and resolves when the server's handle and theirs are gone. */
export async function closeServer(server: Server, sockets: Iterable<Socket>): Promise<void> {
  await new Promise<void>((resolve) => {
    // 'close' fires only once the listener is closed and every accepted socket has closed.
    if (server.listening) server.close(() => resolve());
    else resolve();
    for (const socket of sockets) socket.destroy();
  });
  await handlesReleased();
}

/**
 * A server's 'close' is emitted on nextTick, before libuv has released its handle in the loop's closing phase.
 * Two check phases apart, that closing phase has passed, so the handle no longer shows in getActiveResourcesInfo().
 */
export async function handlesReleased(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}
