// The reconnect decision alone: a pure function of the options, the failure, the run so far and the clock.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideReconnect } from '../src/reconnect.js';
import type { Failure, ResolvedReconnect } from '../src/types.js';

const failure = (retryable: boolean): Failure =>
  ({ kind: retryable ? 'reset' : 'tls', retryable, code: 'X', message: '', phase: 'open' }) as unknown as Failure;

const rc = (o: Partial<ResolvedReconnect> = {}): ResolvedReconnect => ({
  retries: Infinity,
  minDelay: 100,
  maxDelay: 30_000,
  factor: 2,
  jitter: 'full',
  maxElapsed: Infinity,
  stableAfter: 5000,
  shouldReconnect: undefined,
  ...o,
});

describe('decideReconnect', () => {
  it('a failure that cannot succeed on retry is fatal, whatever the options say', () => {
    expect(decideReconnect(rc(), failure(false), undefined, 0)).toEqual({ retry: false, reason: 'fatal' });
    expect(decideReconnect(false, failure(false), undefined, 0)).toEqual({ retry: false, reason: 'fatal' });
  });

  it('reconnect: false gives up on a retryable failure', () => {
    expect(decideReconnect(false, failure(true), undefined, 0)).toEqual({ retry: false, reason: 'gave-up' });
  });

  it('retries and maxElapsed run out', () => {
    expect(decideReconnect(rc({ retries: 3 }), failure(true), { retriesUsed: 3, firstFailureAt: 0 }, 0)).toMatchObject({ retry: false });
    expect(decideReconnect(rc({ retries: 3 }), failure(true), { retriesUsed: 2, firstFailureAt: 0 }, 0)).toMatchObject({ retry: true });
    expect(decideReconnect(rc({ maxElapsed: 1000 }), failure(true), { retriesUsed: 1, firstFailureAt: 500 }, 1500)).toMatchObject({ retry: false });
    expect(decideReconnect(rc({ maxElapsed: 1000 }), failure(true), { retriesUsed: 1, firstFailureAt: 500 }, 1499)).toMatchObject({ retry: true });
  });

  it('shouldReconnect can stop a retry, never force one; a throw is no answer', () => {
    const no = rc({ shouldReconnect: () => false });
    const yes = rc({ shouldReconnect: () => true });
    const boom = new Error('boom');
    const throws = rc({
      shouldReconnect: () => {
        throw boom;
      },
    });
    expect(decideReconnect(no, failure(true), undefined, 0)).toEqual({ retry: false, reason: 'gave-up' });
    expect(decideReconnect(yes, failure(false), undefined, 0)).toEqual({ retry: false, reason: 'fatal' });
    expect(decideReconnect(yes, failure(true), { retriesUsed: 5, firstFailureAt: 0 }, 0)).toMatchObject({ retry: true });
    expect(decideReconnect(rc({ retries: 5, shouldReconnect: () => true }), failure(true), { retriesUsed: 5, firstFailureAt: 0 }, 0)).toMatchObject({ retry: false });
    expect(decideReconnect(throws, failure(true), undefined, 0)).toEqual({ retry: true, callbackError: boom });
  });

  it('property: retries exactly when every limit allows it, and asks shouldReconnect only then', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 12 }),
        fc.option(fc.integer({ min: 1, max: 5000 }), { nil: undefined }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.constantFrom('yes', 'no', 'throws', 'none'),
        (retryable, retries, used, maxElapsed, elapsed, answer) => {
          let asked = 0;
          const opts = rc({
            retries,
            maxElapsed: maxElapsed ?? Infinity,
            shouldReconnect:
              answer === 'none'
                ? undefined
                : () => {
                    asked++;
                    if (answer === 'throws') throw new Error('x');
                    return answer === 'yes';
                  },
          });
          const d = decideReconnect(opts, failure(retryable), { retriesUsed: used, firstFailureAt: 1000 }, 1000 + elapsed);
          const limitsAllow = retryable && used < retries && (maxElapsed === undefined || elapsed < maxElapsed);
          expect(asked).toBe(limitsAllow && answer !== 'none' ? 1 : 0);
          expect(d.retry).toBe(limitsAllow && answer !== 'no');
          if (!d.retry) expect(d.reason).toBe(retryable ? 'gave-up' : 'fatal');
        },
      ),
      { numRuns: 1000 },
    );
  });
});
