// Application-level heartbeat for one connection: ping after `interval` of inbound silence, fail after `timeout` without a
// reply. One timer per connection, re-armed only when it fires; the data path just stores a timestamp.
import type { ResolvedHeartbeat } from './types.js';

export interface HeartbeatHost {
  now(): number;
  /** Writes one ping on the wire. */
  sendPing(): void;
  onReply(rtt: number): void;
  /** Nothing arrived within `timeout` of a ping. */
  onTimeout(silentFor: number): void;
  /** Our own event loop was blocked: the timer fired `lateBy` ms late, so silence proves nothing yet. */
  onStall(lateBy: number): void;
  /**
   * True while the ping has not reached the kernel yet but earlier bytes did since the last call: a backlog that drains,
   * not a dead peer. Absent: never backlogged.
   */
  backlogged?(): boolean;
  /** Runs `fn` after pending I/O has been read. Default: setImmediate. Tests with fake timers pass their own. */
  afterIo?(fn: () => void): void;
}

// A timer firing this much later than asked means our process stalled (GC, sync work), not that the peer went quiet.
// Half the timeout keeps a real silence detected within timeout × 1.5 while ignoring stalls that would fake one.
const stallThreshold = (timeout: number): number => Math.max(50, timeout / 2);

export class Heartbeat {
  readonly #opts: ResolvedHeartbeat;
  readonly #host: HeartbeatHost;
  #timer: NodeJS.Timeout | undefined;
  #judge: NodeJS.Immediate | undefined;
  #due = 0;
  #lastInbound: number;
  /** When the outstanding ping was sent; -1 when none is outstanding. */
  #pingAt = -1;
  #stopped = false;

  constructor(opts: ResolvedHeartbeat, host: HeartbeatHost) {
    this.#opts = opts;
    this.#host = host;
    this.#lastInbound = host.now();
    this.#arm(opts.interval);
  }

  /**
   * Inbound traffic: without isPong, any bytes (they are also the reply to an outstanding ping); with isPong, whole
   * frames. It postpones the next ping; only a reply ends the wait for one.
   */
  activity(now: number): void {
    this.#lastInbound = now;
    if (this.#opts.isPong === undefined && this.#pingAt >= 0 && !this.#stopped) this.#replied(now);
  }

  /** A frame recognised as a reply by isPong: measures the RTT and confirms what was written before the ping. */
  pong(now: number): void {
    this.#lastInbound = now;
    if (this.#pingAt >= 0 && !this.#stopped) this.#replied(now);
  }

  get waitingForReply(): boolean {
    return this.#pingAt >= 0;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#judge !== undefined) clearImmediate(this.#judge);
    this.#timer = undefined;
    this.#judge = undefined;
  }

  #verdict = (): void => {
    this.#judge = undefined;
    if (this.#stopped || this.#pingAt < 0) return;
    this.#pingAt = -1;
    this.#host.onTimeout(this.#host.now() - this.#lastInbound);
  };

  #replied(now: number): void {
    const rtt = now - this.#pingAt;
    this.#pingAt = -1;
    // The timer still waits out the reply timeout; the next ping is due one interval from now, whichever is sooner.
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#arm(this.#opts.interval);
    this.#host.onReply(rtt);
  }

  #arm(delay: number): void {
    this.#due = this.#host.now() + delay;
    this.#timer = setTimeout(this.#fire, delay);
    // A heartbeat alone must not keep a process alive; the socket does that.
    this.#timer.unref();
  }

  #fire = (): void => {
    this.#timer = undefined;
    if (this.#stopped) return;
    const now = this.#host.now();
    const lateBy = now - this.#due;
    const { interval, timeout } = this.#opts;
    if (this.#pingAt >= 0) {
      if (lateBy > stallThreshold(timeout)) {
        // Replies may be sitting unread behind the stall: give I/O a full timeout before judging.
        this.#host.onStall(lateBy);
        this.#arm(timeout);
        return;
      }
      if (this.#host.backlogged?.()) {
        // The ping still waits behind our own data, and that data is moving: the path and the peer's kernel are alive,
        // the wire is just slow. Keep waiting; once nothing moves, the timeout runs out.
        this.#arm(timeout);
        return;
      }
      // Timers run before the poll phase: a reply may be in the kernel, unread. Judge after one round of I/O.
      if (this.#host.afterIo) this.#host.afterIo(this.#verdict);
      else this.#judge = setImmediate(this.#verdict);
      return;
    }
    const quiet = now - this.#lastInbound;
    if (quiet < interval) {
      this.#arm(interval - quiet);
      return;
    }
    this.#pingAt = now;
    this.#host.sendPing();
    if (!this.#stopped) this.#arm(timeout);
  };
}
