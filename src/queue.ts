// The offline queue: writes accepted while no connection is open, flushed in order after the next successful handshake.
// Bounded by bytes, count and age; every write that leaves it without being sent is told why through its callback.
import { now } from './clock.js';
import { ResockError, type ResockErrorCode } from './errors.js';
import type { ResolvedOfflineQueue } from './types.js';

export type WriteCallback = (err?: Error | null) => void;

/**
 * What a queued write costs beyond its payload, counted against maxBytes: the entry, its Buffer object and its slot
 * (measured 177 bytes of heap per queued one-byte write on Node 20). Without it a million one-byte writes fit in a
 * 4 MiB queue and take hundreds of megabytes; with it the queue's heap stays close to maxBytes.
 */
export const WRITE_OVERHEAD = 176;

/** One accepted write. The same object travels from the offline queue to a connection's ledger and back. */
export interface WriteEntry {
  data: Buffer;
  cb: WriteCallback | undefined;
  /** now() (clock.ts) when resock accepted the write; maxAge counts from here. */
  at: number;
  /** A heartbeat ping: on the wire, but not the user's, so never requeued or counted as theirs. */
  internal: boolean;
  /** Set when the entry went back to the offline queue: the error Node reports for it must not reach the user. */
  requeued: boolean;
}

export function newEntry(data: Buffer, cb: WriteCallback | undefined, at: number, internal = false): WriteEntry {
  return { data, cb, at, internal, requeued: false };
}

/** Fails a write. Always asynchronous, so a callback never runs inside the write() call that made it. */
export function rejectEntry(entry: WriteEntry, code: ResockErrorCode, message: string, cause?: unknown): void {
  const cb = entry.cb;
  if (cb) process.nextTick(cb, new ResockError(code, message, cause === undefined ? undefined : { cause }));
}

export class OfflineQueue {
  #items: WriteEntry[] = [];
  #head = 0;
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #opts: ResolvedOfflineQueue;

  constructor(opts: ResolvedOfflineQueue) {
    this.#opts = opts;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get length(): number {
    return this.#items.length - this.#head;
  }

  /** What the queue counts against maxBytes. */
  #cost(): number {
    return this.#bytes + this.length * WRITE_OVERHEAD;
  }

  /** Adds a new write at the tail. Returns false (and rejects the entry) when it does not fit. */
  push(entry: WriteEntry): boolean {
    const { maxBytes, maxWrites, overflow } = this.#opts;
    const size = entry.data.length;
    const cost = size + WRITE_OVERHEAD;
    if (cost > maxBytes || maxWrites === 0) {
      rejectEntry(entry, 'ERR_RESOCK_QUEUE_FULL', `write of ${size} bytes (+${WRITE_OVERHEAD} per write) exceeds offlineQueue limits (maxBytes ${maxBytes}, maxWrites ${maxWrites})`);
      return false;
    }
    if (this.#cost() + cost > maxBytes || this.length + 1 > maxWrites) {
      if (overflow === 'reject') {
        rejectEntry(entry, 'ERR_RESOCK_QUEUE_FULL', `offline queue full (${this.#bytes} bytes in ${this.length} writes, +${WRITE_OVERHEAD} per write; maxBytes ${maxBytes}, maxWrites ${maxWrites})`);
        return false;
      }
      while (this.length > 0 && (this.#cost() + cost > maxBytes || this.length + 1 > maxWrites)) {
        rejectEntry(this.#shift()!, 'ERR_RESOCK_DROPPED', 'dropped from the offline queue to make room for a newer write (overflow: drop-oldest)');
      }
    }
    this.#items.push(entry);
    this.#bytes += size;
    this.#armExpiry();
    return true;
  }

  /**
   * Puts writes that never left the process back at the head, in their original order. They were accepted already,
   * so they go back even past the limits: losing them here would be a silent loss.
   */
  requeue(entries: WriteEntry[]): void {
    if (entries.length === 0) return;
    const rest = this.#items.slice(this.#head);
    this.#items = entries.concat(rest);
    this.#head = 0;
    for (const e of entries) this.#bytes += e.data.length;
    this.#armExpiry();
  }

  /** Removes and returns every entry, oldest first, dropping the ones past maxAge. */
  takeAll(now: number): WriteEntry[] {
    this.expire(now);
    const out = this.#head === 0 ? this.#items : this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#clearTimer();
    return out;
  }

  /** Rejects entries that waited longer than maxAge. */
  expire(now: number): void {
    const { maxAge } = this.#opts;
    if (maxAge === Infinity) return;
    while (this.length > 0 && now - this.#items[this.#head]!.at >= maxAge) {
      const e = this.#shift()!;
      rejectEntry(e, 'ERR_RESOCK_EXPIRED', `write waited ${Math.round(now - e.at)} ms in the offline queue (maxAge ${maxAge})`);
    }
    this.#armExpiry();
  }

  /** Rejects everything (the socket closed for good). */
  rejectAll(code: ResockErrorCode, message: string, cause?: unknown): void {
    const all = this.takeAll(-Infinity);
    for (const e of all) rejectEntry(e, code, message, cause);
  }

  #shift(): WriteEntry | undefined {
    if (this.length === 0) return undefined;
    const e = this.#items[this.#head]!;
    this.#items[this.#head] = undefined as unknown as WriteEntry;
    this.#head++;
    this.#bytes -= e.data.length;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return e;
  }

  // One timer for the oldest entry only: expiry order equals queue order.
  #armExpiry(): void {
    const { maxAge } = this.#opts;
    if (maxAge === Infinity) return;
    this.#clearTimer();
    if (this.length === 0) return;
    const due = this.#items[this.#head]!.at + maxAge - now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.expire(now());
    }, Math.max(0, Math.ceil(due)));
    // The queue alone must not keep a process alive.
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  dispose(): void {
    this.#clearTimer();
  }
}
