// Summaries of repeated measurements and the alternating runner every side-by-side comparison goes through.

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** First and third quartile (linear interpolation). */
  q1: number;
  q3: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize() needs at least one sample');
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, median: quantile(s, 0.5), min: s[0]!, max: s[s.length - 1]!, q1: quantile(s, 0.25), q3: quantile(s, 0.75) };
}

function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Schedule {
  warmup: number;
  reps: number;
}

/**
 * Runs every variant `warmup + reps` times, interleaved, rotating which goes first in each round so that neither
 * always runs on a warmer (or more fragmented) process. Warmup rounds are discarded.
 */
export async function alternate<K extends string>(
  schedule: Schedule,
  variants: Record<K, () => Promise<number> | number>,
): Promise<Record<K, number[]>> {
  const keys = Object.keys(variants) as K[];
  const out = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < schedule.warmup + schedule.reps; round++) {
    const order = keys.map((_, i) => keys[(i + round) % keys.length]!);
    for (const key of order) {
      const value = await variants[key]();
      if (round >= schedule.warmup) out[key].push(value);
    }
  }
  return out;
}
