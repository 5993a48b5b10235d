// ResilientSocket: one long-lived logical connection over a succession of raw sockets. It owns the lifecycle, the offline
// queue and the reconnect loop; a Connection owns each raw socket; everything else is a pure module it calls.
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { inspect } from 'node:util';
import pRetry from 'p-retry';
import { onAbort } from './abort.js';
import { type Backoff, createBackoff } from './backoff.js';
import { type Connection, connectionClass } from './connection.js';
import { now } from './clock.js';
import { type ChannelName, channels } from './diagnostics.js';
import { ResockError, codeError } from './errors.js';
import { isError } from './classify.js';
import { buildFailure, droppedRightAfterAccept, peerIdleWarning, withPeerClose } from './failure.js';
import { handshake, sleep } from './handshake.js';
import { learnIdleLimit } from './diagnosis.js';
import { applyKeepAlive, readTcpInfo } from './keepalive.js';
import { resolveOptions } from './options.js';
import { OfflineQueue, newEntry, rejectEntry, type WriteCallback, type WriteEntry } from './queue.js';
import { decideReconnect, type ReconnectDecision } from './reconnect.js';
import { isTerminal, transition } from './state.js';
import { SocketEmitter, surface } from './emitter.js';
import { argError, toBuffer } from './write-args.js';
import { ReadyWaiters, type ReadyOptions } from './ready.js';
import { createStream, type StreamHost } from './stream.js';
import { describeEndpoint, dial } from './transport.js';
import type {
  CloseReason,
  ResolvedOfflineQueue,
  DiagnosisCause,
  Endpoint,
  Failure,
  FailureKind,
  FailurePhase,
  ResilientSocketEvents,
  ResilientSocketOptions,
  ResolvedOptions,
  SocketState,
  SocketStats,
} from './types.js';

// Node 20 defines Symbol.asyncDispose; the fallback is the name Node's own polyfill uses.
const ASYNC_DISPOSE: typeof Symbol.asyncDispose = (Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')) as typeof Symbol.asyncDispose;

/** Carries a Failure through p-retry, which only deals in errors. */
class FailureError extends Error {
  readonly failure: Failure;
  readonly decision: ReconnectDecision;
  constructor(failure: Failure, decision: ReconnectDecision) {
    // Never shown to anyone: only its failure is read. Without a stack trace it costs a crowd of redialing clients
    // (one per refused dial) a few microseconds less each.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(failure.message);
    Error.stackTraceLimit = limit;
    this.name = 'FailureError';
    this.failure = failure;
    this.decision = decision;
  }
}

/**
 * A run of attempts: from the first dial, or the loss of a stable connection, until a connection stays open for
 * stableAfter. A connection lost sooner is one more failure of the same run. The next run starts afresh, so this
 * exists only during a run.
 */
interface Run {
  /** Attempts made in this run. */
  attempt: number;
  retriesUsed: number;
  /** When the run's first failure happened; -1 before it. */
  firstFailureAt: number;
  previousKind: FailureKind | undefined;
  /** What the failure before diagnosed: a SYN timeout right after a hung or refusing listener is not a dead path. */
  previousCause: DiagnosisCause | undefined;
  earlyDrops: number;
  backoff: Backoff | undefined;
  /** Fires once the newest connection has been open for stableAfter; set only until then. */
  stable: NodeJS.Timeout | undefined;
}

/** Exists from the moment the socket starts closing. */
interface Closing {
  reason: CloseReason;
  /** destroy()'s error, or the abort signal's reason, whatever it is. */
  cause: unknown;
  failure: Failure | undefined;
  /** 'close' was emitted. */
  emitted: boolean;
  /** What close() returns, made on first request: most sockets are closed without anyone awaiting it. */
  promise: Promise<void> | undefined;
  resolve: (() => void) | undefined;
}

/**
 * What earlier connections and failures left behind, kept for stats() and the next diagnosis. Made at the first
 * failure: a socket whose first connection never fails carries one empty field instead of six.
 */
interface Past {
  failures: Partial<Record<FailureKind, number>>;
  lastFailure: Failure | undefined;
  /** When the last connection was lost; -1 before. */
  lostAt: number;
  /** Counted over connections that have ended. */
  bytesRead: number;
  bytesWritten: number;
  /** Counts failures: each sends the next attempt to the next endpoint. */
  endpointIndex: number;
  /** Quiet time at each FIN from the peer (failure.ts withPeerClose): the peer's idle limit is learned from it. */
  peerIdleCloses: readonly number[] | undefined;
  /** PEER_IDLE_LIMIT was emitted. */
  peerIdleWarned: boolean;
}


// What keepalive.ts reported for the current connection, one bit per setting, KEEPALIVE_TRIED when it was applied
// at all (not for IPC, keepAlive off or before the first connection), and whether this socket has warned about it.
// A number rather than a report object per socket: stats() builds the object when asked.
const KEEPALIVE_BITS = { idle: 1, interval: 2, count: 4, userTimeout: 8 } as const;
const KEEPALIVE_KEYS = Object.keys(KEEPALIVE_BITS) as (keyof typeof KEEPALIVE_BITS)[];
const KEEPALIVE_TRIED = 16;
const KEEPALIVE_WARNED = 32;

export class ResilientSocket extends SocketEmitter {
  /** The resolved, frozen options. */
  readonly options: ResolvedOptions;

  // Many fields below are created only when first needed: an open, stable connection is the common case, and a
  // process may hold tens of thousands of them.
  #state: SocketState = 'idle';
  /** Only while writes wait in it. */
  #queue: OfflineQueue | undefined;
  #run: Run | undefined;
  // Aborted when the socket starts closing: cancels the dial loop's dials, handshakes, backoff sleeps and retries. One
  // per loop, set exactly while a loop runs, which makes it the guard that only one runs at a time.
  #loopAborter: AbortController | undefined;
  /** Stops watching the user's signal; only when one was given. */
  #unwatchSignal: (() => void) | undefined;
  #closing: Closing | undefined;
  #readyWaiters: ReadyWaiters | undefined;

  /** The current connection; its endpoint is endpoints[endpointIndex], which only a failure moves on. */
  #conn: Connection<ResilientSocket> | undefined;
  /** The attempt that opened the current connection: a failure on it belongs to that attempt. */
  #connAttempt = 0;

  // Counters and evidence across connections.
  #attempts = 0;
  #connects = 0;
  #past: Past | undefined;
  // -1 until the first reply. A number field rather than `number | undefined` so V8 updates it in place and a
  // heartbeat reply allocates nothing that outlives it.
  #rtt = -1;
  #keepAlive = 0;
  /** A write() answered false: a 'drain' is owed. */
  #needDrain = false;
  /** cork() depth, and the writes it holds back: they leave as one write at the last uncork(). */
  #corked = 0;
  #corkedWrites: { chunks: Buffer[]; cbs: WriteCallback[] } | undefined;
  /** Set while the user's onConnect runs its synchronous part, and counts writes made during a handshake. */
  #inOnConnect = false;
  #handshakeWrites = -1;
  /** Read-side flow control: why reading is held (bits below), and what arrived meanwhile, in order. */
  #readHold = 0;
  #inbox: { items: Buffer[]; head: number; bytes: number } | undefined;
  /** unref() was called: no handle or timer of this socket keeps the process alive. */
  #unref = false;
  /** reconnect() asked for the next dial now: the backoff wait is skipped once. */
  #redialNow = false;
  /** Ends the current backoff wait early (reconnect()). */
  #wake: (() => void) | undefined;
  #stream: Duplex | undefined;

  constructor(options: ResilientSocketOptions) {
    super();
    this.options = resolveOptions(options);
    const signal = this.options.signal;
    if (signal !== undefined && !signal.aborted) this.#unwatchSignal = onAbort(signal, () => this.#abort(signal));
  }

  get state(): SocketState {
    return this.#state;
  }

  #to(next: SocketState): void {
    this.#state = transition(this.#state, next);
  }

  get #terminal(): boolean {
    return isTerminal(this.#state);
  }

  #runState(): Run {
    return (this.#run ??= {
      attempt: 0,
      retriesUsed: 0,
      firstFailureAt: -1,
      previousKind: undefined,
      previousCause: undefined,
      earlyDrops: 0,
      backoff: undefined,
      stable: undefined,
    });
  }

  #pastState(): Past {
    return (this.#past ??= {
      failures: {},
      lastFailure: undefined,
      lostAt: -1,
      bytesRead: 0,
      bytesWritten: 0,
      endpointIndex: 0,
      peerIdleCloses: undefined,
      peerIdleWarned: false,
    });
  }

  /** The endpoint of the next attempt, and of the current connection while one is open. */
  #endpoint(): Endpoint {
    const endpoints = this.options.endpoints;
    return endpoints[(this.#past?.endpointIndex ?? 0) % endpoints.length]!;
  }

  /** The current raw socket, or null between connections. Writing to it directly bypasses resock's accounting. */
  get socket(): net.Socket | null {
    return this.#conn?.socket ?? null;
  }

  /** Starts connecting. Calling it again has no effect. */
  connect(): this {
    if (this.#state !== 'idle') return this;
    const signal = this.options.signal;
    if (signal?.aborted) {
      // Closed now, announced later: the caller attaches its listeners after connect() returns.
      this.#beginClose('aborted', abortCause(signal));
      queueMicrotask(() => this.#finishClose());
      return this;
    }
    this.#to('connecting');
    void this.#loop(undefined);
    return this;
  }

  /**
   * Writes like net.Socket#write: `write(data)`, `write(data, cb)`, `write(data, encoding, cb)`. While no connection is
   * open the write waits in the offline queue. Returns false when the caller should wait for 'drain' before writing
   * more; a 'drain' then follows unless the socket closes first. A write that can never be sent is reported to its
   * callback with a coded error (ERR_RESOCK_CLOSED, _QUEUE_FULL, _DROPPED, _EXPIRED, _NOT_OPEN, or the framing's).
   * With framing, `data` is one frame. Arguments of the wrong type throw a TypeError at once.
   */
  write(data: string | Uint8Array, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback): boolean {
    if (typeof encoding === 'function') {
      if (cb !== undefined) throw argError('ERR_INVALID_ARG_TYPE', 'write(data, cb) takes no third argument');
      cb = encoding;
      encoding = undefined;
    }
    if (cb !== undefined && typeof cb !== 'function') {
      throw argError('ERR_INVALID_ARG_TYPE', `write() callback must be a function, got ${typeof cb}`);
    }
    let buf = toBuffer(data, encoding);
    const framing = this.options.framing;
    if (framing !== undefined) {
      try {
        buf = framing.encode(buf);
      } catch (err) {
        // The frame is refused, not the connection. Without a callback nothing else could say so: throw.
        if (cb === undefined) throw err;
        process.nextTick(cb, err);
        return !this.#needDrain;
      }
    }
    if (this.#corked > 0 && !this.#terminal) {
      const held = (this.#corkedWrites ??= { chunks: [], cbs: [] });
      held.chunks.push(buf);
      if (cb !== undefined) held.cbs.push(cb);
      return !this.#needDrain;
    }
    return this.#write(buf, cb);
  }

  #write(buf: Buffer, cb: WriteCallback | undefined): boolean {
    const conn = this.#conn;
    if (conn !== undefined && conn.writable && this.#state === 'open') {
      const ok = conn.writeNow(buf, cb);
      if (!ok) this.#needDrain = true;
      return ok;
    }
    if (this.#inOnConnect) {
      throw new ResockError(
        'ERR_RESOCK_CALLBACK',
        'onConnect wrote through the ResilientSocket: those writes wait until onConnect finishes, so awaiting one would never end. Write handshake bytes to the socket onConnect receives',
      );
    }
    if (this.#handshakeWrites >= 0) this.#handshakeWrites++;
    if (!this.#enqueue(newEntry(buf, cb, now()))) {
      // Refused: its callback says why. Once closed no 'drain' can come ('close' did); otherwise one follows the flush.
      if (!this.#terminal) this.#needDrain = true;
      return false;
    }
    // Like net.Socket while it connects: past the high-water mark the producer should wait for the flush's 'drain'.
    if (this.#queue!.bytes < QUEUE_HIGH_WATER) return true;
    this.#needDrain = true;
    return false;
  }

  /**
   * Holds writes back until the matching uncork(): they then leave as one write, so nothing (a heartbeat ping, a
   * reconnect) can come between them, and a lost connection sends them again together or not at all.
   */
  cork(): void {
    this.#corked++;
  }

  uncork(): void {
    if (this.#corked === 0) return;
    this.#corked--;
    if (this.#corked === 0) this.#releaseCorked();
  }

  #releaseCorked(): void {
    const held = this.#corkedWrites;
    this.#corkedWrites = undefined;
    if (held === undefined) return;
    const data = held.chunks.length === 1 ? held.chunks[0]! : Buffer.concat(held.chunks);
    const cbs = held.cbs;
    const cb: WriteCallback | undefined =
      cbs.length === 0 ? undefined : cbs.length === 1 ? cbs[0] : (err) => {
        for (const f of cbs) f(err);
      };
    this.#write(data, cb);
  }

  /** Resolves once the bytes are handed to the kernel; rejects with a coded error when they never can be. */
  send(data: string | Uint8Array, encoding?: BufferEncoding): Promise<void> {
    return new Promise((resolve, reject) => {
      this.write(data, encoding, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Writes one frame; requires the framing option. */
  sendMessage(frame: string | Uint8Array, cb?: WriteCallback): boolean {
    if (this.options.framing === undefined) {
      throw new ResockError('ERR_RESOCK_PROTOCOL', 'sendMessage() needs the framing option (lines() or lengthPrefixed())');
    }
    return this.write(frame, cb);
  }

  /**
   * Resolves when the socket is open; rejects if it closes first, with ERR_RESOCK_READY_TIMEOUT after `timeout` ms, or
   * with ERR_RESOCK_ABORTED when `signal` aborts. Does not start connecting by itself; giving up waiting does not close
   * the socket.
   */
  ready(options?: ReadyOptions): Promise<void> {
    const state = this.#state;
    if (state === 'open') return Promise.resolve();
    if (this.#terminal) return Promise.reject(new ResockError(closedCode(this.#closing), `socket is ${state}`, { cause: this.#closing?.cause }));
    return (this.#readyWaiters ??= new ReadyWaiters()).wait(options, this.#unref, () => `state ${this.#state}`);
  }

  // ---- read-side flow control -------------------------------------------------------------------------------------

  /**
   * Stops 'data' and 'message' events until resume(), across reconnects. What arrives meanwhile is held, up to
   * PAUSED_READ_BUFFER bytes; then resock stops reading and the kernel's window pushes back on the peer. Heartbeats
   * go on while resock still reads (a reply is recognised and held back with the rest); once reading stops they are
   * suspended, never blamed on the peer, and start over on resume().
   */
  pause(): this {
    this.#holdReads(HOLD_USER, true);
    return this;
  }

  /** Delivers what was held, in order, then reads on. */
  resume(): this {
    this.#holdReads(HOLD_USER, false);
    return this;
  }

  isPaused(): boolean {
    return (this.#readHold & HOLD_USER) !== 0;
  }

  #holdReads(bit: number, hold: boolean): void {
    if (hold) {
      this.#readHold |= bit;
      return;
    }
    if ((this.#readHold & bit) === 0) return;
    this.#readHold &= ~bit;
    this.#releaseHeld();
  }

  #releaseHeld(): void {
    const inbox = this.#inbox;
    if (inbox !== undefined) {
      const name = this.options.framing === undefined ? 'data' : 'message';
      // A listener may pause again: stop there, and keep the rest in order.
      while (this.#readHold === 0 && inbox.head < inbox.items.length) {
        const item = inbox.items[inbox.head++]!;
        inbox.bytes -= item.length;
        this.emitShielded(name, item);
      }
      if (inbox.head === inbox.items.length) this.#inbox = undefined;
    }
    if (this.#readHold === 0 || (this.#inbox?.bytes ?? 0) < PAUSED_READ_BUFFER) this.#conn?.resumeReading();
  }

  /** Inbound bytes or a frame: delivered now, or held while reading is paused. */
  #deliver(name: 'data' | 'message', item: Buffer): void {
    if (this.#readHold === 0 && this.#inbox === undefined) {
      this.emitShielded(name, item);
      return;
    }
    const inbox = (this.#inbox ??= { items: [], head: 0, bytes: 0 });
    inbox.items.push(item);
    inbox.bytes += item.length;
    if (inbox.bytes >= PAUSED_READ_BUFFER) this.#conn?.pauseReading();
  }

  // ---- members a net.Socket user reaches for ----------------------------------------------------------------------

  /** Lets the process exit while this socket is its only activity, across reconnects, backoff waits and heartbeats. */
  unref(): this {
    this.#unref = true;
    this.#conn?.socket.unref();
    return this;
  }

  ref(): this {
    this.#unref = false;
    this.#conn?.socket.ref();
    return this;
  }

  /**
   * Drops the current connection now and dials again at once, or cuts a backoff wait short. The failure it reports is
   * local (kind 'aborted', cause 'local-abort'), never the peer's. Writes not yet in the kernel go out on the next
   * connection. No effect while a dial is in progress or once closed.
   */
  reconnect(): this {
    const state = this.#state;
    if (state === 'idle') return this.connect();
    if (state === 'open' && this.#conn !== undefined) {
      this.#redialNow = true;
      this.#conn.fail(codeError('ERR_RESOCK_RECONNECT', 'reconnect() was called'));
    } else if (state === 'reconnecting') {
      this.#redialNow = true;
      this.#wake?.();
    }
    return this;
  }

  get remoteAddress(): string | undefined {
    return this.#conn?.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#conn?.socket.remotePort;
  }

  get remoteFamily(): string | undefined {
    return this.#conn?.socket.remoteFamily;
  }

  get localAddress(): string | undefined {
    return this.#conn?.socket.localAddress;
  }

  get localPort(): number | undefined {
    return this.#conn?.socket.localPort;
  }

  /**
   * A standard stream.Duplex over this socket, the same one on every call. Its readable side carries inbound bytes
   * (one message per chunk, in object mode, with framing) across reconnects, with backpressure through pause(); its
   * writable side is write(). It ends when the socket closes, or is destroyed with the closing failure when resock
   * gave up or failed fatally, so a pipeline settles. Ending its writable side closes the socket gracefully.
   */
  stream(): Duplex {
    return (this.#stream ??= createStream(this as unknown as StreamHost, this.options.framing !== undefined, (hold) =>
      this.#holdReads(HOLD_STREAM, hold),
    ));
  }

  async [ASYNC_DISPOSE](): Promise<void> {
    await this.close();
  }

  [inspect.custom](depth: number, options: { stylize(text: string, style: string): string }): string {
    const endpoint = describeEndpoint(this.#endpoint());
    const fields = {
      state: this.#state,
      endpoint,
      attempts: this.#attempts,
      connects: this.#connects,
      queuedWrites: this.#queue?.length ?? 0,
      paused: this.isPaused(),
      lastFailure: this.#past?.lastFailure?.kind,
    };
    if (depth < 0) return options.stylize(`[ResilientSocket ${this.#state} ${endpoint}]`, 'special');
    return `ResilientSocket ${inspect(fields, { ...options, depth: 1 } as never)}`;
  }

  /** Writes `data` if given, then closes gracefully. */
  end(data?: string | Uint8Array, encoding?: BufferEncoding): this {
    if (data !== undefined) this.write(data, encoding);
    void this.close();
    return this;
  }

  /**
   * Graceful close: what is written goes out, then FIN, then wait for the peer's close (at most connectTimeout).
   * Writes still in the offline queue are rejected with ERR_RESOCK_CLOSED.
   */
  close(): Promise<void> {
    const state = this.#state;
    if (state === 'closed' || state === 'closing') return this.#whenClosed();
    // What was written goes out, corked or not.
    this.#corked = 0;
    this.#releaseCorked();
    this.#beginClose('closed', undefined);
    const conn = this.#conn;
    if (conn !== undefined && conn.writable) {
      conn.end();
      const timer = setTimeout(() => conn.destroy(), this.options.connectTimeout);
      timer.unref();
      this.#whenClosed().then(() => clearTimeout(timer), undefined);
    } else {
      this.#finishClose();
    }
    return this.#whenClosed();
  }

  /** Closes at once. Writes not yet handed to the kernel are rejected with ERR_RESOCK_CLOSED (cause: `err`). */
  destroy(err?: Error): void {
    this.#closeNow('closed', err);
  }

  stats(): SocketStats {
    const conn = this.#conn;
    const past = this.#past;
    return {
      state: this.#state,
      attempts: this.#attempts,
      connects: this.#connects,
      failures: { ...past?.failures },
      bytesRead: (past?.bytesRead ?? 0) + (conn?.socket.bytesRead ?? 0),
      bytesWritten: (past?.bytesWritten ?? 0) + (conn?.evidence().bytesWritten ?? 0),
      queuedBytes: this.#queue?.bytes ?? 0,
      queuedWrites: this.#queue?.length ?? 0,
      lastFailure: past?.lastFailure,
      rtt: this.#rtt < 0 ? undefined : this.#rtt,
      keepAlive: this.#keepAliveReport(),
      tcp: conn === undefined ? undefined : readTcpInfo(conn.socket),
      peerIdleLimit: learnIdleLimit(past?.peerIdleCloses)?.limit,
    };
  }

  // ---- reconnect loop -------------------------------------------------------------------------------------------

  /**
   * Dials until a connection opens, or gives up. Only one loop runs at a time. `initial` is the failure that ended the
   * last connection: the loop waits out its backoff first.
   */
  async #loop(initial: Failure | undefined): Promise<void> {
    if (this.#loopAborter !== undefined) return;
    const aborter = new AbortController();
    this.#loopAborter = aborter;
    const signal = aborter.signal;
    // Let the caller attach listeners before the first event.
    await undefined;
    try {
      if (initial !== undefined) await this.#pause(initial, signal);
      await pRetry(() => this.#attempt(signal), {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: 0,
        maxTimeout: 0,
        signal,
        // The decision was taken and committed where the failure was judged (#connectFailed); p-retry only carries it.
        shouldRetry: ({ error }) => (error as FailureError).decision?.retry === true,
        onFailedAttempt: async ({ error }) => {
          const failure = (error as FailureError).failure;
          if (failure !== undefined && (error as FailureError).decision?.retry === true) await this.#pause(failure, signal);
        },
      });
    } catch (err) {
      // Whatever ends the loop without a committed close is resock's own bug: close rather than strand the socket.
      if (!this.#terminal) {
        const failure = (err as FailureError).failure;
        this.#closeNow(failure?.retryable === false ? 'fatal' : 'gave-up', undefined, failure);
      }
    } finally {
      this.#loopAborter = undefined;
    }
  }

  /** Decides what follows `failure` and commits it: the run's counters and, when resock gives up, the close. */
  #decide(failure: Failure): ReconnectDecision {
    const decision = this.#terminal
      ? ({ retry: false, reason: 'gave-up' } as const)
      : decideReconnect(this.options.reconnect, failure, this.#run, now());
    if (decision.retry && decision.callbackError !== undefined) surface(decision.callbackError);
    return decision;
  }

  /** Waits out the backoff before the next attempt. */
  async #pause(failure: Failure, signal: AbortSignal): Promise<void> {
    const rc = this.options.reconnect;
    if (rc === false) return;
    const run = this.#runState();
    run.retriesUsed++;
    let delay = (run.backoff ??= createBackoff(rc)).next();
    if (rc.maxElapsed !== Number.POSITIVE_INFINITY && run.firstFailureAt >= 0) {
      delay = Math.max(0, Math.min(delay, rc.maxElapsed - (now() - run.firstFailureAt)));
    }
    if (this.#redialNow) {
      this.#redialNow = false;
      delay = 0;
    }
    if (this.#state !== 'reconnecting') this.#to('reconnecting');
    this.#publish('reconnecting', { attempt: run.attempt + 1, delay, failure });
    if (this.#terminal) throw signal.reason;
    if (delay === 0) return;
    await sleep(delay, signal, this.#unref, (wake) => (this.#wake = wake));
    this.#wake = undefined;
  }

  async #attempt(loopSignal: AbortSignal): Promise<void> {
    if (this.#terminal) throw loopSignal.reason;
    const endpoint = this.#endpoint();
    this.#attempts++;
    const run = this.#runState();
    run.attempt++;
    if (this.#state !== 'connecting') this.#to('connecting');
    this.#publish('connecting', { attempt: run.attempt, endpoint });
    // A 'connecting' listener may have closed the socket: then this dial never starts.
    if (this.#terminal) throw loopSignal.reason;

    const attempt = new AbortController();
    let phase: FailurePhase = 'connect';
    let tcpUp = false;
    const onClosing = (): void => attempt.abort(loopSignal.reason);
    loopSignal.addEventListener('abort', onClosing, { once: true });
    const timer = setTimeout(() => {
      const stalled = phase === 'handshake' ? 'the onConnect handshake' : tcpUp ? 'the TLS handshake' : 'connect';
      const writes = phase === 'handshake' ? this.#handshakeWrites : 0;
      // Writes through the ResilientSocket wait for onConnect; an onConnect that awaits one never finishes.
      const hint =
        writes > 0
          ? `; ${writes} write(s) were made through the ResilientSocket meanwhile, and those wait for onConnect: if onConnect awaited one, write to the socket it receives instead`
          : '';
      attempt.abort(
        codeError(
          phase === 'connect' && !tcpUp ? 'ERR_RESOCK_CONNECT_TIMEOUT' : 'ERR_RESOCK_HANDSHAKE_TIMEOUT',
          `${stalled} to ${describeEndpoint(endpoint)} did not finish within connectTimeout (${this.options.connectTimeout} ms)${hint}`,
        ),
      );
    }, this.options.connectTimeout);
    if (this.#unref) timer.unref();

    let socket: net.Socket | undefined;
    try {
      socket = await dial(endpoint, this.options.tls, this.options.noDelay, attempt.signal, () => {
        tcpUp = true;
      }, this.#unref);
      this.#applyKeepAlive(socket, endpoint);
      const onConnect = this.options.onConnect;
      if (onConnect !== undefined) {
        phase = 'handshake';
        this.#handshakeWrites = 0;
        await handshake(socket, this.#guardOnConnect(onConnect), attempt.signal);
      }
    } catch (err) {
      socket?.destroy();
      throw this.#connectFailed(err, phase, endpoint);
    } finally {
      this.#handshakeWrites = -1;
      clearTimeout(timer);
      loopSignal.removeEventListener('abort', onClosing);
    }
    if (this.#terminal) {
      socket.destroy();
      throw loopSignal.reason;
    }
    this.#open(socket, endpoint);
  }

  /** Runs onConnect with writes through this socket refused during its synchronous part (see #write). */
  #guardOnConnect(onConnect: NonNullable<ResolvedOptions['onConnect']>): NonNullable<ResolvedOptions['onConnect']> {
    return (socket, signal) => {
      this.#inOnConnect = true;
      try {
        return onConnect(socket, signal);
      } finally {
        this.#inOnConnect = false;
      }
    };
  }

  #connectFailed(err: unknown, phase: FailurePhase, endpoint: Endpoint): Error {
    if (this.#terminal) return isError(err) ? err : codeError('ERR_RESOCK_UNKNOWN', 'the dial failed with a value that is not an Error');
    const failure = this.#failure(err, phase, endpoint, undefined);
    if (this.options.offlineQueue === false && this.#queue !== undefined) {
      // The first dial failed: what waited for it is refused, as net.Socket's writes fail with its connect.
      const queue = this.#queue;
      this.#queue = undefined;
      queue.rejectAll('ERR_RESOCK_NOT_OPEN', 'the first connection attempt failed and offlineQueue is off', failure.error);
      queue.dispose();
    }
    // The loop is already running: a retry needs nothing more than the decision it carries.
    return new FailureError(failure, this.#settleFailure(failure, false, noop));
  }

  /**
   * Decide, commit, then emit, for every failure: the decision is taken and committed (`commitRetry`, or the close)
   * before any listener hears of it, so nothing a listener does (throw, close) can leave the socket between two states.
   */
  #settleFailure(failure: Failure, disconnect: boolean, commitRetry: () => void): ReconnectDecision {
    const decision = this.#decide(failure);
    this.#recordFailure(failure);
    if (decision.retry) commitRetry();
    else this.#commitClose(decision.reason, failure);
    this.#emitFailure(failure, disconnect);
    if (!decision.retry) this.#finishClose();
    return decision;
  }

  #open(socket: net.Socket, endpoint: Endpoint): void {
    const conn = new ResilientSocket.#Connection(socket, this, this.options.framing, this.options.heartbeat);
    this.#conn = conn;
    const attempt = this.#runState().attempt;
    this.#connAttempt = attempt;
    this.#connects++;
    const reconnected = this.#connects > 1;
    const lostAt = this.#past?.lostAt ?? -1;
    const downtime = lostAt < 0 ? 0 : now() - lostAt;
    this.#to('open');
    if (this.#unref) socket.unref();
    if (this.#readHold !== 0 && (this.#inbox?.bytes ?? 0) >= PAUSED_READ_BUFFER) conn.pauseReading();
    const queue = this.#queue;
    if (queue !== undefined) {
      this.#queue = undefined;
      const entries = queue.takeAll(now());
      queue.dispose();
      socket.cork();
      for (const e of entries) conn.write(e);
      socket.uncork();
    }
    // A producer told to wait gets its 'drain' once the flush is in the kernel: now, or with the socket's own 'drain'.
    const drainNow = this.#needDrain && !socket.writableNeedDrain;
    if (drainNow) this.#needDrain = false;
    const waiters = this.#readyWaiters;
    this.#readyWaiters = undefined;
    this.#watchStability();
    waiters?.resolveAll();
    this.#publish('connect', { attempt, endpoint, reconnected, downtime });
    if (drainNow && this.#conn === conn) this.emitShielded('drain');
  }

  /**
   * Ends the run once the new connection has stayed open for stableAfter. Only a timer waits for that, not the dial
   * loop: whatever the loop held would otherwise live as long, into the heap's old generation, for every connection.
   */
  #watchStability(): void {
    const rc = this.options.reconnect;
    if (rc === false || rc.stableAfter === 0) {
      this.#becameStable();
      return;
    }
    const run = this.#runState();
    run.stable = setTimeout(ResilientSocket.#onStable, rc.stableAfter, this, run);
    run.stable.unref();
  }

  static #onStable(socket: ResilientSocket, run: Run): void {
    run.stable = undefined;
    if (socket.#run === run) socket.#becameStable();
  }

  #stopWatchingStability(): void {
    const run = this.#run;
    if (run?.stable === undefined) return;
    clearTimeout(run.stable);
    run.stable = undefined;
  }

  #becameStable(): void {
    // Attempt counts, backoff and the early-drop evidence all start afresh with the next run.
    this.#run = undefined;
  }

  #applyKeepAlive(socket: net.Socket, endpoint: Endpoint): void {
    const ka = this.options.keepAlive;
    if (ka === false) return;
    const warned = this.#keepAlive & KEEPALIVE_WARNED;
    if ('path' in endpoint) {
      this.#keepAlive = warned;
      return;
    }
    const { applied, problems } = applyKeepAlive(socket, ka);
    const warn = problems.length > 0 && warned === 0;
    let bits = KEEPALIVE_TRIED | (warn ? KEEPALIVE_WARNED : warned);
    for (const key of KEEPALIVE_KEYS) if (applied[key]) bits |= KEEPALIVE_BITS[key];
    this.#keepAlive = bits;
    if (warn) {
      this.emitShielded('warning', { code: 'KEEPALIVE_NOT_APPLIED', message: `keepAlive partly applied: ${problems.join('; ')}` });
    }
  }

  #keepAliveReport(): SocketStats['keepAlive'] {
    const requested = this.options.keepAlive;
    const bits = this.#keepAlive;
    if (requested === false || (bits & KEEPALIVE_TRIED) === 0) return { requested, applied: false };
    const applied = { idle: false, interval: false, count: false, userTimeout: false };
    for (const key of KEEPALIVE_KEYS) applied[key] = (bits & KEEPALIVE_BITS[key]) !== 0;
    return { requested, applied };
  }

  // ---- what a connection reports --------------------------------------------------------------------------------

  // The class of this socket's connections, with one host for all of them that gets the socket passed in: no socket
  // or connection carries closures or a host of its own. Being inside the class body, the host may reach each
  // socket's private state.
  static readonly #Connection = connectionClass<ResilientSocket>({
    onData: (owner, chunk) => {
      owner.#deliver('data', chunk);
    },
    onMessage: (owner, frame) => {
      owner.#deliver('message', frame);
    },
    onDrain: (owner) => {
      owner.#needDrain = false;
      owner.emitShielded('drain');
    },
    onRtt: (owner, rtt) => {
      owner.#rtt = rtt;
      owner.emitShielded('heartbeat', { rtt });
    },
    onStall: (owner, lateBy) => {
      owner.emitShielded('warning', {
        code: 'EVENT_LOOP_STALL',
        message: `heartbeat timer fired ${Math.round(lateBy)} ms late: this process's event loop was blocked, so the peer is not blamed yet`,
      });
    },
    onLost: (owner, conn, err, requeue) => owner.#connectionLost(conn, err, requeue),
  });

  #connectionLost(conn: Connection<ResilientSocket>, err: unknown, requeue: WriteEntry[]): void {
    if (conn !== this.#conn) return;
    this.#conn = undefined;
    const endpoint = this.#endpoint();
    const evidence = conn.evidence();
    const past = this.#pastState();
    past.bytesRead += evidence.bytesRead;
    past.bytesWritten += evidence.bytesWritten;
    past.lostAt = now();

    if (this.#terminal) {
      const cause = this.#closing?.cause;
      for (const e of requeue) rejectEntry(e, closedCode(this.#closing), 'socket closed before the write was sent', cause);
      this.#finishClose();
      return;
    }
    const offlineQueue = this.options.offlineQueue;
    if (offlineQueue === false) {
      for (const e of requeue) rejectEntry(e, 'ERR_RESOCK_NOT_OPEN', 'connection lost before the write reached the kernel whole, and offlineQueue is off');
    } else if (requeue.length > 0) {
      (this.#queue ??= new OfflineQueue(offlineQueue)).requeue(requeue);
    }

    const early = this.#run?.stable !== undefined || this.options.reconnect === false;
    // Only drops right after accepting, in a row, say the peer rejects us: one closing idle connections does not.
    if (early) this.#runState().earlyDrops = droppedRightAfterAccept(evidence) ? this.#runState().earlyDrops + 1 : 0;
    // Lost before it proved stable, the run goes on, with its attempt count and backoff.
    this.#stopWatchingStability();
    const failure = this.#failure(err ?? codeError('ERR_RESOCK_PEER_CLOSED', 'the peer closed the connection (FIN)'), 'open', endpoint, conn);
    past.peerIdleCloses = withPeerClose(past.peerIdleCloses, failure.kind, evidence);

    const decision = this.#settleFailure(failure, true, () => {
      this.#to('reconnecting');
      void this.#loop(failure);
    });
    if (!decision.retry) return;
    const idleWarning = past.peerIdleWarned ? undefined : peerIdleWarning(this.options, past.peerIdleCloses);
    if (idleWarning !== undefined) {
      past.peerIdleWarned = true;
      this.emitShielded('warning', idleWarning);
    }
  }

  /** Limits of the offline queue; with the queue off, of the buffer that holds writes made during the first dial. */
  #queueOptions(): ResolvedOfflineQueue {
    return this.options.offlineQueue === false ? FIRST_DIAL_BUFFER : this.options.offlineQueue;
  }

  #failure(err: unknown, phase: FailurePhase, endpoint: Endpoint, conn: Connection<ResilientSocket> | undefined): Failure {
    const history = {
      attempt: conn === undefined ? (this.#run?.attempt ?? 0) : this.#connAttempt,
      queuedBytes: this.#queue?.bytes ?? 0,
      everConnected: this.#connects > 0,
      previousKind: this.#run?.previousKind,
      previousCause: this.#run?.previousCause,
      earlyDrops: this.#run?.earlyDrops ?? 0,
      peerIdleCloses: this.#past?.peerIdleCloses,
    };
    return buildFailure(err, phase, endpoint, conn?.evidence(), history, this.options);
  }

  /** Counts a failure into the socket's history; the next attempt goes to the next endpoint. */
  #recordFailure(failure: Failure): void {
    const past = this.#pastState();
    past.failures[failure.kind] = (past.failures[failure.kind] ?? 0) + 1;
    past.lastFailure = failure;
    const run = this.#runState();
    run.previousKind = failure.kind;
    run.previousCause = failure.diagnosis.cause;
    if (run.firstFailureAt < 0) run.firstFailureAt = now();
    past.endpointIndex++;
  }

  #emitFailure(failure: Failure, disconnect: boolean): void {
    this.#publish('failure', failure);
    if (failure.kind === 'reset' || failure.kind === 'broken-pipe') this.emitShielded('reset', failure);
    if (disconnect) this.emitShielded('disconnect', failure);
  }

  /** Emits a lifecycle event and publishes it on its diagnostics channel. */
  #publish<E extends ChannelName>(name: E, payload: Parameters<ResilientSocketEvents[E]>[0]): void {
    const channel = channels[name];
    // diagnostics_channel reports a throwing subscriber on a later tick by itself.
    if (channel.hasSubscribers) channel.publish({ socket: this, ...payload });
    (this.emitShielded as (event: E, arg: typeof payload) => void)(name, payload);
  }

  /** Accepts a write into the offline queue, or rejects it through its callback; returns whether it was accepted. */
  #enqueue(entry: WriteEntry): boolean {
    if (this.#terminal) {
      rejectEntry(entry, closedCode(this.#closing), `socket is ${this.#state}`, this.#closing?.cause);
      return false;
    }
    // Without an offline queue, writes still wait for the first connection, as net.Socket's do while it connects;
    // only a socket that lost its connection refuses them.
    if (this.options.offlineQueue === false && !this.#firstDial()) {
      rejectEntry(entry, 'ERR_RESOCK_NOT_OPEN', `socket is ${this.#state} and offlineQueue is off`);
      return false;
    }
    return (this.#queue ??= new OfflineQueue(this.#queueOptions())).push(entry);
  }

  /** Before connect(), or while its first attempt runs. */
  #firstDial(): boolean {
    return this.#connects === 0 && this.#attempts <= 1 && (this.#past?.failures === undefined);
  }

  // ---- closing --------------------------------------------------------------------------------------------------

  #abort(signal: AbortSignal): void {
    this.#closeNow('aborted', abortCause(signal));
  }

  #beginClose(reason: CloseReason, cause: unknown): void {
    this.#closing = { reason, cause, failure: undefined, emitted: false, promise: undefined, resolve: undefined };
    this.#to(this.#state === 'idle' ? 'closed' : 'closing');
    this.#stopWatchingStability();
    this.#unwatchSignal?.();
    this.#unwatchSignal = undefined;
    this.#loopAborter?.abort(new ResockError(closedCode(this.#closing), 'socket closed', { cause }));
  }

  /** Commits to closing because of `failure`, when no connection is open; #finishClose announces it. */
  #commitClose(reason: CloseReason, failure: Failure): void {
    if (this.#state !== 'closing' && this.#state !== 'closed') this.#beginClose(reason, undefined);
    this.#closing!.failure ??= failure;
  }

  /** Immediate close: the current connection is destroyed and the socket is closed before this returns. */
  #closeNow(reason: CloseReason, cause: unknown, failure?: Failure): void {
    const state = this.#state;
    if (state === 'closed') return;
    if (state !== 'closing') this.#beginClose(reason, cause);
    const closing = this.#closing!;
    closing.cause ??= cause;
    closing.failure ??= failure;
    this.#corked = 0;
    const held = this.#corkedWrites;
    this.#corkedWrites = undefined;
    if (held !== undefined) {
      for (const cb of held.cbs) rejectEntry(newEntry(EMPTY, cb, 0), closedCode(closing), 'socket closed before the write was sent', cause);
    }
    // destroy() reports through #connectionLost, which finishes the close; without a connection, finish here.
    this.#conn?.destroy();
    this.#finishClose();
  }

  #finishClose(): void {
    const closing = this.#closing!;
    if (this.#conn !== undefined || closing.emitted) return;
    closing.emitted = true;
    if (this.#state !== 'closed') this.#to('closed');
    const code = closedCode(closing);
    this.#queue?.rejectAll(code, 'socket closed before the write was sent', closing.cause);
    this.#queue?.dispose();
    this.#queue = undefined;
    this.#unwatchSignal?.();
    this.#unwatchSignal = undefined;
    const { reason, failure } = closing;
    const waiters = this.#readyWaiters;
    this.#readyWaiters = undefined;
    waiters?.rejectAll(new ResockError(code, `socket closed (${reason}) before it was open`, { cause: failure?.error ?? closing.cause }));
    // Settled before anyone hears of it: a throwing 'close' listener cannot leave close() pending.
    closing.resolve?.();
    this.#publish('close', failure ? { reason, failure } : { reason });
  }

  /** The promise close() returns, made on first request: most sockets are never closed by a call that awaits it. */
  #whenClosed(): Promise<void> {
    const closing = this.#closing!;
    closing.promise ??= closing.emitted
      ? Promise.resolve()
      : new Promise((resolve) => {
          closing.resolve = resolve;
        });
    return closing.promise;
  }
}

/** Creates a ResilientSocket and starts connecting at once. */
export function connect(options: ResilientSocketOptions): ResilientSocket {
  return new ResilientSocket(options).connect();
}

// Like net.Socket: past this many queued bytes write() answers false until the flush after the next connect.
const QUEUE_HIGH_WATER = 16 * 1024;

/** Inbound bytes held while reading is paused before resock stops reading (Node's buffer then fills, then the kernel's). */
export const PAUSED_READ_BUFFER = 64 * 1024;
// Why reading is held: the application's pause(), or the stream's consumer being slow.
const HOLD_USER = 1;
const HOLD_STREAM = 2;


const EMPTY = Buffer.alloc(0);

// With offlineQueue off, writes made while the first connection is being dialled wait for it, as net.Socket's do
// (a protocol client writes its hello at once); bounded like the default queue.
const FIRST_DIAL_BUFFER: ResolvedOfflineQueue = Object.freeze({
  maxBytes: 4 * 1024 * 1024,
  maxWrites: 32_768,
  maxAge: Number.POSITIVE_INFINITY,
  overflow: 'reject',
});

function noop(): void {}

function closedCode(closing: Closing | undefined): 'ERR_RESOCK_ABORTED' | 'ERR_RESOCK_CLOSED' {
  return closing?.reason === 'aborted' ? 'ERR_RESOCK_ABORTED' : 'ERR_RESOCK_CLOSED';
}

function abortCause(signal: AbortSignal): unknown {
  return signal.reason;
}

