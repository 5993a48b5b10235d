// ResilientSocket: one long-lived logical connection over a succession of raw sockets. It owns the lifecycle, the offline
// queue and the reconnect loop; a Connection owns each raw socket; everything else is a pure module it calls.
import type net from 'node:net';
import { EventEmitter } from 'eventemitter3';
import pRetry from 'p-retry';
import { type Backoff, createBackoff } from './backoff.js';
import { type Connection, connectionClass } from './connection.js';
import { now } from './clock.js';
import { type ChannelName, channels } from './diagnostics.js';
import { ResockError, codeError } from './errors.js';
import { buildFailure, droppedRightAfterAccept, peerIdleWarning, withPeerClose } from './failure.js';
import { handshake, sleep } from './handshake.js';
import { learnIdleLimit } from './diagnosis.js';
import { applyKeepAlive, readTcpInfo } from './keepalive.js';
import { resolveOptions } from './options.js';
import { OfflineQueue, newEntry, rejectEntry, type WriteCallback, type WriteEntry } from './queue.js';
import { isTerminal, transition } from './state.js';
import { describeEndpoint, dial } from './transport.js';
import type {
  CloseReason,
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

/** Carries a Failure through p-retry, which only deals in errors. */
class FailureError extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    // Never shown to anyone: only its failure is read. Without a stack trace it costs a crowd of redialing clients
    // (one per refused dial) a few microseconds less each.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(failure.message);
    Error.stackTraceLimit = limit;
    this.name = 'FailureError';
    this.failure = failure;
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
  cause: Error | undefined;
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

interface ReadyWaiter {
  resolve(): void;
  reject(err: Error): void;
}

// What keepalive.ts reported for the current connection, one bit per setting, KEEPALIVE_TRIED when it was applied
// at all (not for IPC, keepAlive off or before the first connection), and whether this socket has warned about it.
// A number rather than a report object per socket: stats() builds the object when asked.
const KEEPALIVE_BITS = { idle: 1, interval: 2, count: 4, userTimeout: 8 } as const;
const KEEPALIVE_KEYS = Object.keys(KEEPALIVE_BITS) as (keyof typeof KEEPALIVE_BITS)[];
const KEEPALIVE_TRIED = 16;
const KEEPALIVE_WARNED = 32;

export class ResilientSocket extends EventEmitter<ResilientSocketEvents> {
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
  /** Only when a signal was given. */
  readonly #onAbort: (() => void) | undefined;
  #closing: Closing | undefined;
  #readyWaiters: ReadyWaiter[] | undefined;

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

  constructor(options: ResilientSocketOptions) {
    super();
    this.options = resolveOptions(options);
    const signal = this.options.signal;
    if (signal !== undefined) {
      this.#onAbort = () => this.#abort(signal);
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
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
      this.#abort(signal);
      return this;
    }
    this.#to('connecting');
    void this.#loop(undefined);
    return this;
  }

  /**
   * Writes like net.Socket#write. While no connection is open the write waits in the offline queue. The callback gets
   * an error with a `code` when the write can never be sent (ERR_RESOCK_CLOSED, _QUEUE_FULL, _DROPPED, _EXPIRED, _NOT_OPEN).
   * With framing, `data` is one frame.
   */
  write(data: string | Uint8Array, cb?: WriteCallback): boolean {
    let buf = toBuffer(data);
    const framing = this.options.framing;
    if (framing !== undefined) buf = framing.encode(buf);
    const conn = this.#conn;
    if (conn !== undefined && conn.writable && this.#state === 'open') {
      return conn.writeNow(buf, cb);
    }
    return this.#enqueue(newEntry(buf, cb, now()));
  }

  /** Resolves once the bytes are handed to the kernel; rejects with a coded error when they never can be. */
  send(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Writes one frame; requires the framing option. */
  sendMessage(frame: string | Uint8Array, cb?: WriteCallback): boolean {
    if (this.options.framing === undefined) {
      throw new ResockError('ERR_RESOCK_PROTOCOL', 'sendMessage() needs the framing option (lines() or lengthPrefixed())');
    }
    return this.write(frame, cb);
  }

  /** Resolves when the socket is open; rejects if it closes first. Does not start connecting by itself. */
  ready(): Promise<void> {
    const state = this.#state;
    if (state === 'open') return Promise.resolve();
    if (this.#terminal) return Promise.reject(new ResockError('ERR_RESOCK_CLOSED', `socket is ${state}`));
    // Kept apart from the event listeners: removing a listener deletes a key of eventemitter3's listener table, which
    // turns it into a slow dictionary several hundred bytes larger, for the socket's whole life.
    return new Promise((resolve, reject) => {
      (this.#readyWaiters ??= []).push({ resolve, reject });
    });
  }

  /** Writes `data` if given, then closes gracefully. */
  end(data?: string | Uint8Array): this {
    if (data !== undefined) this.write(data);
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
        onFailedAttempt: async ({ error }) => {
          const failure = (error as FailureError).failure;
          if (failure === undefined || !this.#mayRetry(failure)) throw error;
          await this.#pause(failure, signal);
        },
      });
    } catch (err) {
      if (!this.#terminal) {
        const failure = (err as FailureError).failure;
        this.#closeNow(failure?.retryable === false ? 'fatal' : 'gave-up', undefined, failure);
      }
    } finally {
      this.#loopAborter = undefined;
    }
  }

  #mayRetry(failure: Failure): boolean {
    const rc = this.options.reconnect;
    if (rc === false || !failure.retryable || this.#terminal) return false;
    const run = this.#run;
    if ((run?.retriesUsed ?? 0) >= rc.retries) return false;
    const firstFailureAt = run?.firstFailureAt ?? -1;
    if (firstFailureAt >= 0 && now() - firstFailureAt >= rc.maxElapsed) return false;
    if (rc.shouldReconnect !== undefined && !rc.shouldReconnect(failure)) return false;
    return true;
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
    if (this.#state !== 'reconnecting') this.#to('reconnecting');
    this.#publish('reconnecting', { attempt: run.attempt + 1, delay, failure });
    await sleep(delay, signal);
  }

  async #attempt(loopSignal: AbortSignal): Promise<void> {
    if (this.#terminal) throw loopSignal.reason;
    const endpoint = this.#endpoint();
    this.#attempts++;
    const run = this.#runState();
    run.attempt++;
    if (this.#state !== 'connecting') this.#to('connecting');
    this.#publish('connecting', { attempt: run.attempt, endpoint });

    const attempt = new AbortController();
    let phase: FailurePhase = 'connect';
    let tcpUp = false;
    const onClosing = (): void => attempt.abort(loopSignal.reason);
    loopSignal.addEventListener('abort', onClosing, { once: true });
    const timer = setTimeout(() => {
      const stalled = phase === 'handshake' ? 'the onConnect handshake' : tcpUp ? 'the TLS handshake' : 'connect';
      attempt.abort(
        codeError(
          phase === 'connect' && !tcpUp ? 'ERR_RESOCK_CONNECT_TIMEOUT' : 'ERR_RESOCK_HANDSHAKE_TIMEOUT',
          `${stalled} to ${describeEndpoint(endpoint)} did not finish within connectTimeout (${this.options.connectTimeout} ms)`,
        ),
      );
    }, this.options.connectTimeout);

    let socket: net.Socket | undefined;
    try {
      socket = await dial(endpoint, this.options.tls, this.options.noDelay, attempt.signal, () => {
        tcpUp = true;
      });
      this.#applyKeepAlive(socket, endpoint);
      const onConnect = this.options.onConnect;
      if (onConnect !== undefined) {
        phase = 'handshake';
        await handshake(socket, onConnect, attempt.signal);
      }
    } catch (err) {
      socket?.destroy();
      throw this.#connectFailed(err, phase, endpoint);
    } finally {
      clearTimeout(timer);
      loopSignal.removeEventListener('abort', onClosing);
    }
    if (this.#terminal) {
      socket.destroy();
      throw loopSignal.reason;
    }
    this.#open(socket, endpoint);
    this.#watchStability();
  }

  #connectFailed(err: unknown, phase: FailurePhase, endpoint: Endpoint): Error {
    if (this.#terminal) return err instanceof Error ? err : new Error(String(err));
    const failure = this.#failure(err, phase, endpoint, undefined);
    this.#emitFailure(failure, false);
    return new FailureError(failure);
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
    const queue = this.#queue;
    if (queue !== undefined) {
      this.#queue = undefined;
      const entries = queue.takeAll(now());
      socket.cork();
      for (const e of entries) conn.write(e);
      socket.uncork();
    }
    const waiters = this.#readyWaiters;
    this.#readyWaiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w.resolve();
    this.#publish('connect', { attempt, endpoint, reconnected, downtime });
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
      this.emit('warning', { code: 'KEEPALIVE_NOT_APPLIED', message: `keepAlive partly applied: ${problems.join('; ')}` });
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
      owner.emit('data', chunk);
    },
    onMessage: (owner, frame) => {
      owner.emit('message', frame);
    },
    onDrain: (owner) => {
      owner.emit('drain');
    },
    onRtt: (owner, rtt) => {
      owner.#rtt = rtt;
      owner.emit('heartbeat', { rtt });
    },
    onStall: (owner, lateBy) => {
      owner.emit('warning', {
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
      for (const e of requeue) rejectEntry(e, 'ERR_RESOCK_CLOSED', 'socket closed before the write was sent', this.#closing?.cause);
      this.#finishClose();
      return;
    }
    const offlineQueue = this.options.offlineQueue;
    if (offlineQueue === false) {
      for (const e of requeue) rejectEntry(e, 'ERR_RESOCK_NOT_OPEN', 'connection lost before the write was sent and offlineQueue is off');
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
    this.#to('reconnecting');
    this.#emitFailure(failure, true);
    if (this.#terminal) return;
    const idleWarning = past.peerIdleWarned ? undefined : peerIdleWarning(this.options, past.peerIdleCloses);
    if (idleWarning !== undefined) {
      past.peerIdleWarned = true;
      this.emit('warning', idleWarning);
    }

    if (this.#mayRetry(failure)) {
      void this.#loop(failure);
    } else {
      this.#closeNow(failure.retryable ? 'gave-up' : 'fatal', undefined, failure);
    }
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

  #emitFailure(failure: Failure, disconnect: boolean): void {
    const past = this.#pastState();
    past.failures[failure.kind] = (past.failures[failure.kind] ?? 0) + 1;
    past.lastFailure = failure;
    const run = this.#runState();
    run.previousKind = failure.kind;
    run.previousCause = failure.diagnosis.cause;
    if (run.firstFailureAt < 0) run.firstFailureAt = now();
    // Rotate: the next attempt goes to the next endpoint.
    past.endpointIndex++;
    this.#publish('failure', failure);
    if (failure.kind === 'reset' || failure.kind === 'broken-pipe') this.emit('reset', failure);
    if (disconnect) this.emit('disconnect', failure);
  }

  /** Emits a lifecycle event and publishes it on its diagnostics channel. */
  #publish<E extends ChannelName>(name: E, payload: Parameters<ResilientSocketEvents[E]>[0]): void {
    const channel = channels[name];
    if (channel.hasSubscribers) channel.publish({ socket: this, ...payload });
    (this.emit as (event: E, arg: typeof payload) => boolean)(name, payload);
  }

  #enqueue(entry: WriteEntry): boolean {
    if (this.#terminal) {
      rejectEntry(entry, 'ERR_RESOCK_CLOSED', `socket is ${this.#state}`);
      return false;
    }
    const offlineQueue = this.options.offlineQueue;
    if (offlineQueue === false) {
      rejectEntry(entry, 'ERR_RESOCK_NOT_OPEN', `socket is ${this.#state} and offlineQueue is off`);
      return false;
    }
    return (this.#queue ??= new OfflineQueue(offlineQueue)).push(entry);
  }

  // ---- closing --------------------------------------------------------------------------------------------------

  #abort(signal: AbortSignal): void {
    this.#closeNow('aborted', signal.reason instanceof Error ? signal.reason : undefined);
  }

  #beginClose(reason: CloseReason, cause: Error | undefined): void {
    this.#closing = { reason, cause, failure: undefined, emitted: false, promise: undefined, resolve: undefined };
    this.#to(this.#state === 'idle' ? 'closed' : 'closing');
    this.#stopWatchingStability();
    this.#loopAborter?.abort(new ResockError('ERR_RESOCK_CLOSED', 'socket closed', { cause }));
  }

  /** Immediate close: the current connection is destroyed and the socket is closed before this returns. */
  #closeNow(reason: CloseReason, cause: Error | undefined, failure?: Failure): void {
    const state = this.#state;
    if (state === 'closed') return;
    if (state !== 'closing') this.#beginClose(reason, cause);
    const closing = this.#closing!;
    closing.cause ??= cause;
    closing.failure ??= failure;
    // destroy() reports through #connectionLost, which finishes the close; without a connection, finish here.
    this.#conn?.destroy();
    this.#finishClose();
  }

  #finishClose(): void {
    const closing = this.#closing!;
    if (this.#conn !== undefined || closing.emitted) return;
    closing.emitted = true;
    if (this.#state !== 'closed') this.#to('closed');
    this.#queue?.rejectAll('ERR_RESOCK_CLOSED', 'socket closed before the write was sent');
    this.#queue?.dispose();
    this.#queue = undefined;
    if (this.#onAbort !== undefined) this.options.signal?.removeEventListener('abort', this.#onAbort);
    const { reason, failure } = closing;
    const waiters = this.#readyWaiters;
    this.#readyWaiters = undefined;
    if (waiters !== undefined) {
      for (const w of waiters) {
        w.reject(new ResockError('ERR_RESOCK_CLOSED', `socket closed (${reason}) before it was open`, { cause: failure?.error }));
      }
    }
    this.#publish('close', failure ? { reason, failure } : { reason });
    closing.resolve?.();
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

function toBuffer(data: string | Uint8Array): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw Object.assign(new TypeError(`write() takes a string, Buffer or Uint8Array, got ${data === null ? 'null' : typeof data}`), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
}
