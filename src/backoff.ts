// Reconnect delays: exponential growth, capped, then jittered so a crowd of clients that lost the same server does
// not redial in lockstep. The math is one pure function (random injected); createBackoff only remembers the attempt
// and the previous delay, which decorrelated jitter feeds on.
import type { JitterKind } from './types.js';

export interface BackoffOptions {
  /** Base delay in ms of the first retry. */
  readonly minDelay: number;
  /** Cap in ms on any one delay, applied before the jitter. */
  readonly maxDelay: number;
  /** Growth of the delay per attempt. */
  readonly factor: number;
  readonly jitter: JitterKind;
}

export interface Backoff {
  /** The delay in ms before the next retry; counts one attempt. */
  next(): number;
  /** Back to the first attempt, e.g. once a connection has proved stable. */
  reset(): void;
  /** Delays handed out since the last reset. */
  readonly attempt: number;
}

// setTimeout fires at once for anything larger, so no delay may exceed it whatever maxDelay says.
const TIMER_MAX = 2_147_483_647;

/**
 * No retry after the first comes sooner than this, whatever the options: with minDelay 0 (or maxDelay 0) a refused
 * port would otherwise be redialled hundreds of times a second. A zero minDelay grows from it instead.
 */
export const RETRY_FLOOR = 10;

/**
 * The delay in whole ms (Math.round) before retry number `attempt` (1-based), in [0, min(maxDelay, 2^31 - 1)], and
 * never below RETRY_FLOOR from the second retry on.
 *
 * The exponential base minDelay·factor^(attempt-1) is capped at maxDelay before the jitter, so jitter still spreads
 * delays once the cap is reached. Jitter kinds (AWS, "Exponential Backoff And Jitter"):
 * - 'none': the base. 'full': uniform in [0, base]. 'equal': uniform in [base/2, base].
 * - 'decorrelated': min(maxDelay, uniform in [minDelay, max(minDelay, 3·previousDelay)]); ignores factor and attempt,
 *   previousDelay is 0 before the first retry.
 *
 * Expects validated options (minDelay, maxDelay >= 0, factor >= 1) and random() in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  previousDelay: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(opts.maxDelay, TIMER_MAX);
  const min = Math.min(opts.minDelay, cap);
  let delay: number;
  switch (opts.jitter) {
    case 'none':
      delay = cappedBase(attempt, min, cap, opts.factor);
      break;
    case 'full':
      delay = random() * cappedBase(attempt, min, cap, opts.factor);
      break;
    case 'equal': {
      const base = cappedBase(attempt, min, cap, opts.factor);
      delay = base / 2 + (random() * base) / 2;
      break;
    }
    case 'decorrelated': {
      // Clamping the input keeps 3·previousDelay finite even if a caller passes garbage.
      const prev = previousDelay > 0 ? Math.min(previousDelay, cap) : 0;
      const upper = Math.max(min, prev * 3);
      delay = Math.min(cap, min + random() * (upper - min));
      break;
    }
  }
  const rounded = Math.round(delay);
  // NaN (a random() outside its contract) fails both comparisons and ends up as 0.
  const result = rounded > 0 ? Math.min(rounded, cap) : 0;
  return attempt > 1 ? Math.max(result, RETRY_FLOOR) : result;
}

/** minDelay·factor^(attempt-1), capped at `cap`, without ever computing an infinite power. */
function cappedBase(attempt: number, min: number, cap: number, factor: number): number {
  // A zero base would stay zero however many attempts pass: the first retry is immediate, later ones grow from the floor.
  if (min <= 0) {
    if (attempt <= 1) return 0;
    min = Math.min(RETRY_FLOOR, cap);
    attempt--;
    if (min <= 0) return 0;
  }
  const exponent = Math.max(0, attempt - 1);
  if (factor > 1) {
    // The exponent from which the base is at the cap; beyond it factor^exponent may overflow to Infinity.
    const capExponent = Math.log(cap / min) / Math.log(factor);
    if (exponent >= capExponent) return cap;
  }
  return Math.min(cap, min * factor ** exponent);
}

/** Stateful wrapper for the reconnect loop: counts attempts and remembers the previous delay. */
export function createBackoff(opts: BackoffOptions, random: () => number = Math.random): Backoff {
  return new BackoffState(opts, random);
}

// A class rather than an object of closures: its methods live once on the prototype, not once per socket.
class BackoffState implements Backoff {
  readonly #opts: BackoffOptions;
  readonly #random: () => number;
  #attempt = 0;
  #previous = 0;

  constructor(opts: BackoffOptions, random: () => number) {
    this.#opts = opts;
    this.#random = random;
  }

  next(): number {
    this.#attempt++;
    this.#previous = backoffDelay(this.#attempt, this.#opts, this.#previous, this.#random);
    return this.#previous;
  }

  reset(): void {
    this.#attempt = 0;
    this.#previous = 0;
  }

  get attempt(): number {
    return this.#attempt;
  }
}
