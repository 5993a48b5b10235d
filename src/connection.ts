// One open raw socket and everything that lives exactly as long as it: the evidence a diagnosis needs, the ledger of
// writes not yet known to be in the kernel, the heartbeat and the frame decoder. It reports its end once, with what
// became of the writes.
import type net from 'node:net';
import { codeError } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import type { WriteEntry } from './queue.js';
import type { FrameDecoder, FramingCodec, ResolvedHeartbeat, WriteAccount } from './types.js';

export interface ConnectionHost {
  onData(chunk: Buffer): void;
  onMessage(frame: Buffer): void;
  onDrain(): void;
  onRtt(rtt: number): void;
  onStall(lateBy: number): void;
  /** Called once. `err` is the low-level error, or undefined for a FIN from the peer. */
  onLost(conn: Connection, err: unknown, requeue: WriteEntry[]): void;
}

export interface LossEvidence {
  connectionAge: number;
  idleFor: number;
  sinceLastWrite: number | undefined;
  quietBeforeLastWrite: number | undefined;
  readSinceLastWrite: boolean;
  bytesRead: number;
  bytesWritten: number;
  writes: WriteAccount;
}

interface StreamInternals {
  _writableState?: { writing?: boolean; writelen?: number };
  _handle?: { writeQueueSize?: number } | null;
  encrypted?: boolean;
}

const now = (): number => performance.now();

export class Connection {
  readonly socket: net.Socket;
  readonly openedAt: number;
  readonly #host: ConnectionHost;
  readonly #atomic: boolean;
  #lastReadAt: number;
  #lastWriteAt = -1;
  #quietBeforeLastWrite: number | undefined;
  #readSinceLastWrite = true;

  // Ledger: writes handed to the socket whose bytes may not have reached the kernel yet, oldest first.
  #ledger: WriteEntry[] = [];
  #ledgerHead = 0;
  #ledgerBytes = 0;
  // User bytes accepted on this connection, and how many of them a heartbeat reply proved delivered.
  #userBytes = 0;
  #wireBytes = 0;
  #confirmed = 0;
  #pingMark = 0;
  #unsentAtDestroy: number | undefined;

  readonly #decoder: FrameDecoder | undefined;
  readonly #heartbeat: Heartbeat | undefined;
  readonly #isPong: ((frame: Buffer) => boolean) | undefined;
  readonly #framing: FramingCodec | undefined;
  #lost = false;
  #account: WriteAccount | undefined;
  #evidence: LossEvidence | undefined;

  constructor(
    socket: net.Socket,
    host: ConnectionHost,
    framing: FramingCodec | undefined,
    heartbeat: ResolvedHeartbeat | false,
  ) {
    this.socket = socket;
    this.#host = host;
    this.#framing = framing;
    this.#atomic = framing !== undefined;
    this.openedAt = now();
    this.#lastReadAt = this.openedAt;
    this.#decoder = framing?.decoder();
    this.#isPong = heartbeat && framing ? heartbeat.isPong : undefined;

    this.#hookDestroy();
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);

    this.#heartbeat = heartbeat
      ? new Heartbeat(heartbeat, {
          now,
          sendPing: () => this.#sendPing(heartbeat.ping),
          onReply: (rtt) => {
            this.#confirmed = this.#pingMark;
            this.#host.onRtt(rtt);
          },
          onTimeout: (silentFor) => this.fail(heartbeatTimeout(heartbeat.timeout, silentFor)),
          onStall: (lateBy) => this.#host.onStall(lateBy),
          backlogged: () => this.#backlogged(),
        })
      : undefined;
  }

  /** False from the moment the socket is being torn down: later writes belong to the next connection. */
  get writable(): boolean {
    return !this.#lost && this.#unsentAtDestroy === undefined;
  }

  /** Hands one accepted write to the socket. Returns the socket's backpressure answer. */
  write(entry: WriteEntry): boolean {
    const t = now();
    this.#quietBeforeLastWrite = t - Math.max(this.#lastReadAt, this.#lastWriteAt);
    this.#lastWriteAt = t;
    this.#readSinceLastWrite = false;
    const size = entry.data.length;
    if (!entry.internal) this.#userBytes += size;
    this.#wireBytes += size;
    this.#ledger.push(entry);
    this.#ledgerBytes += size;
    const ok = entry.cb === undefined ? this.socket.write(entry.data) : this.socket.write(entry.data, settle(entry));
    this.#prune();
    return ok;
  }

  /** Ends the connection with a failure of our own making (heartbeat, protocol). */
  fail(err: Error): void {
    if (this.#lost) return;
    this.socket.destroy(err);
  }

  /** Immediate end, reported through onLost before this returns. */
  destroy(): void {
    this.#finish(undefined);
  }

  /** Graceful end: pending writes go out, then FIN. */
  end(): void {
    this.#heartbeat?.stop();
    this.socket.end();
  }

  evidence(): LossEvidence {
    if (this.#evidence) return this.#evidence;
    const t = now();
    return {
      connectionAge: t - this.openedAt,
      idleFor: t - this.#lastReadAt,
      sinceLastWrite: this.#lastWriteAt < 0 ? undefined : t - this.#lastWriteAt,
      quietBeforeLastWrite: this.#quietBeforeLastWrite,
      readSinceLastWrite: this.#readSinceLastWrite,
      bytesRead: this.socket.bytesRead,
      bytesWritten: this.#wireBytes - (this.#unsentAtDestroy ?? this.socket.writableLength),
      writes: this.#account ?? { confirmedBytes: this.#confirmed, unconfirmedBytes: this.#userBytes - this.#confirmed, requeuedBytes: 0 },
    };
  }

  #sendPing(makePing: () => Buffer): void {
    let data: Buffer;
    try {
      const ping = makePing();
      data = this.#framing ? this.#framing.encode(ping) : ping;
    } catch (err) {
      // A user's ping function that throws must not escape a timer: the connection cannot be kept alive without it.
      this.fail(err as Error);
      return;
    }
    this.#pingMark = this.#userBytes;
    this.write({ data, cb: undefined, at: 0, internal: true, requeued: false });
    this.#pingEnd = this.#wireBytes;
    this.#progressSeen = this.#handedToKernel();
  }

  #pingEnd = 0;
  #progressSeen = 0;

  // Bytes of this connection that completed their way into the kernel. bytesWritten counts what Node still buffers
  // and writableLength counts it too, so their difference only moves when a write completes.
  #handedToKernel(): number {
    return this.#wireBytes - this.socket.writableLength;
  }

  #backlogged(): boolean {
    const handed = this.#handedToKernel();
    const moved = handed !== this.#progressSeen;
    this.#progressSeen = handed;
    return handed < this.#pingEnd && moved;
  }

  #onData = (chunk: Buffer): void => {
    const t = now();
    this.#lastReadAt = t;
    this.#readSinceLastWrite = true;
    // Without isPong any byte is life; with it only whole frames are (see #onFrame), so a peer trickling a frame that
    // never completes cannot hold off the next ping.
    if (this.#isPong === undefined) this.#heartbeat?.activity(t);
    if (this.#decoder === undefined) {
      this.#host.onData(chunk);
      return;
    }
    try {
      this.#decoder.push(chunk, this.#onFrame);
    } catch (err) {
      this.fail(err as Error);
    }
    const listenerError = this.#listenerError;
    if (listenerError !== undefined) {
      this.#listenerError = undefined;
      // A throwing 'message' listener is the application's bug, not the peer's: surface it the way a throwing
      // 'data' listener would, after the decoder has consumed the chunk intact.
      throw listenerError;
    }
  };

  #listenerError: unknown;

  #onFrame = (frame: Buffer): void => {
    if (this.#lost) return;
    if (this.#isPong !== undefined) {
      const t = now();
      if (this.#isPong(frame)) {
        this.#heartbeat?.pong(t);
        return;
      }
      this.#heartbeat?.activity(t);
    }
    try {
      this.#host.onMessage(frame);
    } catch (err) {
      this.#listenerError ??= err;
    }
  };

  #onDrain = (): void => {
    this.#prune();
    this.#host.onDrain();
  };

  #onEnd = (): void => {
    // The peer sent FIN. Whatever we still write would meet a closed socket: take it back for the next connection.
    this.#finish(undefined);
  };

  #onError = (err: Error): void => {
    this.#finish(err);
  };

  #onClose = (): void => {
    this.#finish(undefined);
    const s = this.socket;
    s.off('data', this.#onData);
    s.off('end', this.#onEnd);
    s.off('close', this.#onClose);
    s.off('drain', this.#onDrain);
    // 'error' stays: a destroyed socket emits no more errors, and a stray one must never become an uncaught exception.
  };

  #finish(err: unknown): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#heartbeat?.stop();
    if (!this.socket.destroyed) this.socket.destroy();
    const requeue = this.#takeUnsent();
    this.#evidence = this.evidence();
    this.#host.onLost(this, err, requeue);
  }

  // Every path that kills the socket (peer reset, write error, our own destroy) goes through destroy() while the handle
  // still exists: the last moment libuv can say how much of the write in flight never reached the kernel.
  #hookDestroy(): void {
    const socket = this.socket;
    const destroy = socket.destroy;
    socket.destroy = (err?: Error): net.Socket => {
      if (this.#unsentAtDestroy === undefined) this.#unsentAtDestroy = unsentBytes(socket);
      return destroy.call(socket, err);
    };
  }

  #takeUnsent(): WriteEntry[] {
    let unsent = this.#unsentAtDestroy ?? 0;
    const out: WriteEntry[] = [];
    let requeuedBytes = 0;
    for (let i = this.#ledger.length - 1; i >= this.#ledgerHead && unsent > 0; i--) {
      const e = this.#ledger[i]!;
      const size = e.data.length;
      const tail = Math.min(size, unsent);
      unsent -= tail;
      if (e.internal) continue;
      e.requeued = true;
      if (tail === size || this.#atomic) {
        // A frame cut in the middle never reached the peer whole: send it again whole.
        out.push({ data: e.data, cb: e.cb, at: e.at, internal: false, requeued: false });
        requeuedBytes += size;
      } else {
        out.push({ data: e.data.subarray(size - tail), cb: e.cb, at: e.at, internal: false, requeued: false });
        requeuedBytes += tail;
      }
    }
    out.reverse();
    this.#ledger = [];
    this.#ledgerHead = 0;
    this.#ledgerBytes = 0;
    const confirmed = Math.min(this.#confirmed, this.#userBytes - requeuedBytes);
    this.#account = {
      confirmedBytes: confirmed,
      unconfirmedBytes: this.#userBytes - requeuedBytes - confirmed,
      requeuedBytes,
    };
    return out;
  }

  // Drops ledger entries the kernel certainly has: everything older than the bytes Node still holds.
  #prune(): void {
    const pending = this.socket.writableLength;
    if (pending === 0) {
      if (this.#ledgerBytes > 0) {
        this.#ledger = [];
        this.#ledgerHead = 0;
        this.#ledgerBytes = 0;
      }
      return;
    }
    while (this.#ledgerHead < this.#ledger.length) {
      const size = this.#ledger[this.#ledgerHead]!.data.length;
      if (this.#ledgerBytes - size < pending) break;
      this.#ledger[this.#ledgerHead++] = undefined as unknown as WriteEntry;
      this.#ledgerBytes -= size;
    }
    if (this.#ledgerHead > 1024 && this.#ledgerHead * 2 > this.#ledger.length) {
      this.#ledger = this.#ledger.slice(this.#ledgerHead);
      this.#ledgerHead = 0;
    }
  }
}

/**
 * Bytes Node still holds for this socket that never reached the kernel: the writable buffer, plus the part of the write in
 * flight that libuv has not passed on yet. For TLS the in-flight write is already encrypted and cannot be split, so it is
 * counted as possibly sent (never duplicated).
 */
function unsentBytes(socket: net.Socket): number {
  const s = socket as unknown as StreamInternals;
  const pending = socket.writableLength;
  const state = s._writableState;
  if (!state?.writing || typeof state.writelen !== 'number') return pending;
  const queued = s._handle?.writeQueueSize;
  if (s.encrypted || typeof queued !== 'number') return pending - state.writelen;
  return pending - state.writelen + Math.min(queued, state.writelen);
}

function settle(entry: WriteEntry): (err?: Error | null) => void {
  return (err) => {
    // A requeued write completes on a later connection. Node reports the cancelled one here, even as a success
    // when the socket was already destroyed, so its report is not the user's to see.
    if (entry.requeued) return;
    entry.cb!(err);
  };
}

function heartbeatTimeout(timeout: number, silentFor: number): Error {
  return codeError(
    'ERR_RESOCK_HEARTBEAT_TIMEOUT',
    `no reply to heartbeat within ${timeout} ms (${Math.round(silentFor)} ms without inbound data)`,
  );
}
