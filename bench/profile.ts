// How much each benchmark does. `full` is what BENCHMARKS.md reports (a few minutes on 2 cores); `smoke` runs every code
// path in seconds so CI can tell the benchmark still works, and its numbers mean nothing.

export interface Profile {
  readonly name: 'full' | 'smoke';
  readonly throughput: { readonly bytes: number; readonly warmup: number; readonly reps: number };
  readonly roundtrip: { readonly count: number; readonly warmup: number; readonly reps: number };
  readonly idle: {
    readonly connections: number;
    /** Heartbeat timing where memory is judged: 'default' is what a user gets without setting one. */
    readonly memoryHeartbeat: { readonly interval: number; readonly timeout: number } | 'default';
    /** A fast heartbeat where event-loop delay is judged: every connection pings every interval. */
    readonly stressHeartbeat: { readonly interval: number; readonly timeout: number };
    /** Event-loop delay is sampled for this long once every connection is open and has pinged once. */
    readonly measureMs: number;
    readonly reps: number;
  };
  readonly framing: { readonly bytes: number; readonly warmup: number; readonly reps: number };
  readonly storm: {
    readonly clients: number;
    /** Client processes the crowd is split over. */
    readonly processes: number;
    /** Outages to measure: how long the server stays down before it listens again. */
    readonly downMs: readonly number[];
    readonly minDelay: number;
    readonly maxDelay: number;
    readonly reps: number;
  };
  readonly detect: {
    readonly resets: number;
    /** Hung-peer sockets measured at once, each behind its own fault proxy. */
    readonly hung: number;
    /** undefined: resock's default (DEFAULT_DETECT_WITHIN). */
    readonly detectWithin: readonly (number | undefined)[];
  };
}

const MiB = 1024 * 1024;

export const FULL: Profile = {
  name: 'full',
  throughput: { bytes: 512 * MiB, warmup: 2, reps: 11 },
  roundtrip: { count: 10_000, warmup: 2, reps: 11 },
  idle: {
    connections: 10_000,
    memoryHeartbeat: 'default',
    stressHeartbeat: { interval: 1000, timeout: 1000 },
    measureMs: 5000,
    reps: 3,
  },
  framing: { bytes: 32 * MiB, warmup: 3, reps: 11 },
  // resock's default minDelay, doubling; the 2 s cap brings the last 'full' client back within about 3 s of the restart.
  storm: { clients: 1000, processes: 4, downMs: [500, 1000, 2000, 5000], minDelay: 100, maxDelay: 2000, reps: 3 },
  detect: { resets: 15, hung: 5, detectWithin: [undefined, 3000] },
};

export const SMOKE: Profile = {
  name: 'smoke',
  throughput: { bytes: 4 * MiB, warmup: 1, reps: 2 },
  roundtrip: { count: 200, warmup: 1, reps: 2 },
  idle: {
    connections: 200,
    memoryHeartbeat: { interval: 300, timeout: 500 },
    stressHeartbeat: { interval: 200, timeout: 500 },
    measureMs: 500,
    reps: 1,
  },
  framing: { bytes: 1 * MiB, warmup: 1, reps: 2 },
  storm: { clients: 50, processes: 2, downMs: [200], minDelay: 50, maxDelay: 200, reps: 1 },
  // The smallest detectWithin resock accepts: a hung peer is found in 2.4 s.
  detect: { resets: 2, hung: 1, detectWithin: [3000] },
};
