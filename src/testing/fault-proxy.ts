// A TCP proxy that injects faults between a client under test and a real server: resets, stalls, delay, throttling,
// slicing, early close and a downed listener. It ACKs everything itself, so kernel keepalive and TCP_USER_TIMEOUT never
// see these faults; only application-level detection (heartbeats, timeouts) does, which is what it is for.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { describeValue, invalidOption } from '../errors.js';
import { checkHost, checkListen, checkPort, closeServer, listenOn, type ListenOptions } from './servers.js';

/**
 * What a proxy, or one of its connections, currently does to the bytes it forwards. One mode at a time: setting a
 * mode replaces the previous one. Delaying modes act on each direction separately.
 */
export type FaultMode =
  | { readonly kind: 'forward' }
  | { readonly kind: 'blackhole' }
  | { readonly kind: 'latency'; readonly ms: number; readonly jitter: number }
  | { readonly kind: 'bandwidth'; readonly bytesPerSec: number }
  | { readonly kind: 'slice'; readonly size: number; readonly delayMs: number }
  | { readonly kind: 'closeAfter'; readonly bytes: number };

/** One client connection through the proxy, paired with the proxy's own connection to the target. */
export interface ProxyConnection {
  /** 1, 2, 3… in accept order, unique within one proxy. */
  readonly id: number;
  /** The proxy's end of the client's connection (its `remotePort` is the client's `localPort`). */
  readonly client: Socket;
  /** The proxy's connection to the target. */
  readonly upstream: Socket;
  /** Bytes forwarded from the client to the target so far. */
  readonly bytesToUpstream: number;
  /** Bytes forwarded from the target to the client so far. */
  readonly bytesToClient: number;
  /** The mode acting on this connection now. */
  readonly mode: FaultMode;
  /** True once both sockets have closed and the connection has left {@link FaultProxy.connections}. */
  readonly closed: boolean;
  /** Calls `fn` once both sockets have closed (at once if they already have). Returns a function that removes it. */
  on(event: 'close', fn: () => void): () => void;
}

/**
 * A fault-injecting TCP proxy made by {@link createFaultProxy}.
 *
 * `reset()` acts once, on the connections open at the call. Every other fault is a mode that holds, for connections
 * accepted later too, until `heal()` or another mode replaces it. Given a `conn`, a method affects only that
 * connection, and the mode sticks to it alone; a later call without `conn` applies to every connection again.
 */
export interface FaultProxy {
  /** The port clients connect to; it stays the same across `refuse()` and `heal()`. */
  readonly port: number;
  readonly host: string;
  /** Connections open now, in accept order (a snapshot). */
  readonly connections: ReadonlyArray<ProxyConnection>;
  /** The proxy-wide mode, applied to every connection without a mode of its own. */
  readonly mode: FaultMode;
  /** Sends RST to both the client and the target (client sees ECONNRESET). Acts once, on connections open now. */
  reset(conn?: ProxyConnection): void;
  /**
   * Stops forwarding in both directions and stops reading, so kernel buffers fill and the sender stalls as behind a
   * dead link. Sockets stay open; nothing is sent, not even a FIN. Bytes already read are held and delivered on heal.
   */
  blackhole(conn?: ProxyConnection): void;
  /** Delays each chunk, in each direction, by `ms` ± up to `jitter` ms (uniform), keeping byte order. */
  latency(ms: number, jitter?: number, conn?: ProxyConnection): void;
  /** Limits throughput to `bytesPerSec` in each direction separately, paced in pieces of about 1/20 s of traffic. */
  bandwidth(bytesPerSec: number, conn?: ProxyConnection): void;
  /** Forwards in writes of at most `size` bytes, `delayMs` apart, in each direction (the socket has no Nagle delay). */
  slice(size: number, delayMs: number, conn?: ProxyConnection): void;
  /**
   * Ends both sides (FIN) once `bytes` have been forwarded, counting both directions together, from the moment the
   * mode takes effect on a connection (its accept, for new ones). Exactly `bytes` bytes get through; later bytes are
   * read and dropped so the close can complete. `closeAfter(0)` ends every connection as soon as it is accepted.
   */
  closeAfter(bytes: number, conn?: ProxyConnection): void;
  /** Closes the listener so new connections get ECONNREFUSED; open connections are left alone. */
  refuse(): void;
  /**
   * Back to plain forwarding. Without `conn`: every connection, the proxy-wide mode, and the listener (re-listening
   * on the same port after `refuse()`); bytes held by a blackhole or a delay are delivered, so stalled connections
   * recover. With `conn`: only that connection, whatever the proxy-wide mode is. The promise settles once the
   * listener is back; await it before connecting after a `refuse()`. It rejects if the port was taken meanwhile.
   */
  heal(conn?: ProxyConnection): Promise<void>;
  /** Calls `fn` for each accepted connection. Returns a function that removes it. */
  on(event: 'connection', fn: (conn: ProxyConnection) => void): () => void;
  /** Closes the listener, destroys every connection, clears every timer, and resolves once their handles are gone. */
  close(): Promise<void>;
}

/** Options of {@link createFaultProxy}. */
export interface FaultProxyOptions {
  /** The server the proxy forwards to. `{ host, port }` of an echo server fits as it is. */
  target: { host: string; port: number };
  /** Where the proxy listens; default `127.0.0.1`, port 0 (a free port, kept for the proxy's lifetime). */
  listen?: ListenOptions;
}

/**
 * Starts a fault proxy in front of `target`, in plain forwarding mode.
 *
 * @example
 * const echo = await createEchoServer();
 * const proxy = await createFaultProxy({ target: echo });
 * const socket = net.connect(proxy.port, proxy.host);
 * proxy.blackhole();   // the next heartbeat goes unanswered
 * await proxy.heal();
 * await proxy.close();
 */
export async function createFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  if (typeof opts !== 'object' || opts === null) {
    throw invalidOption('type', 'createFaultProxy', `createFaultProxy options must be an object, got ${describeValue(opts)}`);
  }
  const target = opts.target as unknown;
  if (typeof target !== 'object' || target === null) {
    throw invalidOption('type', 'target', `target must be an object { host, port }, got ${describeValue(target)}`);
  }
  const { host: targetHost, port: targetPort } = target as Record<string, unknown>;
  checkHost(targetHost, 'target.host');
  checkPort(targetPort, 'target.port', 1);
  const { host, port } = checkListen(opts.listen, 'listen');
  const proxy = new FaultProxyImpl({ host: targetHost, port: targetPort }, host);
  await proxy.start(port);
  return proxy;
}

const FORWARD: FaultMode = Object.freeze({ kind: 'forward' });
// Past this many bytes held by a delaying mode the source is paused, as a full receive window stalls a sender.
const MAX_HELD_BYTES = 1024 * 1024;
// Bandwidth is paced in pieces of ~1/20 s of traffic: smooth enough to measure, few enough timers.
const PACE_TICKS_PER_SEC = 20;

class FaultProxyImpl implements FaultProxy {
  port = 0;
  mode: FaultMode = FORWARD;
  private readonly links = new Map<number, Link>();
  private readonly connectionListeners = new Set<(conn: ProxyConnection) => void>();
  private readonly serversClosed: Promise<void>[] = [];
  private server: Server | undefined;
  private listener: 'listening' | 'refused' | 'closed' = 'listening';
  private relisten: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private nextId = 1;

  constructor(
    readonly target: { host: string; port: number },
    readonly host: string,
  ) {}

  get connections(): ReadonlyArray<ProxyConnection> {
    return Object.freeze([...this.links.values()]);
  }

  async start(port: number): Promise<void> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.port = await listenOn(server, this.host, port);
    this.serversClosed.push(new Promise((resolve) => server.once('close', resolve)));
    this.server = server;
  }

  reset(conn?: ProxyConnection): void {
    for (const link of this.targets(conn)) link.reset();
  }

  blackhole(conn?: ProxyConnection): void {
    this.apply({ kind: 'blackhole' }, conn);
  }

  latency(ms: number, jitter = 0, conn?: ProxyConnection): void {
    checkNumber(ms, 'latency.ms', 0);
    checkNumber(jitter, 'latency.jitter', 0);
    this.apply({ kind: 'latency', ms, jitter }, conn);
  }

  bandwidth(bytesPerSec: number, conn?: ProxyConnection): void {
    checkNumber(bytesPerSec, 'bandwidth.bytesPerSec', 0, true);
    this.apply({ kind: 'bandwidth', bytesPerSec }, conn);
  }

  slice(size: number, delayMs: number, conn?: ProxyConnection): void {
    checkInteger(size, 'slice.size', 1);
    checkNumber(delayMs, 'slice.delayMs', 0);
    this.apply({ kind: 'slice', size, delayMs }, conn);
  }

  closeAfter(bytes: number, conn?: ProxyConnection): void {
    checkInteger(bytes, 'closeAfter.bytes', 0);
    this.apply({ kind: 'closeAfter', bytes }, conn);
  }

  refuse(): void {
    if (this.listener !== 'listening') return;
    this.listener = 'refused';
    // Closing the handle closes the listening fd at once, so the very next SYN is answered with RST.
    this.server?.close();
    this.server = undefined;
  }

  heal(conn?: ProxyConnection): Promise<void> {
    this.apply(FORWARD, conn);
    if (conn === undefined && this.listener === 'refused') {
      this.listener = 'listening';
      this.relisten = this.start(this.port)
        .catch((err: unknown) => {
          if (this.listener === 'listening') this.listener = 'refused';
          throw err;
        })
        .finally(() => {
          this.relisten = undefined;
        });
    }
    return this.relisten ?? Promise.resolve();
  }

  on(event: 'connection', fn: (conn: ProxyConnection) => void): () => void {
    if (event !== 'connection') throw invalidOption('range', 'event', `event must be "connection", got ${describeValue(event)}`);
    this.connectionListeners.add(fn);
    return () => this.connectionListeners.delete(fn);
  }

  close(): Promise<void> {
    return (this.closing ??= this.shutdown());
  }

  /** Called by a link once both of its sockets have closed. */
  remove(link: Link): void {
    this.links.delete(link.id);
  }

  private async shutdown(): Promise<void> {
    this.listener = 'closed';
    // A re-listen in flight would otherwise bind a listener after we closed.
    await this.relisten?.catch(() => {});
    const server = this.server;
    this.server = undefined;
    const links = [...this.links.values()].map((link) => link.destroy());
    if (server) await closeServer(server, []);
    await Promise.all([...links, ...this.serversClosed]);
    this.connectionListeners.clear();
  }

  private accept(client: Socket): void {
    if (this.listener === 'closed') {
      client.on('error', () => {});
      client.destroy();
      return;
    }
    const upstream = connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    const link = new Link(this.nextId++, client, upstream, this);
    this.links.set(link.id, link);
    link.modeChanged();
    for (const fn of this.connectionListeners) fn(link);
  }

  private apply(mode: FaultMode, conn: ProxyConnection | undefined): void {
    if (conn === undefined) this.mode = mode;
    for (const link of this.targets(conn)) {
      link.override = conn === undefined ? undefined : mode;
      link.modeChanged();
    }
  }

  private targets(conn: ProxyConnection | undefined): Link[] {
    if (conn === undefined) return [...this.links.values()];
    if (!(conn instanceof Link) || conn.owner !== this) {
      throw invalidOption('type', 'conn', `conn must be a connection of this proxy, got ${describeValue(conn)}`);
    }
    return conn.closed ? [] : [conn];
  }
}

class Link implements ProxyConnection {
  /** A mode set on this connection alone; undefined follows the proxy. */
  override: FaultMode | undefined;
  /** Bytes closeAfter still lets through, both directions together. */
  private budget = 0;
  private ended = false;
  private openSockets = 2;
  private isClosed = false;
  private readonly toUpstream: Direction;
  private readonly toClient: Direction;
  private readonly closeListeners = new Set<() => void>();
  private readonly whenClosed: Promise<void>;
  private resolveClosed: () => void = () => {};

  constructor(
    readonly id: number,
    readonly client: Socket,
    readonly upstream: Socket,
    readonly owner: FaultProxyImpl,
  ) {
    this.whenClosed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.toUpstream = new Direction(client, upstream, this);
    this.toClient = new Direction(upstream, client, this);
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      // An abortive failure on one side (RST, or the target refusing) is passed on as RST to the other.
      socket.on('error', () => abort(other));
      socket.on('close', () => this.socketClosed());
    }
  }

  get mode(): FaultMode {
    return this.override ?? this.owner.mode;
  }

  get bytesToUpstream(): number {
    return this.toUpstream.forwarded;
  }

  get bytesToClient(): number {
    return this.toClient.forwarded;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  on(event: 'close', fn: () => void): () => void {
    if (event !== 'close') throw invalidOption('range', 'event', `event must be "close", got ${describeValue(event)}`);
    if (this.isClosed) {
      fn();
      return () => {};
    }
    this.closeListeners.add(fn);
    return () => this.closeListeners.delete(fn);
  }

  modeChanged(): void {
    const mode = this.mode;
    this.budget = mode.kind === 'closeAfter' ? mode.bytes : 0;
    if (mode.kind === 'closeAfter' && mode.bytes === 0) {
      this.end();
      return;
    }
    this.toUpstream.restart();
    this.toClient.restart();
  }

  /** The closeAfter byte allowance left, or Infinity for other modes. */
  allowance(): number {
    return this.mode.kind === 'closeAfter' ? this.budget : Infinity;
  }

  spend(bytes: number): void {
    if (this.mode.kind !== 'closeAfter') return;
    this.budget -= bytes;
    if (this.budget <= 0) this.end();
  }

  reset(): void {
    abort(this.client);
    abort(this.upstream);
  }

  destroy(): Promise<void> {
    this.client.destroy();
    this.upstream.destroy();
    return this.whenClosed;
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.toUpstream.finish();
    this.toClient.finish();
  }

  private socketClosed(): void {
    this.openSockets -= 1;
    if (this.openSockets > 0) return;
    this.isClosed = true;
    this.toUpstream.stop();
    this.toClient.stop();
    this.owner.remove(this);
    this.resolveClosed();
    for (const fn of this.closeListeners) fn();
    this.closeListeners.clear();
  }
}

interface Held {
  data: Buffer;
  /** performance.now() at arrival. */
  readonly at: number;
  /** When latency releases it; drawn once, when it first reaches the head under latency. */
  due: number | undefined;
}

/** Bytes flowing one way, from `src` to `dst`, through whatever the link's mode does to them. */
class Direction {
  forwarded = 0;
  private held: Held[] = [];
  private heldBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Pacing (bandwidth, slice): earliest time the next piece may go. */
  private nextAt = 0;
  private waitingDrain = false;
  private srcEnded = false;
  /** dst has been ended or the link torn down: nothing more is forwarded. */
  private done = false;

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly link: Link,
  ) {
    src.on('data', (data: Buffer) => this.onData(data));
    src.on('end', () => this.onEnd());
    // A source closed without a FIN we read (destroyed locally) ends the flow the same way.
    src.on('close', () => this.onEnd());
    dst.on('drain', () => {
      this.waitingDrain = false;
      this.pump();
    });
  }

  /** After a mode change: pacing and latency start afresh for what is held. */
  restart(): void {
    this.nextAt = 0;
    for (const chunk of this.held) chunk.due = undefined;
    this.pump();
  }

  /** closeAfter reached: end dst after what was written, and keep reading src, dropping it, so the close completes. */
  finish(): void {
    this.discard();
    if (!this.dst.destroyed && !this.dst.writableEnded) this.dst.end();
    if (!this.src.destroyed) this.src.resume();
  }

  /** The link is gone: drop everything and clear the timer. */
  stop(): void {
    this.discard();
  }

  private discard(): void {
    this.done = true;
    this.held = [];
    this.heldBytes = 0;
    this.clearTimer();
  }

  private onData(data: Buffer): void {
    if (this.done) return;
    this.held.push({ data, at: performance.now(), due: undefined });
    this.heldBytes += data.length;
    this.pump();
  }

  private onEnd(): void {
    if (this.srcEnded) return;
    this.srcEnded = true;
    this.pump();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.pump();
  };

  private pump(): void {
    this.clearTimer();
    if (this.done) return;
    const mode = this.link.mode;
    while (this.held.length > 0 && !this.waitingDrain && !this.done) {
      const wait = this.step(mode, performance.now());
      if (wait === Infinity) break;
      if (wait > 0) {
        this.timer = setTimeout(this.onTimer, Math.ceil(wait));
        break;
      }
    }
    if (this.done) return;
    // The FIN follows the data, and a black hole swallows it like the data.
    if (this.srcEnded && this.held.length === 0 && mode.kind !== 'blackhole') {
      this.done = true;
      if (!this.dst.destroyed && !this.dst.writableEnded) this.dst.end();
      return;
    }
    const stall = mode.kind === 'blackhole' || this.waitingDrain || this.heldBytes >= MAX_HELD_BYTES;
    if (this.src.destroyed || this.srcEnded) return;
    if (stall) this.src.pause();
    else this.src.resume();
  }

  /** Moves bytes for one step of `mode`: returns 0 after writing, else ms to wait (Infinity: hold until a change). */
  private step(mode: FaultMode, now: number): number {
    const head = this.held[0] as Held;
    switch (mode.kind) {
      case 'forward':
        return this.write(this.take(head.data.length, false));
      case 'blackhole':
        return Infinity;
      case 'latency':
        head.due ??= head.at + Math.max(0, mode.ms + (Math.random() * 2 - 1) * mode.jitter);
        return head.due > now ? head.due - now : this.write(this.take(head.data.length, false));
      case 'bandwidth': {
        const piece = Math.max(1, Math.ceil(mode.bytesPerSec / PACE_TICKS_PER_SEC));
        return this.paced(now, piece, (n) => (n * 1000) / mode.bytesPerSec);
      }
      case 'slice':
        return this.paced(now, mode.size, () => mode.delayMs);
      case 'closeAfter': {
        const n = Math.min(head.data.length, this.link.allowance());
        this.write(this.take(n, false));
        this.link.spend(n);
        return 0;
      }
    }
  }

  private paced(now: number, piece: number, interval: (bytes: number) => number): number {
    if (now < this.nextAt) return this.nextAt - now;
    const data = this.take(piece, true);
    this.nextAt = Math.max(this.nextAt, now) + interval(data.length);
    return this.write(data);
  }

  /** Removes up to `max` bytes from the front; `across` lets one piece span several received chunks. */
  private take(max: number, across: boolean): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    while (size < max && this.held.length > 0) {
      const head = this.held[0] as Held;
      const n = Math.min(max - size, head.data.length);
      parts.push(head.data.subarray(0, n));
      size += n;
      if (n === head.data.length) this.held.shift();
      else head.data = head.data.subarray(n);
      if (!across) break;
    }
    this.heldBytes -= size;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
  }

  private write(data: Buffer): 0 {
    if (data.length === 0) return 0;
    this.forwarded += data.length;
    // A destroyed dst means its link is closing: the bytes have nowhere to go.
    if (this.dst.destroyed || this.dst.writableEnded) return 0;
    if (!this.dst.write(data)) this.waitingDrain = true;
    return 0;
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** RST where possible (resetAndDestroy needs a connected TCP handle), else a plain destroy. */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || socket.pending) socket.destroy();
  else socket.resetAndDestroy();
}

function checkNumber(value: unknown, option: string, min: number, exclusive = false): asserts value is number {
  const bound = exclusive ? `> ${min}` : `>= ${min}`;
  if (typeof value !== 'number') {
    throw invalidOption('type', option, `${option} must be a finite number ${bound}, got ${describeValue(value)}`);
  }
  if (!Number.isFinite(value) || value < min || (exclusive && value === min)) {
    throw invalidOption('range', option, `${option} must be a finite number ${bound}, got ${describeValue(value)}`);
  }
}

function checkInteger(value: unknown, option: string, min: number): asserts value is number {
  if (typeof value !== 'number') {
    throw invalidOption('type', option, `${option} must be an integer >= ${min}, got ${describeValue(value)}`);
  }
  if (!Number.isInteger(value) || value < min) {
    throw invalidOption('range', option, `${option} must be an integer >= ${min}, got ${describeValue(value)}`);
  }
}
