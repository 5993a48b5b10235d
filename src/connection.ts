// One open raw socket and everything that lives exactly as long as it: the evidence a diagnosis needs, the ledger of
// writes not yet known to be in the kernel, the heartbeat and the frame decoder. It reports its end once, with what
// became of the writes.
import * as net from 'node:net';
import { now } from './clock.js';
import { ResockError, codeError } from './errors.js';
import { Heartbeat, type HeartbeatHost } from './heartbeat.js';
import { TimerQueue } from './timer-queue.js';
import { WriteLedger } from './ledger.js';
import { readTcpInfo } from './keepalive.js';
import { newEntry, type WriteCallback, type WriteEntry } from './queue.js';
import type { FrameDecoder, FramingCodec, ResolvedHeartbeat, TcpInfo, WriteAccount } from './types.js';

/**
 * What a connection reports to whoever owns it. One host object serves every connection of its kind and gets the owner
 * passed in, so a connection costs no closures of its own; it sits on the prototype of the class connectionClass()
 * makes for it, so it costs no field either.
 */
export interface ConnectionHost<O> {
  onData(owner: O, chunk: Buffer): void;
  onMessage(owner: O, frame: Buffer): void;
  onDrain(owner: O): void;
  onRtt(owner: O, rtt: number): void;
  onStall(owner: O, lateBy: number): void;
  /** Called once. `err` is the low-level error, or undefined for a FIN from the peer. */
  onLost(owner: O, conn: Connection<O>, err: unknown, requeue: WriteEntry[]): void;
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
  /** TCP_INFO read as the socket was destroyed, while its descriptor still existed. */
  tcp: TcpInfo | undefined;
}

interface StreamInternals {
  _writableState?: { writing?: boolean; writelen?: number };
  _handle?: { writeQueueSize?: number } | null;
  encrypted?: boolean;
}

/** What only a connection with framing has. */
interface Framed {
  readonly codec: FramingCodec;
  readonly decoder: FrameDecoder;
  /** The decoder's frame callback, bound once. */
  readonly onFrame: (frame: Buffer) => void;
  readonly isPong: ((frame: Buffer, held: readonly Buffer[]) => boolean | 'more') | undefined;
  /** Frames isPong asked to see more of: held back until it decides. */
  heldForPong: Buffer[] | undefined;
}

// The socket's listeners are shared by every connection and find theirs through this property of the socket.
const kConnection = Symbol('resock.connection');

type OwnedSocket = net.Socket & { [kConnection]: Connection<unknown> | undefined };

/**
 * The TCP and IPC socket resock dials (transport.ts): a net.Socket with room for its connection and the destroy hook
 * on its prototype. Adding both to a plain net.Socket puts them in a separate property array, 40 bytes a socket;
 * TLS sockets, which tls.connect() makes, still get them that way.
 */
export class OwnedNetSocket extends net.Socket {
  [kConnection]: Connection<unknown> | undefined = undefined;

  override destroy(err?: Error): this {
    this[kConnection]?.beforeDestroy(err);
    return super.destroy(err);
  }
}

/** The destroy hook for sockets resock did not make itself: the same reading, then the socket's own destroy(). */
function hookedDestroy(this: OwnedSocket, err?: Error): net.Socket {
  this[kConnection]?.beforeDestroy(err);
  // The hook is an own property; the prototype's destroy() is the socket's own.
  return (Object.getPrototypeOf(this) as net.Socket).destroy.call(this, err);
}

// Connection flags, one small integer rather than a field (8 bytes) each.
const LOST = 1;
const READ_SINCE_LAST_WRITE = 2;
/** A write failed in the socket (the syscall, e.g. a reset already in the kernel): Node dropped its count of held bytes. */
const WRITE_FAILED = 4;
/** The application paused reading (pauseReading()). */
const READ_PAUSED = 8;

const NOTHING_HELD: readonly Buffer[] = Object.freeze([]);
// A reply longer than this many frames is not a reply: the frames go out as messages.
const MAX_HELD_FOR_PONG = 64;

// Every connection's heartbeat timer, on one Node timer. Its clock is the one connections give their heartbeats.
const heartbeatTimers = new TimerQueue({ now });

export abstract class Connection<O> implements HeartbeatHost {
  readonly socket: net.Socket;
  readonly openedAt: number;
  readonly #owner: O;
  #lastReadAt: number;
  #lastWriteAt = -1;
  // -1 until the first write. A number field rather than `number | undefined` so V8 updates it in place: a write
  // then allocates nothing that outlives it.
  #quietBeforeLastWrite = -1;
  #flags = READ_SINCE_LAST_WRITE;

  // Only while some write may not have reached the kernel: one the kernel takes whole at once (every ping on an idle
  // connection) never enters it.
  #ledger: WriteLedger<WriteEntry> | undefined;
  // User bytes accepted on this connection, and how many of them a heartbeat reply proved delivered.
  #userBytes = 0;
  #wireBytes = 0;
  #confirmed = 0;
  #pingMark = 0;
  // Where the outstanding ping ends in the byte stream, and how far the stream had reached the kernel when last asked.
  #pingEnd = 0;
  #progressSeen = 0;
  /** Bytes Node held that never reached the kernel, read as the socket was destroyed; -1 before. */
  #unsentAtDestroy = -1;
  /** Bytes of the writes taken back whole when the connection ended (pings included); -1 before. */
  #takenBack = -1;
  /** Writes whose callback Node failed before the end was known. */
  #failedWrites: { entry: WriteEntry; err: Error }[] | undefined;
  /** The kernel's TCP_INFO, read as the socket was destroyed: the diagnosis's evidence of what the peer answered. */
  #tcpAtDestroy: TcpInfo | undefined;

  readonly #framed: Framed | undefined;
  readonly #heartbeat: Heartbeat | undefined;
  #evidence: LossEvidence | undefined;

  constructor(
    socket: net.Socket,
    owner: O,
    framing: FramingCodec | undefined,
    heartbeat: ResolvedHeartbeat | false,
  ) {
    this.socket = socket;
    this.#owner = owner;
    this.openedAt = now();
    this.#lastReadAt = this.openedAt;
    // Bytes an onConnect handshake wrote straight to the socket are on the wire too; without them, what Node still
    // holds of them would make bytesWritten negative.
    this.#wireBytes = socket.bytesWritten;
    if (framing !== undefined) {
      this.#framed = {
        codec: framing,
        decoder: framing.decoder(),
        onFrame: (frame) => this.#frame(frame),
        isPong: heartbeat ? heartbeat.isPong : undefined,
        heldForPong: undefined,
      };
    }

    (socket as OwnedSocket)[kConnection] = this as Connection<unknown>;
    // Every path that kills the socket (peer reset, write error, our own destroy) goes through destroy() while the
    // handle still exists: the last moment libuv can say how much of the write in flight never reached the kernel.
    if (!(socket instanceof OwnedNetSocket)) socket.destroy = hookedDestroy as net.Socket['destroy'];
    socket.on('data', Connection.#onData);
    socket.on('end', Connection.#onEnd);
    socket.on('error', Connection.#onError);
    socket.on('close', Connection.#onClose);
    socket.on('drain', Connection.#onDrain);

    this.#heartbeat = heartbeat ? new Heartbeat(heartbeat, this) : undefined;
  }

  protected abstract get host(): ConnectionHost<O>;

  /** False from the moment the socket is being torn down: later writes belong to the next connection. */
  get writable(): boolean {
    return (this.#flags & (LOST | WRITE_FAILED)) === 0 && this.#unsentAtDestroy < 0;
  }

  /** Hands one accepted write, e.g. from the offline queue, to the socket. Returns the socket's backpressure answer. */
  write(entry: WriteEntry): boolean {
    return this.#write(entry.data, entry.cb, entry.internal, entry);
  }

  /**
   * Hands a user's write to the socket. Its entry is made only when something needs it: the callback, or the ledger
   * because Node still holds bytes; a write the kernel takes at once, without a callback, allocates nothing.
   */
  writeNow(data: Buffer, cb: WriteCallback | undefined): boolean {
    return this.#write(data, cb, false, undefined);
  }

  #write(data: Buffer, cb: WriteCallback | undefined, internal: boolean, entry: WriteEntry | undefined): boolean {
    const t = now();
    this.#quietBeforeLastWrite = t - Math.max(this.#lastReadAt, this.#lastWriteAt);
    this.#lastWriteAt = t;
    this.#flags &= ~READ_SINCE_LAST_WRITE;
    const size = data.length;
    if (!internal) this.#userBytes += size;
    this.#wireBytes += size;
    const socket = this.socket;
    // Settled now, while Node's count is still true: should this write fail, Node drops the count, and the ledger must
    // then hold exactly the writes that never reached the kernel.
    this.#settle();
    let ok: boolean;
    if (cb === undefined) {
      ok = socket.write(data);
    } else {
      entry ??= newEntry(data, cb, 0, internal);
      ok = socket.write(data, settle(entry, this));
    }
    // Nothing Node still holds means this write and every earlier one reached the kernel: none needs a ledger entry.
    // A write the syscall refused at once (a reset already in the kernel) leaves nothing held either, but failed.
    const failed = socket.errored != null;
    if (failed) this.#flags |= WRITE_FAILED;
    if (failed || socket.writableLength > 0) {
      (this.#ledger ??= new WriteLedger()).push(entry ?? newEntry(data, undefined, 0, internal));
      this.#settle();
    }
    return ok;
  }

  /**
   * Node failed a write before this connection ended. Its end decides: a write taken back is sent again later; one
   * that reached the kernel gets this error after all.
   */
  writeFailed(entry: WriteEntry, err: Error): void {
    if (failedInWrite(err)) this.#flags |= WRITE_FAILED;
    (this.#failedWrites ??= []).push({ entry, err });
  }

  get lost(): boolean {
    return (this.#flags & LOST) !== 0;
  }

  /** The application stopped reading: Node stops reading too once its buffer is full, and the kernel's window pushes back. */
  pauseReading(): void {
    if ((this.#flags & (LOST | READ_PAUSED)) !== 0) return;
    this.#flags |= READ_PAUSED;
    this.socket.pause();
    this.#heartbeat?.suspend();
  }

  resumeReading(): void {
    if ((this.#flags & READ_PAUSED) === 0 || (this.#flags & LOST) !== 0) return;
    this.#flags &= ~READ_PAUSED;
    this.#heartbeat?.resume(now());
    this.socket.resume();
  }

  get readPaused(): boolean {
    return (this.#flags & READ_PAUSED) !== 0;
  }

  /** Ends the connection with a failure of our own making (heartbeat, protocol). */
  fail(err: Error): void {
    if ((this.#flags & LOST) !== 0) return;
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
    return (
      this.#evidence ??
      this.#measure({ confirmedBytes: this.#confirmed, unconfirmedBytes: this.#userBytes - this.#confirmed, requeuedBytes: 0 })
    );
  }

  #measure(writes: WriteAccount): LossEvidence {
    const t = now();
    return {
      connectionAge: t - this.openedAt,
      idleFor: t - this.#lastReadAt,
      sinceLastWrite: this.#lastWriteAt < 0 ? undefined : t - this.#lastWriteAt,
      quietBeforeLastWrite: this.#quietBeforeLastWrite < 0 ? undefined : this.#quietBeforeLastWrite,
      readSinceLastWrite: (this.#flags & READ_SINCE_LAST_WRITE) !== 0,
      bytesRead: this.socket.bytesRead,
      bytesWritten: this.#wireBytes - (this.#takenBack >= 0 ? this.#takenBack : this.socket.writableLength),
      writes,
      tcp: this.#tcpAtDestroy,
    };
  }

  // ---- HeartbeatHost: the connection is its heartbeat's host ------------------------------------------------------

  now(): number {
    return now();
  }

  get timers(): TimerQueue {
    return heartbeatTimers;
  }

  sendPing(): void {
    let data: Buffer;
    try {
      const ping = this.#heartbeat!.options.ping();
      data = this.#framed ? this.#framed.codec.encode(ping) : ping;
    } catch (err) {
      // A user's ping function that throws must not escape a timer: the connection cannot be kept alive without it.
      // The resolved ping already names what went wrong (ERR_RESOCK_PING_FAILED, ERR_RESOCK_INVALID_OPTION).
      this.fail(err instanceof ResockError ? err : callbackFailed('heartbeat.ping', err));
      return;
    }
    this.#pingMark = this.#userBytes;
    this.#write(data, undefined, true, undefined);
    this.#pingEnd = this.#wireBytes;
    this.#progressSeen = this.#handedToKernel();
  }

  onReply(rtt: number): void {
    this.#confirmed = this.#pingMark;
    this.host.onRtt(this.#owner, rtt);
  }

  onTimeout(silentFor: number): void {
    this.fail(heartbeatTimeout(this.#heartbeat!.options.timeout, silentFor));
  }

  onStall(lateBy: number): void {
    this.host.onStall(this.#owner, lateBy);
  }

  backlogged(): boolean {
    const handed = this.#handedToKernel();
    const moved = handed !== this.#progressSeen;
    this.#progressSeen = handed;
    return handed < this.#pingEnd && moved;
  }

  // Bytes of this connection that completed their way into the kernel. bytesWritten counts what Node still buffers
  // and writableLength counts it too, so their difference only moves when a write completes.
  #handedToKernel(): number {
    return this.#wireBytes - this.socket.writableLength;
  }

  // ---- the socket's events ----------------------------------------------------------------------------------------

  // Node calls a listener with the socket as `this`. Static, so every socket shares one function per event.
  static #onData(this: net.Socket, chunk: Buffer): void {
    connectionOf(this).#data(chunk);
  }

  static #onDrain(this: net.Socket): void {
    const conn = connectionOf(this);
    conn.#settle();
    conn.host.onDrain(conn.#owner);
  }

  static #onEnd(this: net.Socket): void {
    // The peer sent FIN. Whatever we still write would meet a closed socket: take it back for the next connection.
    connectionOf(this).#finish(undefined);
  }

  static #onError(this: net.Socket, err: Error): void {
    connectionOf(this).#finish(err);
  }

  static #onClose(this: net.Socket): void {
    connectionOf(this).#finish(undefined);
    this.off('data', Connection.#onData);
    this.off('end', Connection.#onEnd);
    this.off('close', Connection.#onClose);
    this.off('drain', Connection.#onDrain);
    // 'error' stays: a destroyed socket emits no more errors, and a stray one must never become an uncaught exception.
  }

  /** Called by the socket's destroy() before it runs: takes the reading of what never reached the kernel. */
  beforeDestroy(err: Error | undefined): void {
    // A failed write syscall reaches destroy() after Node has dropped its count: whatever the ledger holds never left.
    if (failedInWrite(err)) this.#flags |= WRITE_FAILED;
    if (this.#unsentAtDestroy < 0) {
      this.#unsentAtDestroy = unsentBytes(this.socket);
      // The last moment the descriptor exists: after destroy() libuv closes it and the kernel's state is gone.
      this.#tcpAtDestroy = readTcpInfo(this.socket);
    }
  }

  #data(chunk: Buffer): void {
    const t = now();
    this.#lastReadAt = t;
    this.#flags |= READ_SINCE_LAST_WRITE;
    const framed = this.#framed;
    // Without isPong any byte is life; with it only whole frames are (see #frame), so a peer trickling a frame that
    // never completes cannot hold off the next ping.
    if (framed?.isPong === undefined) this.#heartbeat?.activity(t);
    if (framed === undefined) {
      this.host.onData(this.#owner, chunk);
      return;
    }
    try {
      framed.decoder.push(chunk, framed.onFrame);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  #frame(frame: Buffer): void {
    if ((this.#flags & LOST) !== 0) return;
    const framed = this.#framed!;
    const isPong = framed.isPong;
    if (isPong === undefined) {
      this.host.onMessage(this.#owner, frame);
      return;
    }
    const t = now();
    const held = framed.heldForPong ?? NOTHING_HELD;
    let answer: boolean | 'more';
    try {
      answer = isPong(frame, held);
    } catch (err) {
      // Without a working isPong no reply can ever be recognised, and the peer would be blamed for it.
      this.fail(callbackFailed('heartbeat.isPong', err));
      return;
    }
    if (answer === true) {
      framed.heldForPong = undefined;
      this.#heartbeat?.pong(t);
      return;
    }
    if (answer === 'more' && held.length < MAX_HELD_FOR_PONG) {
      (framed.heldForPong ??= []).push(frame);
      return;
    }
    // Not a reply: what was held for one goes out first, in order; this frame may begin a reply of its own.
    this.#heartbeat?.activity(t);
    if (held.length > 0) {
      framed.heldForPong = undefined;
      for (const h of held) {
        this.host.onMessage(this.#owner, h);
        if ((this.#flags & LOST) !== 0) return;
      }
      this.#frame(frame);
      return;
    }
    // The host shields resock from its listeners: nothing it calls can throw into the decoder.
    this.host.onMessage(this.#owner, frame);
  }

  #finish(err: unknown): void {
    if ((this.#flags & LOST) !== 0) return;
    this.#flags |= LOST;
    this.#heartbeat?.stop();
    if (!this.socket.destroyed) this.socket.destroy();
    const { requeue, account } = this.#takeUnsent();
    this.#evidence = this.#measure(account);
    const failed = this.#failedWrites;
    this.#failedWrites = undefined;
    if (failed !== undefined) for (const f of failed) if (!f.entry.requeued) f.entry.cb!(f.err);
    this.host.onLost(this.#owner, this, err, requeue);
  }

  #takeUnsent(): { requeue: WriteEntry[]; account: WriteAccount } {
    const ledger = this.#ledger;
    this.#ledger = undefined;
    const unsent = (this.#flags & WRITE_FAILED) !== 0 ? Number.POSITIVE_INFINITY : Math.max(0, this.#unsentAtDestroy);
    const taken = ledger?.takeUnsent(unsent) ?? [];
    const out: WriteEntry[] = [];
    let requeuedBytes = 0;
    let takenBack = 0;
    for (const e of taken) {
      takenBack += e.data.length;
      if (e.internal) continue;
      e.requeued = true;
      out.push(newEntry(e.data, e.cb, e.at));
      requeuedBytes += e.data.length;
    }
    this.#takenBack = takenBack;
    const confirmed = Math.min(this.#confirmed, this.#userBytes - requeuedBytes);
    const account = {
      confirmedBytes: confirmed,
      unconfirmedBytes: this.#userBytes - requeuedBytes - confirmed,
      requeuedBytes,
    };
    return { requeue: out, account };
  }

  // Drops ledger entries the kernel certainly has: everything older than the bytes Node still holds. Not once a write
  // has failed: Node then holds nothing by its count, although none of those writes reached the kernel.
  #settle(): void {
    const ledger = this.#ledger;
    if (ledger === undefined || (this.#flags & WRITE_FAILED) !== 0) return;
    const pending = this.socket.writableLength;
    if (pending === 0) {
      this.#ledger = undefined;
      return;
    }
    ledger.settle(pending);
  }
}

export type ConnectionClass<O> = new (
  socket: net.Socket,
  owner: O,
  framing: FramingCodec | undefined,
  heartbeat: ResolvedHeartbeat | false,
) => Connection<O>;

/** The class of connections that report to `host`. */
export function connectionClass<O>(host: ConnectionHost<O>): ConnectionClass<O> {
  return class extends Connection<O> {
    protected get host(): ConnectionHost<O> {
      return host;
    }
  };
}

function connectionOf(socket: net.Socket): Connection<unknown> {
  // Listeners are added by the constructor, after it has set the property.
  return (socket as OwnedSocket)[kConnection]!;
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

function settle(entry: WriteEntry, conn: Connection<unknown>): (err?: Error | null) => void {
  return (err) => {
    // A requeued write completes on a later connection. Node reports the cancelled one here, even as a success
    // when the socket was already destroyed, so its report is not the user's to see.
    if (entry.requeued) return;
    // A write the socket failed never reached the kernel whole: the connection's end takes it back (or reports it).
    if (err && !conn.lost) {
      conn.writeFailed(entry, err);
      return;
    }
    entry.cb!(err);
  };
}

/** An error from the write syscall itself: the write it came with never reached the kernel whole. */
function failedInWrite(err: Error | undefined): boolean {
  return (err as { syscall?: string } | undefined)?.syscall === 'write';
}

/** A user's callback threw: the application's bug, fatal to the connection and never retried. */
function callbackFailed(option: string, err: unknown): Error {
  const detail = err instanceof Error ? err.message : String(err);
  return new ResockError('ERR_RESOCK_CALLBACK', `${option} threw: ${detail}`, { cause: err });
}

function heartbeatTimeout(timeout: number, silentFor: number): Error {
  return codeError(
    'ERR_RESOCK_HEARTBEAT_TIMEOUT',
    `no reply to heartbeat within ${timeout} ms (${Math.round(silentFor)} ms without inbound data)`,
  );
}
