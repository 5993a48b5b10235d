// Whether to dial again after a failure: a pure function of the run so far, the failure, the options and the clock, so
// every rule can be tested without a socket. The socket commits the answer before it tells anyone about the failure.
import type { Failure, ResolvedReconnect } from './types.js';

/** What the decision needs to know of the current run of attempts. */
export interface RunSoFar {
  /** Retries already granted in this run. */
  readonly retriesUsed: number;
  /** When the run's first failure happened; -1 before it. */
  readonly firstFailureAt: number;
}

export type ReconnectDecision =
  | {
      readonly retry: true;
      /** Set when the user's shouldReconnect threw: the decision ignored it, the error is to be surfaced. */
      readonly callbackError?: unknown;
    }
  | {
      readonly retry: false;
      /** 'fatal' when the failure itself can never succeed on retry; 'gave-up' when the options ran out. */
      readonly reason: 'gave-up' | 'fatal';
    };

const RETRY: ReconnectDecision = Object.freeze({ retry: true });
const FATAL: ReconnectDecision = Object.freeze({ retry: false, reason: 'fatal' });
const GAVE_UP: ReconnectDecision = Object.freeze({ retry: false, reason: 'gave-up' });

/**
 * The answer for `failure`. `now` is when the failure happened (clock.ts). shouldReconnect is asked last, and only
 * when resock would retry: it can stop a retry, never force one. If it throws, its throw is no answer: resock keeps
 * its promise to reconnect until told otherwise, and hands the error back to be surfaced. Any falsy answer gives up, as
 * the README says.
 */
export function decideReconnect(
  rc: ResolvedReconnect | false,
  failure: Failure,
  run: RunSoFar | undefined,
  now: number,
): ReconnectDecision {
  if (!failure.retryable) return FATAL;
  if (rc === false) return GAVE_UP;
  if ((run?.retriesUsed ?? 0) >= rc.retries) return GAVE_UP;
  const firstFailureAt = run?.firstFailureAt ?? -1;
  if (firstFailureAt >= 0 && now - firstFailureAt >= rc.maxElapsed) return GAVE_UP;
  const ask = rc.shouldReconnect;
  if (ask === undefined) return RETRY;
  let answer: unknown;
  try {
    answer = ask(failure);
  } catch (err) {
    return { retry: true, callbackError: err };
  }
  return answer ? RETRY : GAVE_UP;
}
