// One Node timer for many due times: every heartbeat of the process is a slot in a heap ordered by due time, so
// re-arming a connection's heartbeat allocates nothing and 10,000 connections hold one Timeout between them.

export interface Clock {
  now(): number;
}

export interface QueuedTimer {
  /** When the timer is due, in the queue's clock. Set before TimerQueue.schedule(). */
  due: number;
  /** The entry's index in the queue's heap, -1 while not queued. Only the queue writes it. */
  slot: number;
  onDue(): void;
}

// A Node timer this far past its time when the queue is next used has been lost, not delayed: armed through timer
// functions that were replaced since (a test's fake timers), it would hold up every heartbeat of the process. Only
// while the event loop is blocked can a live timer be this late, and setting it again then costs nothing.
const LOST_TIMER_MS = 1000;

/**
 * Many timers on one unref'd Node timer: a binary min-heap of due times, and a Node timer for the earliest. Each
 * connection re-arms its heartbeat twice per cycle; a Timeout of its own would cost every connection about 200 bytes
 * (the Timeout, its arguments, its timestamps), and a new Timeout per re-arm lives just long enough to be promoted, so
 * thousands of connections would keep V8's heap growing and compacting. Here re-arming is O(log n) and allocates nothing.
 */
export class TimerQueue {
  readonly #clock: Clock;
  readonly #heap: QueuedTimer[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** What #timer was set for; Infinity while none is set. */
  #timerDue = Infinity;
  readonly #onTimer = (): void => this.#run();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** Queues `entry` for `entry.due`, or moves it there if it is queued already. */
  schedule(entry: QueuedTimer): void {
    if (entry.slot < 0) {
      entry.slot = this.#heap.length;
      this.#heap.push(entry);
    }
    // The due time may have moved either way.
    this.#up(entry.slot);
    this.#down(entry.slot);
    this.#arm();
  }

  cancel(entry: QueuedTimer): void {
    if (entry.slot < 0) return;
    this.#removeAt(entry.slot);
    // No Node timer outlives the last entry. Otherwise a timer set for a cancelled entry just fires early and re-arms.
    if (this.#heap.length === 0) this.#disarm();
  }

  #run(): void {
    this.#timer = undefined;
    this.#timerDue = Infinity;
    // One reading for the whole batch: an entry a callback re-arms is due later than this, so the loop ends.
    const now = this.#clock.now();
    try {
      for (let top = this.#heap[0]; top !== undefined && top.due <= now; top = this.#heap[0]) {
        this.#removeAt(0);
        top.onDue();
      }
    } finally {
      // Also after a callback threw: the entries still due run on the next tick instead of never.
      this.#arm();
    }
  }

  #arm(): void {
    const top = this.#heap[0];
    if (top === undefined) return;
    if (top.due >= this.#timerDue && this.#clock.now() - this.#timerDue < LOST_TIMER_MS) return;
    this.#disarm();
    // Node counts whole ms and never fires early by its own clock, but its clock is read once per loop turn, so a timer
    // can come a fraction early by ours: the entry is then simply not due yet and the timer is set again.
    const delay = Math.max(1, Math.ceil(top.due - this.#clock.now()));
    this.#timerDue = top.due;
    this.#timer = setTimeout(this.#onTimer, delay);
    // Heartbeats alone must not keep a process alive; the sockets do that.
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
  }

  #removeAt(i: number): void {
    const heap = this.#heap;
    heap[i]!.slot = -1;
    const last = heap.pop()!;
    if (i < heap.length) {
      heap[i] = last;
      last.slot = i;
      this.#up(i);
      this.#down(last.slot);
    }
  }

  #up(i: number): void {
    const heap = this.#heap;
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent]!;
      if (above.due <= entry.due) break;
      heap[i] = above;
      above.slot = i;
      i = parent;
    }
    heap[i] = entry;
    entry.slot = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const entry = heap[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= heap.length) break;
      if (child + 1 < heap.length && heap[child + 1]!.due < heap[child]!.due) child++;
      const below = heap[child]!;
      if (entry.due <= below.due) break;
      heap[i] = below;
      below.slot = i;
      i = child;
    }
    heap[i] = entry;
    entry.slot = i;
  }
}
