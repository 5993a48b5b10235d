import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveLiveness, detectionBounds, matchingUserTimeout } from '../src/detect.js';
import { resolveOptions } from '../src/options.js';
import type { ResolvedKeepAlive } from '../src/types.js';

/**
 * Linux's tcp_keepalive_timer replayed tick by tick on a black-holed idle connection (no reply ever arrives): first
 * tick `idle` after the last packet, then every `interval`; a tick aborts, or sends a probe. Independent of the
 * closed formula in detect.ts so each checks the other.
 */
function simulateKernelKeepAlive(ka: ResolvedKeepAlive): number {
  const idle = Math.floor(ka.idle / 1000) * 1000;
  const interval = Math.floor(ka.interval / 1000) * 1000;
  let elapsed = idle;
  let probesOut = 0;
  for (let tick = 0; tick < 100_000; tick++) {
    const abort =
      (ka.userTimeout !== 0 && elapsed >= ka.userTimeout && probesOut > 0) ||
      (ka.userTimeout === 0 && probesOut >= ka.count);
    if (abort) return elapsed;
    probesOut++;
    elapsed += interval;
  }
  throw new Error('simulation did not end');
}

describe('deriveLiveness', () => {
  it.each([
    [3000, { interval: 1200, timeout: 1200 }, { idle: 1000, interval: 1000, count: 1, userTimeout: 2000 }],
    [10_000, { interval: 4000, timeout: 4000 }, { idle: 5000, interval: 1000, count: 3, userTimeout: 8000 }],
    [30_000, { interval: 12_000, timeout: 12_000 }, { idle: 12_000, interval: 4000, count: 3, userTimeout: 24_000 }],
    [60_000, { interval: 24_000, timeout: 24_000 }, { idle: 24_000, interval: 8000, count: 3, userTimeout: 48_000 }],
  ])('derives the documented values for D = %i', (d, heartbeat, keepAlive) => {
    expect(deriveLiveness(d)).toEqual({ heartbeat, keepAlive });
  });

  it.each([
    [3000, 2000, 2200, 2400],
    [10_000, 8000, 8200, 8000],
    [30_000, 24_000, 24_200, 24_000],
    [60_000, 48_000, 48_200, 48_000],
  ])('has the documented bounds for D = %i', (d, idle, unacked, hung) => {
    const { heartbeat, keepAlive } = deriveLiveness(d);
    const kernel = detectionBounds(false, keepAlive);
    expect(kernel.idleBlackHole).toBe(idle);
    expect(kernel.unackedBlackHole).toBe(unacked);
    expect(detectionBounds(heartbeat, false).hungPeer).toBe(hung);
  });

  it('meets every bound within D, with each mechanism alone, for any D in 3 s..1 h', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3000, max: 3_600_000 }), (d) => {
        const { heartbeat, keepAlive } = deriveLiveness(d);
        const both = detectionBounds(heartbeat, keepAlive);
        const kernelOnly = detectionBounds(false, keepAlive);
        const heartbeatOnly = detectionBounds(heartbeat, false);
        for (const b of [both, kernelOnly, heartbeatOnly]) {
          expect(b.idleBlackHole).toBeLessThanOrEqual(d);
          expect(b.unackedBlackHole).toBeLessThanOrEqual(d);
        }
        expect(both.hungPeer).toBeLessThanOrEqual(d);
        expect(heartbeatOnly.hungPeer).toBeLessThanOrEqual(d);
        expect(kernelOnly.hungPeer).toBe(Infinity);
      }),
      { numRuns: 2000 },
    );
  });

  it('leaves a fifth of D as slack: it absorbs any RTO up to 0.2·D and H + T, idle + probes stay within 0.8·D', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3000, max: 3_600_000 }), (d) => {
        const { heartbeat, keepAlive } = deriveLiveness(d);
        const budget = (d * 4) / 5;
        expect(heartbeat.interval + heartbeat.timeout).toBeLessThanOrEqual(budget);
        expect(keepAlive.idle + keepAlive.interval * keepAlive.count).toBeLessThanOrEqual(budget);
        expect(keepAlive.userTimeout).toBeLessThanOrEqual(budget);
        const slowPath = detectionBounds(false, keepAlive, Math.floor(d / 5));
        expect(slowPath.unackedBlackHole).toBeLessThanOrEqual(d);
      }),
      { numRuns: 1000 },
    );
  });

  it('spends the whole keepalive budget in whole seconds, with up to three probes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3000, max: 3_600_000 }), (d) => {
        const { keepAlive } = deriveLiveness(d);
        const seconds = Math.floor((d * 4) / 5000);
        expect(keepAlive.idle % 1000).toBe(0);
        expect(keepAlive.interval % 1000).toBe(0);
        expect(keepAlive.idle).toBeGreaterThanOrEqual(1000);
        expect(keepAlive.interval).toBeGreaterThanOrEqual(1000);
        expect(keepAlive.idle + keepAlive.interval * keepAlive.count).toBe(seconds * 1000);
        expect(keepAlive.userTimeout).toBe(seconds * 1000);
        // Half the budget probes, so three probes once that half holds 3 s (a 5 s budget: 2 s idle + 3 × 1 s).
        expect(keepAlive.count).toBe(Math.min(3, Math.ceil(seconds / 2)));
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    [1000, { interval: 400, timeout: 400 }, { idle: 1000, interval: 1000, count: 1, userTimeout: 800 }],
    [2000, { interval: 800, timeout: 800 }, { idle: 1000, interval: 1000, count: 1, userTimeout: 1600 }],
    [2499, { interval: 999, timeout: 999 }, { idle: 1000, interval: 1000, count: 1, userTimeout: 1999 }],
    [2500, { interval: 1000, timeout: 1000 }, { idle: 1000, interval: 1000, count: 1, userTimeout: 2000 }],
  ])('below 3 s keepalive takes its smallest honest values; heartbeat and user timeout carry D = %i', (d, heartbeat, keepAlive) => {
    expect(deriveLiveness(d)).toEqual({ heartbeat, keepAlive });
  });

  it('meets every bound within D for D in 1 s..3 s with heartbeat and keepalive, keepalive alone only the unacked one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 2999 }), (d) => {
        const { heartbeat, keepAlive } = deriveLiveness(d);
        const both = detectionBounds(heartbeat, keepAlive);
        expect(Math.max(both.idleBlackHole, both.unackedBlackHole, both.hungPeer)).toBeLessThanOrEqual(d);
        expect(heartbeat.interval + heartbeat.timeout).toBeLessThanOrEqual((d * 4) / 5);
        const kernelOnly = detectionBounds(false, keepAlive);
        expect(kernelOnly.unackedBlackHole).toBeLessThanOrEqual(d);
        // 1 s idle + one 1 s probe is the least keepalive can do: honest, and documented as needing a heartbeat.
        expect(kernelOnly.idleBlackHole).toBe(2000);
        expect(keepAlive.idle % 1000 + (keepAlive.interval % 1000)).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it('keepAlive: {} keeps the short derived user timeout below 2500; given timings get their matching one', () => {
    expect(resolveOptions({ port: 1, detectWithin: 1500, keepAlive: {} }).keepAlive).toEqual(deriveLiveness(1500).keepAlive);
    expect(resolveOptions({ port: 1, detectWithin: 1500, keepAlive: { count: 2 } }).keepAlive).toMatchObject({ userTimeout: 3000 });
  });

  it('stays within the kernel limits and the bound for very large D', () => {
    for (const d of [3_600_000, 50_000_000, 90_000_000, 2_147_483_647]) {
      const { heartbeat, keepAlive } = deriveLiveness(d);
      expect(keepAlive.idle).toBeLessThanOrEqual(32_767_000);
      expect(keepAlive.interval).toBeLessThanOrEqual(32_767_000);
      expect(keepAlive.userTimeout).toBeLessThanOrEqual(2_147_483_647);
      const b = detectionBounds(heartbeat, keepAlive);
      expect(Math.max(b.idleBlackHole, b.unackedBlackHole, b.hungPeer)).toBeLessThanOrEqual(d);
    }
  });

  it.each([999, 0, -1, 3000.5, Number.NaN, Infinity, 2_147_483_648])('rejects D = %d', (d) => {
    let caught: unknown;
    try {
      deriveLiveness(d);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RangeError);
    expect((caught as { code?: string }).code).toBe('ERR_RESOCK_INVALID_OPTION');
    expect((caught as Error).message).toContain(`detectWithin must be an integer in 1000..2147483647`);
    expect((caught as Error).message).toContain(`got ${String(d)}`);
  });
});

describe('detectionBounds', () => {
  const ka = (idle: number, interval: number, count: number, userTimeout: number): ResolvedKeepAlive => ({
    idle,
    interval,
    count,
    userTimeout,
  });

  it('agrees with a tick-by-tick replay of the kernel keepalive timer', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 60_000 }),
        fc.integer({ min: 1000, max: 60_000 }),
        fc.integer({ min: 1, max: 127 }),
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 600_000 })),
        (idle, interval, count, userTimeout) => {
          const config = ka(idle, interval, count, userTimeout);
          expect(detectionBounds(false, config).idleBlackHole).toBe(simulateKernelKeepAlive(config));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('covers the detection times measured in FAULTS.md row 9', () => {
    // Node's own setKeepAlive(true, 1000): 1 s idle, 1 s × 10 probes; measured 10.8 s from the fault.
    const nodeDefault = detectionBounds(false, ka(1000, 1000, 10, 0)).idleBlackHole;
    expect(nodeDefault).toBe(11_000);
    expect(10_800).toBeLessThanOrEqual(nodeDefault);
    // The same plus TCP_USER_TIMEOUT 3 s: the user timeout replaces the probe count; measured 2.6 s.
    const withUserTimeout = detectionBounds(false, ka(1000, 1000, 10, 3000)).idleBlackHole;
    expect(withUserTimeout).toBe(3000);
    expect(2600).toBeLessThanOrEqual(withUserTimeout);
  });

  it('floors keepalive durations to whole seconds as the kernel does', () => {
    expect(detectionBounds(false, ka(1999, 2500, 2, 0)).idleBlackHole).toBe(1000 + 2 * 2000);
  });

  it('needs at least one probe before a user timeout shorter than idle can end the connection', () => {
    expect(detectionBounds(false, ka(10_000, 3000, 5, 2000)).idleBlackHole).toBe(13_000);
  });

  it('charges an unacked black hole userTimeout plus one RTO, or tcp_retries2 without a user timeout', () => {
    expect(detectionBounds(false, ka(5000, 1000, 3, 8000)).unackedBlackHole).toBe(8200);
    expect(detectionBounds(false, ka(5000, 1000, 3, 8000), 1000).unackedBlackHole).toBe(9000);
    expect(detectionBounds(false, ka(5000, 1000, 3, 0)).unackedBlackHole).toBe(1_044_600);
    expect(detectionBounds(false, false).unackedBlackHole).toBe(1_044_600);
  });

  it('never sees a hung peer or an idle black hole without a heartbeat or keepalive', () => {
    expect(detectionBounds(false, false)).toEqual({
      idleBlackHole: Infinity,
      unackedBlackHole: 1_044_600,
      hungPeer: Infinity,
    });
  });

  it('lets a heartbeat end every fault at H + T when that is sooner', () => {
    expect(detectionBounds({ interval: 1000, timeout: 2000 }, ka(60_000, 10_000, 9, 0))).toEqual({
      idleBlackHole: 3000,
      unackedBlackHole: 3000,
      hungPeer: 3000,
    });
  });

  it('computes the matching user timeout from whole seconds', () => {
    expect(matchingUserTimeout(12_000, 4000, 3)).toBe(24_000);
    expect(matchingUserTimeout(1500, 2999, 2)).toBe(5000);
  });
});
