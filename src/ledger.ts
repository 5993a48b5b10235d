// The write ledger of one connection: the writes handed to the socket whose bytes Node may still hold, oldest first.
// Pure bookkeeping over sizes; connection.ts alone reads Node's internals and tells it how many bytes are still held.
//
// The rule it keeps: a write that did not reach the kernel whole is taken back whole. Its beginning may have gone out
// on the dying connection, but a new connection is a new session for every protocol, so the next one gets it from its
// first byte or not at all.

export interface LedgerEntry {
  readonly data: { readonly length: number };
}

export class WriteLedger<E extends LedgerEntry> {
  // Slots before #head are released; the array is compacted once they dominate it.
  #entries: (E | undefined)[] = [];
  #head = 0;
  #bytes = 0;

  /** Bytes of the writes in the ledger. */
  get bytes(): number {
    return this.#bytes;
  }

  get length(): number {
    return this.#entries.length - this.#head;
  }

  push(entry: E): void {
    this.#entries.push(entry);
    this.#bytes += entry.data.length;
  }

  /**
   * Node still holds `pending` bytes, all of them the newest writes': every write older than those is in the kernel
   * and leaves the ledger. Only valid while the socket has not failed a write (a failed write clears Node's count).
   */
  settle(pending: number): void {
    const entries = this.#entries;
    while (this.#head < entries.length) {
      const size = entries[this.#head]!.data.length;
      if (this.#bytes - size < pending) break;
      entries[this.#head++] = undefined;
      this.#bytes -= size;
    }
    if (this.#head > 1024 && this.#head * 2 > entries.length) {
      this.#entries = entries.slice(this.#head);
      this.#head = 0;
    } else if (this.#head === entries.length) {
      this.#entries = [];
      this.#head = 0;
    }
  }

  /**
   * Empties the ledger and returns, oldest first, the writes that did not reach the kernel whole: every write that
   * holds one of the last `unsent` bytes (Infinity: all of them, as after a failed write).
   */
  takeUnsent(unsent: number): E[] {
    const entries = this.#entries;
    let first = entries.length;
    let left = unsent;
    while (first > this.#head && left > 0) {
      first--;
      left -= entries[first]!.data.length;
    }
    const out = entries.slice(first) as E[];
    this.#entries = [];
    this.#head = 0;
    this.#bytes = 0;
    return out;
  }
}
