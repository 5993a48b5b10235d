// ResilientSocket: one long-lived logical connection over a succession of raw sockets. It owns the lifecycle, the offline
// queue and the reconnect loop; a Connection owns each raw socket; everything else is a pure module it calls.
import type net from 'node:net';
import { EventEmitter } from 'eventemitter3';
import pRetry from 'p-retry';
import { createBackoff } from './backoff.js';
import { Connection, type ConnectionHost } from './connection.js';
import { type ChannelName, channels } from './diagnostics.js';
import { ResockError, codeError } from './errors.js';
import { buildFailure } from './failure.js';
import { handshake, sleep } from './handshake.js';
import { applyKeepAlive } from './keepalive.js';
import { resolveOptions } from './options.js';
import { OfflineQueue, newEntry, rejectEntry, type WriteCallback, type WriteEntry } from './queue.js';
import { Lifecycle } from './state.js';
import { describeEndpoint, dial } from './transport.js';
import type {
  CloseReason,
  Endpoint,
  Failure,
  FailureKind,
  FailurePhase,
  KeepAliveReport,
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
    super(failure.message);
    this.name = 'FailureError';
    this.failure = failure;
  }
}

interface StableWait {
  timer: NodeJS.Timeout;
  reject(err: Error): void;
}

const now = (): number => performance.now();

export class ResilientSocket extends EventEmitter<ResilientSocketEvents> {
  /** The resolved, frozen options. */
  readonly options: ResolvedOptions;

  readonly #life = new Lifecycle();
  readonly #queue: OfflineQueue | undefined;
  readonly #backoff;
  // Aborted once, when the socket starts closing: cancels dials, handshakes, backoff sleeps and the retry loop.
  readonly #closing = new AbortController();
  #closeReason: CloseReason = 'closed';
  #closeCause: Error | undefined;
  #closeFailure: Failure | undefined;
  #closeEmitted = false;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  #conn: Connection | undefined;
  #connEndpoint: Endpoint | undefined;
  /** The attempt that opened the current connection: a failure on it belongs to that attempt. */
  #connAttempt = 0;
  #running = false;
  #stable: StableWait | undefined;
  #endpointIndex = 0;

  // Counters and evidence across connections.
  #attempts = 0;
  #attemptInRun = 0;
  #retriesUsed = 0;
  #runFirstFailureAt = -1;
  #connects = 0;
  #failures: Partial<Record<FailureKind, number>> = {};
  #lastFailure: Failure | undefined;
  #previousKind: FailureKind | undefined;
  #earlyDrops = 0;
  #everConnected = false;
  #lostAt = -1;
  #bytesReadBefore = 0;
  #bytesWrittenBefore = 0;
  #rtt: number | undefined;
  #keepAlive: KeepAliveReport;
  #keepAliveWarned = false;

  constructor(options: ResilientSocketOptions) {
    super();
    this.options = resolveOptions(options);
    const { offlineQueue, reconnect, keepAlive, signal } = this.options;
    this.#queue = offlineQueue ? new OfflineQueue(offlineQueue) : undefined;
    this.#backoff = createBackoff(reconnect || { minDelay: 0, maxDelay: 0, factor: 1, jitter: 'none' });
    this.#keepAlive = { requested: keepAlive, applied: false };
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  get state(): SocketState {
    return this.#life.state;
  }

  /** The current raw socket, or null between connections. Writing to it directly bypasses resock's accounting. */
  get socket(): net.Socket | null {
    return this.#conn?.socket ?? null;
  }

  /** Starts connecting. Calling it again has no effect. */
  connect(): this {
    if (this.#life.state !== 'idle') return this;
    if (this.options.signal?.aborted) {
      this.#onAbort();
      return this;
    }
    this.#life.to('connecting');
    void this.#run(undefined);
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
    if (conn !== undefined && conn.writable && this.#life.state === 'open') {
      return conn.write(newEntry(buf, cb, 0));
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
    const state = this.#life.state;
    if (state === 'open') return Promise.resolve();
    if (this.#life.terminal) return Promise.reject(new ResockError('ERR_RESOCK_CLOSED', `socket is ${state}`));
    return new Promise((resolve, reject) => {
      const onConnect = (): void => {
        this.off('close', onClose);
        resolve();
      };
      const onClose = (info: { reason: CloseReason; failure?: Failure }): void => {
        this.off('connect', onConnect);
        reject(new ResockError('ERR_RESOCK_CLOSED', `socket closed (${info.reason}) before it was open`, { cause: info.failure?.error }));
      };
      this.once('connect', onConnect);
      this.once('close', onClose);
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
    const state = this.#life.state;
    if (state === 'closed' || state === 'closing') return this.#closed;
    this.#beginClose('closed', undefined);
    const conn = this.#conn;
    if (conn !== undefined && conn.writable) {
      conn.end();
      const timer = setTimeout(() => conn.destroy(), this.options.connectTimeout);
      timer.unref();
      this.#closed.then(() => clearTimeout(timer), undefined);
    } else {
      this.#finishClose();
    }
    return this.#closed;
  }

  /** Closes at once. Writes not yet handed to the kernel are rejected with ERR_RESOCK_CLOSED (cause: `err`). */
  destroy(err?: Error): void {
    this.#closeNow('closed', err);
  }

  stats(): SocketStats {
    const conn = this.#conn;
    return {
      state: this.#life.state,
      attempts: this.#attempts,
      connects: this.#connects,
      failures: { ...this.#failures },
      bytesRead: this.#bytesReadBefore + (conn?.socket.bytesRead ?? 0),
      bytesWritten: this.#bytesWrittenBefore + (conn?.evidence().bytesWritten ?? 0),
      queuedBytes: this.#queue?.bytes ?? 0,
      queuedWrites: this.#queue?.length ?? 0,
      lastFailure: this.#lastFailure,
      rtt: this.#rtt,
      keepAlive: this.#keepAlive,
    };
  }

  // ---- reconnect loop -------------------------------------------------------------------------------------------

  /** One run: dial until a connection stays open for stableAfter, or give up. Only one run exists at a time. */
  async #run(initial: Failure | undefined): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    // Let the caller attach listeners before the first event.
    await undefined;
    try {
      if (initial !== undefined) await this.#pause(initial);
      await pRetry(() => this.#attempt(), {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: 0,
        maxTimeout: 0,
        signal: this.#closing.signal,
        onFailedAttempt: async ({ error }) => {
          const failure = (error as FailureError).failure;
          if (failure === undefined || !this.#mayRetry(failure)) throw error;
          await this.#pause(failure);
        },
      });
    } catch (err) {
      if (!this.#life.terminal) {
        const failure = (err as FailureError).failure;
        this.#closeNow(failure?.retryable === false ? 'fatal' : 'gave-up', undefined, failure);
      }
    } finally {
      this.#running = false;
    }
  }

  #mayRetry(failure: Failure): boolean {
    const rc = this.options.reconnect;
    if (rc === false || !failure.retryable || this.#life.terminal) return false;
    if (this.#retriesUsed >= rc.retries) return false;
    if (this.#runFirstFailureAt >= 0 && now() - this.#runFirstFailureAt >= rc.maxElapsed) return false;
    if (rc.shouldReconnect !== undefined && !rc.shouldReconnect(failure)) return false;
    return true;
  }

  /** Waits out the backoff before the next attempt. */
  async #pause(failure: Failure): Promise<void> {
    const rc = this.options.reconnect;
    if (rc === false) return;
    this.#retriesUsed++;
    let delay = this.#backoff.next();
    if (rc.maxElapsed !== Number.POSITIVE_INFINITY && this.#runFirstFailureAt >= 0) {
      delay = Math.max(0, Math.min(delay, rc.maxElapsed - (now() - this.#runFirstFailureAt)));
    }
    if (this.#life.state !== 'reconnecting') this.#life.to('reconnecting');
    this.#publish('reconnecting', { attempt: this.#attemptInRun + 1, delay, failure });
    await sleep(delay, this.#closing.signal);
  }

  async #attempt(): Promise<void> {
    if (this.#life.terminal) throw this.#closing.signal.reason;
    const endpoints = this.options.endpoints;
    const endpoint = endpoints[this.#endpointIndex % endpoints.length]!;
    this.#attempts++;
    this.#attemptInRun++;
    if (this.#life.state !== 'connecting') this.#life.to('connecting');
    this.#publish('connecting', { attempt: this.#attemptInRun, endpoint });

    const attempt = new AbortController();
    let phase: FailurePhase = 'connect';
    let tcpUp = false;
    const onClosing = (): void => attempt.abort(this.#closing.signal.reason);
    this.#closing.signal.addEventListener('abort', onClosing, { once: true });
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
      this.#closing.signal.removeEventListener('abort', onClosing);
    }
    if (this.#life.terminal) {
      socket.destroy();
      throw this.#closing.signal.reason;
    }
    this.#open(socket, endpoint);
    return this.#waitStable();
  }

  #connectFailed(err: unknown, phase: FailurePhase, endpoint: Endpoint): Error {
    if (this.#life.terminal) return err instanceof Error ? err : new Error(String(err));
    const failure = this.#failure(err, phase, endpoint, undefined);
    this.#emitFailure(failure, false);
    return new FailureError(failure);
  }

  #open(socket: net.Socket, endpoint: Endpoint): void {
    const conn = new Connection(socket, this.#host, this.options.framing, this.options.heartbeat);
    this.#conn = conn;
    this.#connEndpoint = endpoint;
    this.#connAttempt = this.#attemptInRun;
    this.#connects++;
    const reconnected = this.#everConnected;
    this.#everConnected = true;
    const downtime = this.#lostAt < 0 ? 0 : now() - this.#lostAt;
    this.#life.to('open');
    const queue = this.#queue;
    if (queue !== undefined && queue.length > 0) {
      const entries = queue.takeAll(now());
      socket.cork();
      for (const e of entries) conn.write(e);
      socket.uncork();
    }
    this.#publish('connect', { attempt: this.#attemptInRun, endpoint, reconnected, downtime });
  }

  /** Resolves once the connection has stayed open for stableAfter; rejects (through #host.onLost) if it drops sooner. */
  #waitStable(): Promise<void> {
    const rc = this.options.reconnect;
    if (rc === false || rc.stableAfter === 0) {
      this.#becameStable();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#stable = undefined;
        this.#becameStable();
        resolve();
      }, rc.stableAfter);
      timer.unref();
      this.#stable = {
        timer,
        reject: (err) => {
          clearTimeout(timer);
          this.#stable = undefined;
          reject(err);
        },
      };
    });
  }

  #becameStable(): void {
    this.#earlyDrops = 0;
    this.#previousKind = undefined;
    this.#retriesUsed = 0;
    this.#attemptInRun = 0;
    this.#runFirstFailureAt = -1;
    this.#backoff.reset();
  }

  #applyKeepAlive(socket: net.Socket, endpoint: Endpoint): void {
    const ka = this.options.keepAlive;
    if (ka === false) return;
    if ('path' in endpoint) {
      this.#keepAlive = { requested: ka, applied: false };
      return;
    }
    const { applied, problems } = applyKeepAlive(socket, ka);
    this.#keepAlive = { requested: ka, applied };
    if (problems.length > 0 && !this.#keepAliveWarned) {
      this.#keepAliveWarned = true;
      this.emit('warning', { code: 'KEEPALIVE_NOT_APPLIED', message: `keepAlive partly applied: ${problems.join('; ')}` });
    }
  }

  // ---- what a connection reports --------------------------------------------------------------------------------

  readonly #host: ConnectionHost = {
    onData: (chunk) => {
      this.emit('data', chunk);
    },
    onMessage: (frame) => {
      this.emit('message', frame);
    },
    onDrain: () => {
      this.emit('drain');
    },
    onRtt: (rtt) => {
      this.#rtt = rtt;
      this.emit('heartbeat', { rtt });
    },
    onStall: (lateBy) => {
      this.emit('warning', {
        code: 'EVENT_LOOP_STALL',
        message: `heartbeat timer fired ${Math.round(lateBy)} ms late: this process's event loop was blocked, so the peer is not blamed yet`,
      });
    },
    onLost: (conn, err, requeue) => this.#connectionLost(conn, err, requeue),
  };

  #connectionLost(conn: Connection, err: unknown, requeue: WriteEntry[]): void {
    if (conn !== this.#conn) return;
    this.#conn = undefined;
    const endpoint = this.#connEndpoint!;
    const evidence = conn.evidence();
    this.#bytesReadBefore += evidence.bytesRead;
    this.#bytesWrittenBefore += evidence.bytesWritten;
    this.#lostAt = now();

    if (this.#life.terminal) {
      for (const e of requeue) rejectEntry(e, 'ERR_RESOCK_CLOSED', 'socket closed before the write was sent', this.#closeCause);
      this.#finishClose();
      return;
    }
    if (this.#queue !== undefined) this.#queue.requeue(requeue);
    else for (const e of requeue) rejectEntry(e, 'ERR_RESOCK_NOT_OPEN', 'connection lost before the write was sent and offlineQueue is off');

    const early = this.#stable !== undefined || this.options.reconnect === false;
    if (early && evidence.connectionAge < (this.options.reconnect ? this.options.reconnect.stableAfter : 5000)) this.#earlyDrops++;
    const failure = this.#failure(err ?? codeError('ERR_RESOCK_PEER_CLOSED', 'the peer closed the connection (FIN)'), 'open', endpoint, conn);
    this.#life.to('reconnecting');
    this.#emitFailure(failure, true);
    if (this.#life.terminal) return;

    if (this.#stable !== undefined) {
      // Lost before it became stable: a failed attempt of the current run, which decides about retrying.
      this.#stable.reject(new FailureError(failure));
    } else if (this.#mayRetry(failure)) {
      void this.#run(failure);
    } else {
      this.#closeNow(failure.retryable ? 'gave-up' : 'fatal', undefined, failure);
    }
  }

  #failure(err: unknown, phase: FailurePhase, endpoint: Endpoint, conn: Connection | undefined): Failure {
    const history = {
      attempt: conn === undefined ? this.#attemptInRun : this.#connAttempt,
      queuedBytes: this.#queue?.bytes ?? 0,
      everConnected: this.#everConnected,
      previousKind: this.#previousKind,
      earlyDrops: this.#earlyDrops,
    };
    return buildFailure(err, phase, endpoint, conn?.evidence(), history, this.options);
  }

  #emitFailure(failure: Failure, disconnect: boolean): void {
    this.#failures[failure.kind] = (this.#failures[failure.kind] ?? 0) + 1;
    this.#lastFailure = failure;
    this.#previousKind = failure.kind;
    if (this.#runFirstFailureAt < 0) this.#runFirstFailureAt = now();
    // Rotate: the next attempt goes to the next endpoint.
    this.#endpointIndex++;
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
    if (this.#life.terminal) {
      rejectEntry(entry, 'ERR_RESOCK_CLOSED', `socket is ${this.#life.state}`);
      return false;
    }
    if (this.#queue === undefined) {
      rejectEntry(entry, 'ERR_RESOCK_NOT_OPEN', `socket is ${this.#life.state} and offlineQueue is off`);
      return false;
    }
    return this.#queue.push(entry);
  }

  // ---- closing --------------------------------------------------------------------------------------------------

  #onAbort = (): void => {
    this.#closeNow('aborted', this.options.signal?.reason instanceof Error ? this.options.signal.reason : undefined);
  };

  #beginClose(reason: CloseReason, cause: Error | undefined): void {
    this.#closeReason = reason;
    this.#closeCause = cause;
    this.#life.to(this.#life.state === 'idle' ? 'closed' : 'closing');
    this.#stable?.reject(new ResockError('ERR_RESOCK_CLOSED', 'socket closed'));
    this.#closing.abort(new ResockError('ERR_RESOCK_CLOSED', 'socket closed', { cause }));
  }

  /** Immediate close: the current connection is destroyed and the socket is closed before this returns. */
  #closeNow(reason: CloseReason, cause: Error | undefined, failure?: Failure): void {
    const state = this.#life.state;
    if (state === 'closed') return;
    if (state !== 'closing') this.#beginClose(reason, cause);
    else if (cause !== undefined) this.#closeCause ??= cause;
    this.#closeFailure ??= failure;
    // destroy() reports through #connectionLost, which finishes the close; without a connection, finish here.
    this.#conn?.destroy();
    this.#finishClose();
  }

  #finishClose(): void {
    if (this.#conn !== undefined || this.#closeEmitted) return;
    this.#closeEmitted = true;
    if (this.#life.state !== 'closed') this.#life.to('closed');
    this.#queue?.rejectAll('ERR_RESOCK_CLOSED', 'socket closed before the write was sent');
    this.#queue?.dispose();
    this.options.signal?.removeEventListener('abort', this.#onAbort);
    const failure = this.#closeFailure;
    this.#publish('close', failure ? { reason: this.#closeReason, failure } : { reason: this.#closeReason });
    this.#resolveClosed();
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
