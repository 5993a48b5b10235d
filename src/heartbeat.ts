// Application-level heartbeat for one connection: ping after `interval` of inbound silence, fail after `timeout` without a
// reply. Its one timer is re-armed only when it fires or a reply comes; the data path just stores a timestamp. The timers
// of many connections share one Node timer (TimerQueue).
import type { Clock, QueuedTimer, TimerQueue } from './timer-queue.js';
import type { ResolvedHeartbeat } from './types.js';

export interface HeartbeatHost extends Clock {
  /**
   * The queue the heartbeat's timer goes in, on the host's clock. Asked for each time rather than kept, so a
   * heartbeat costs no field for it: connections answer with one queue for the whole process.
   */
  readonly timers: TimerQueue;
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

/** What a TimerQueue keeps per timer. The entry carries it, so arming a timer allocates nothing. */
// A timer firing this much later than asked means our process stalled (GC, sync work), not that the peer went quiet.
// Half the timeout keeps a real silence detected within timeout × 1.5 while ignoring stalls that would fake one.
const stallThreshold = (timeout: number): number => Math.max(50, timeout / 2);

export class Heartbeat implements QueuedTimer {
  readonly #opts: ResolvedHeartbeat;
  readonly #host: HeartbeatHost;
  due = 0;
  slot = -1;
  #judge: NodeJS.Immediate | undefined;
  #lastInbound: number;
  /** When the outstanding ping was sent; -1 when none is outstanding. */
  #pingAt = -1;
  #stopped = false;
  #suspended = false;

  constructor(opts: ResolvedHeartbeat, host: HeartbeatHost) {
    this.#opts = opts;
    this.#host = host;
    this.#lastInbound = host.now();
    this.#arm(opts.interval);
  }

  get options(): ResolvedHeartbeat {
    return this.#opts;
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

  /**
   * The application stopped reading: a reply could not be read, so nothing is judged and no ping is sent until
   * resume(). The path itself is still watched by TCP keepalive and TCP_USER_TIMEOUT.
   */
  suspend(): void {
    if (this.#stopped || this.#suspended) return;
    this.#suspended = true;
    this.#pingAt = -1;
    this.#host.timers.cancel(this);
    if (this.#judge !== undefined) clearImmediate(this.#judge);
    this.#judge = undefined;
  }

  /** Reading goes on: the heartbeat starts over, as on a new connection. */
  resume(now: number): void {
    if (this.#stopped || !this.#suspended) return;
    this.#suspended = false;
    this.#lastInbound = now;
    this.#arm(this.#opts.interval);
  }

  stop(): void {
    this.#stopped = true;
    this.#host.timers.cancel(this);
    if (this.#judge !== undefined) clearImmediate(this.#judge);
    this.#judge = undefined;
  }

  /** The timer: called by the queue. */
  onDue(): void {
    if (this.#stopped || this.#suspended) return;
    const now = this.#host.now();
    const lateBy = now - this.due;
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
      if (this.#host.afterIo) this.#host.afterIo(() => this.#verdict());
      else this.#judge = setImmediate(Heartbeat.#onVerdict, this);
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
  }

  // The immediate gets the heartbeat as its argument: one shared function rather than a closure per verdict.
  static #onVerdict(hb: Heartbeat): void {
    hb.#verdict();
  }

  #verdict(): void {
    this.#judge = undefined;
    if (this.#stopped || this.#suspended || this.#pingAt < 0) return;
    this.#pingAt = -1;
    this.#host.onTimeout(this.#host.now() - this.#lastInbound);
  }

  #replied(now: number): void {
    if (this.#suspended) return;
    const rtt = now - this.#pingAt;
    this.#pingAt = -1;
    // The timer still waits out the reply timeout; the next ping is due one interval from now, whichever is sooner.
    this.#arm(this.#opts.interval);
    this.#host.onReply(rtt);
  }

  /** (Re)sets the timer to `delay` ms from now, replacing whatever it was waiting for. */
  #arm(delay: number): void {
    this.due = this.#host.now() + delay;
    this.#host.timers.schedule(this);
  }
}
