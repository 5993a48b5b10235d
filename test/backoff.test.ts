import { describe, expect, it } from 'vitest';
import { backoffDelay, createBackoff, type BackoffOptions, RETRY_FLOOR } from '../src/backoff.js';
import type { JitterKind } from '../src/types.js';

/** mulberry32: a small seeded PRNG, so every run draws the same samples. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SAMPLES = 20_000;

function opts(jitter: JitterKind, over: Partial<BackoffOptions> = {}): BackoffOptions {
  return { minDelay: 100, maxDelay: 30_000, factor: 2, jitter, ...over };
}

function sample(attempt: number, o: BackoffOptions, previous = 0, seed = 1): number[] {
  const random = seeded(seed);
  return Array.from({ length: SAMPLES }, () => backoffDelay(attempt, o, previous, random));
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Share of samples in each quarter of [lo, hi]. */
function quarters(xs: readonly number[], lo: number, hi: number): number[] {
  const counts = [0, 0, 0, 0];
  for (const x of xs) counts[Math.min(3, Math.floor(((x - lo) / (hi - lo)) * 4))]!++;
  return counts.map((c) => c / xs.length);
}

describe('backoffDelay', () => {
  it("'none' is minDelay·factor^(attempt-1), capped", () => {
    const o = opts('none');
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, o, 0))).toEqual([100, 200, 400, 800, 1600]);
    expect(backoffDelay(9, o, 0)).toBe(25_600);
    expect(backoffDelay(10, o, 0)).toBe(30_000);
    expect(backoffDelay(11, o, 0)).toBe(30_000);
  });

  it("'none' ignores random()", () => {
    let calls = 0;
    backoffDelay(3, opts('none'), 0, () => {
      calls++;
      return 0.5;
    });
    expect(calls).toBe(0);
  });

  it("'full' is uniform over [0, base] with mean ≈ base/2", () => {
    const base = 800; // attempt 4
    const xs = sample(4, opts('full'));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThanOrEqual(base);
    // Uniform: standard error of the mean is base/sqrt(12·N) ≈ 0.002·base; 2% is ~10 standard errors.
    expect(Math.abs(mean(xs) - base / 2)).toBeLessThan(base * 0.02);
    for (const share of quarters(xs, 0, base)) expect(share).toBeCloseTo(0.25, 1);
    // From the second retry on nothing comes sooner than the floor.
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(RETRY_FLOOR);
    expect(Math.min(...xs)).toBeLessThan(RETRY_FLOOR + base * 0.01);
    expect(Math.max(...xs)).toBeGreaterThan(base * 0.99);
  });

  it("'equal' is uniform over [base/2, base] with mean ≈ 3/4·base", () => {
    const base = 800;
    const xs = sample(4, opts('equal'));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(base / 2);
    expect(Math.max(...xs)).toBeLessThanOrEqual(base);
    expect(Math.abs(mean(xs) - (base * 3) / 4)).toBeLessThan(base * 0.02);
    for (const share of quarters(xs, base / 2, base)) expect(share).toBeCloseTo(0.25, 1);
  });

  it("'decorrelated' is uniform over [minDelay, 3·previous] with mean ≈ (minDelay + 3·previous)/2", () => {
    const o = opts('decorrelated');
    const previous = 1000;
    const xs = sample(7, o, previous);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(100);
    expect(Math.max(...xs)).toBeLessThanOrEqual(3000);
    expect(Math.abs(mean(xs) - (100 + 3000) / 2)).toBeLessThan(3000 * 0.02);
    for (const share of quarters(xs, 100, 3000)) expect(share).toBeCloseTo(0.25, 1);
  });

  it("'decorrelated' starts at minDelay and ignores attempt and factor", () => {
    const o = opts('decorrelated');
    expect(backoffDelay(1, o, 0, () => 0.99)).toBe(100);
    expect(backoffDelay(1, o, 500, () => 0.5)).toBe(backoffDelay(40, { ...o, factor: 7 }, 500, () => 0.5));
  });

  it("'decorrelated' is capped at maxDelay, also for a huge or bogus previous delay", () => {
    const o = opts('decorrelated', { maxDelay: 5000 });
    const xs = sample(3, o, 4000);
    expect(Math.max(...xs)).toBe(5000);
    // Upper end 12000 is capped: about (12000-5000)/(12000-100) of the samples sit at the cap.
    expect(xs.filter((x) => x === 5000).length / SAMPLES).toBeCloseTo(7000 / 11_900, 1);
    for (const previous of [Infinity, Number.MAX_VALUE, NaN, -5]) {
      for (const r of [0, 0.5, 0.999]) {
        const d = backoffDelay(3, o, previous, () => r);
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(5000);
      }
    }
  });

  it('caps before the jitter: at attempt 50 full jitter still spreads over [0, maxDelay]', () => {
    const o = opts('full', { maxDelay: 1000 });
    const xs = sample(50, o);
    expect(Math.max(...xs)).toBeLessThanOrEqual(1000);
    expect(xs.filter((x) => x === 1000).length).toBeLessThan(SAMPLES * 0.01);
    expect(Math.abs(mean(xs) - 500)).toBeLessThan(20);
    for (const share of quarters(xs, 0, 1000)) expect(share).toBeCloseTo(0.25, 1);
    const eq = sample(50, opts('equal', { maxDelay: 1000 }));
    expect(Math.min(...eq)).toBeGreaterThanOrEqual(500);
    expect(Math.abs(mean(eq) - 750)).toBeLessThan(20);
  });

  it('stays a finite integer in [0, maxDelay] for every attempt up to 10,000 and every jitter', () => {
    const random = seeded(7);
    for (const jitter of ['none', 'full', 'equal', 'decorrelated'] as const) {
      for (const factor of [1, 1.000001, 1.5, 2, 10, 1e6]) {
        const o = opts(jitter, { factor });
        let previous = 0;
        for (let attempt = 1; attempt <= 10_000; attempt++) {
          const d = backoffDelay(attempt, o, previous, random);
          if (!Number.isInteger(d) || d < 0 || d > o.maxDelay) {
            throw new Error(`${jitter} factor ${factor} attempt ${attempt}: ${d}`);
          }
          previous = d;
        }
      }
    }
    expect(backoffDelay(10_000, opts('none'), 0)).toBe(30_000);
    expect(backoffDelay(1e9, opts('none', { factor: 1e6 }), 0)).toBe(30_000);
  });

  it('reaches the cap at the exact attempt even when the power would overflow just after', () => {
    // 1·2^30 = 1073741824 ≤ cap; 2^31 > cap.
    const o = opts('none', { minDelay: 1, maxDelay: 2 ** 30 + 5 });
    expect(backoffDelay(31, o, 0)).toBe(2 ** 30);
    expect(backoffDelay(32, o, 0)).toBe(2 ** 30 + 5);
  });

  it('factor 1 keeps the base at minDelay forever', () => {
    const o = opts('none', { factor: 1 });
    for (const attempt of [1, 2, 100, 10_000]) expect(backoffDelay(attempt, o, 0)).toBe(100);
    const xs = sample(10_000, opts('full', { factor: 1 }));
    expect(Math.max(...xs)).toBeLessThanOrEqual(100);
    expect(Math.abs(mean(xs) - 50)).toBeLessThan(2);
  });

  it('minDelay 0: the first retry is immediate, later ones grow from the floor and never spin or give NaN', () => {
    for (const jitter of ['none', 'full', 'equal', 'decorrelated'] as const) {
      const o = opts(jitter, { minDelay: 0 });
      expect(backoffDelay(1, o, 0, () => 0.7)).toBe(0);
      for (const attempt of [2, 3, 1075, 10_000]) {
        const d = backoffDelay(attempt, o, 0, () => 0.7);
        expect(d).toBeGreaterThanOrEqual(RETRY_FLOOR);
        expect(d).toBeLessThanOrEqual(o.maxDelay);
      }
    }
    // It grows: no jitter, factor 2, from the floor.
    expect([2, 3, 4].map((a) => backoffDelay(a, opts('none', { minDelay: 0 }), 0))).toEqual([
      RETRY_FLOOR,
      RETRY_FLOOR * 2,
      RETRY_FLOOR * 4,
    ]);
  });

  it('maxDelay 0 retries once at once, then never sooner than the floor', () => {
    for (const jitter of ['none', 'full', 'equal', 'decorrelated'] as const) {
      expect(backoffDelay(1, opts(jitter, { minDelay: 0, maxDelay: 0 }), 0, () => 0.9)).toBe(0);
      expect(backoffDelay(5, opts(jitter, { minDelay: 0, maxDelay: 0 }), 0, () => 0.9)).toBe(RETRY_FLOOR);
    }
  });

  it('rounds to the nearest ms', () => {
    expect(backoffDelay(1, opts('full'), 0, () => 0.004)).toBe(0);
    expect(backoffDelay(1, opts('full'), 0, () => 0.006)).toBe(1);
    expect(backoffDelay(1, opts('none', { minDelay: 3, factor: 1.5 }), 0)).toBe(3);
    expect(backoffDelay(2, opts('none', { minDelay: 13, factor: 1.5 }), 0)).toBe(20); // 19.5
  });

  it('never exceeds the setTimeout limit, whatever maxDelay says', () => {
    const d = backoffDelay(100, opts('none', { maxDelay: Number.MAX_VALUE }), 0);
    expect(d).toBe(2_147_483_647);
  });
});

describe('createBackoff', () => {
  it('counts attempts and grows the delay; reset starts over', () => {
    const b = createBackoff(opts('none'));
    expect(b.attempt).toBe(0);
    expect([b.next(), b.next(), b.next()]).toEqual([100, 200, 400]);
    expect(b.attempt).toBe(3);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(100);
    expect(b.attempt).toBe(1);
  });

  it('feeds each decorrelated delay into the next one', () => {
    const b = createBackoff(opts('decorrelated'), () => 1);
    // random() = 1 takes the top of each range: 100, 300, 900, 2700, … capped at 30000.
    expect(Array.from({ length: 6 }, () => b.next())).toEqual([100, 300, 900, 2700, 8100, 24_300]);
    expect(b.next()).toBe(30_000);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('matches backoffDelay called with the same random stream', () => {
    for (const jitter of ['none', 'full', 'equal', 'decorrelated'] as const) {
      const o = opts(jitter);
      const b = createBackoff(o, seeded(3));
      const random = seeded(3);
      let previous = 0;
      for (let attempt = 1; attempt <= 30; attempt++) {
        previous = backoffDelay(attempt, o, previous, random);
        expect(b.next()).toBe(previous);
      }
    }
  });
});
