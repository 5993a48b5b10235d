// 3. Many idle connections: memory per connection and event-loop delay. Each run is a fresh client process
// (bench/idle-client.ts) against a fresh pong server process, so memory is that process's own growth over its
// baseline, and every run has its own server port (no TIME_WAIT left by the last run).
//
// "Idle connections with heartbeats on", raw and resock alike: resock's heartbeat against raw sockets with the least
// a hand-rolled heartbeat does (a ping from a timer per socket, a drop after silence), at the same timing. Memory is
// judged at the timing resock derives by default, with bare raw sockets (no heartbeat) alongside; event-loop delay
// under a 1 s heartbeat on every connection, where memory is reported too.
import { execFileSync } from 'node:child_process';
import { resolveOptions } from '../src/options.js';
import { compileWorker } from './build.js';
import { spawnWorker } from './child.js';
import type { IdleConfig } from './idle-client.js';
import type { Profile } from './profile.js';
import { judge, ratio, type Section, SUMMARY_HEAD, summaryCells } from './report.js';
import { summarize, type Summary } from './stats.js';
import { DIAL_BATCH, PING } from './wire.js';

const MEMORY_GOAL = 1.25;
const DELAY_GOAL_MS = 5;
/** After the last connection opened and its first ping was due: time for every reply to arrive. */
const REPLY_SLACK_MS = 2000;

interface IdleResult {
  connections: number;
  openMs: number;
  heapPerConn: number;
  heapTotalPerConn: number;
  rssPerConn: number;
  externalPerConn: number;
  delayP50: number;
  delayP99: number;
  delayMax: number;
  beatsPerSec: number | undefined;
  replied: number | undefined;
  open: number;
  failures: number;
  warnings: number;
}

type Timing = { interval: number; timeout: number };

/** The most files a child can open: the hard limit, which its shell raises the soft limit to. */
function hardFileLimit(): number {
  const out = execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(out);
}

/** The heartbeat timing resock derives when only `ping` is given. */
function defaultTiming(): Timing {
  const hb = resolveOptions({ host: '127.0.0.1', port: 1, heartbeat: { ping: PING } }).heartbeat;
  if (hb === false) throw new Error('heartbeat did not resolve');
  return { interval: hb.interval, timeout: hb.timeout };
}

async function runOne(client: string, config: Omit<IdleConfig, 'port'>): Promise<IdleResult> {
  const files = config.connections + 200;
  const server = spawnWorker('server.ts', { role: 'pong' }, { files });
  try {
    const { port } = (await server.next('ready', 30_000)) as unknown as { port: number };
    const worker = spawnWorker(client, { ...config, port } satisfies IdleConfig, {
      files,
      nodeArgs: ['--expose-gc'],
      tsx: false,
    });
    try {
      return (await worker.next('result', 120_000 + config.settleMs + config.measureMs)) as unknown as IdleResult;
    } finally {
      await worker.stop();
    }
  } finally {
    await server.stop();
  }
}

/** `reps` runs of each mode, alternating which goes first. */
async function compare(
  client: string,
  reps: number,
  configs: Record<string, Omit<IdleConfig, 'port'>>,
): Promise<Record<string, IdleResult[]>> {
  const names = Object.keys(configs);
  const runs: Record<string, IdleResult[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? names : [...names].reverse();
    for (const name of order) runs[name]!.push(await runOne(client, configs[name]!));
  }
  return runs;
}

/**
 * Every connection still open at the end, and every resock one with a heartbeat reply. The hand-rolled heartbeat may
 * drop healthy connections (its timers fire late behind a burst of pings, and it cannot tell); those are reported.
 */
function check(runs: Record<string, IdleResult[]>, label: string): void {
  for (const [mode, results] of Object.entries(runs)) {
    if (mode === 'raw-ping') continue;
    for (const r of results) {
      if (r.open !== r.connections || (mode === 'resock' && r.replied !== r.connections)) {
        throw new Error(`${label}, ${mode}: ${r.open} of ${r.connections} open, ${r.replied ?? '-'} with a heartbeat reply`);
      }
    }
  }
}

export async function idle(profile: Profile): Promise<Section> {
  const p = profile.idle;
  const limit = hardFileLimit();
  const connections = Math.min(p.connections, limit - 200);
  const smoke = profile.name === 'smoke';
  const client = await compileWorker('idle-client');
  const memTiming = p.memoryHeartbeat === 'default' ? defaultTiming() : p.memoryHeartbeat;
  const stress = p.stressHeartbeat;
  const common = { connections, measureMs: p.measureMs };

  const settleMs = memTiming.interval + REPLY_SLACK_MS;
  const mem = await compare(client, p.reps, {
    raw: { ...common, mode: 'raw', heartbeat: memTiming, settleMs, countEvents: false },
    'raw-ping': { ...common, mode: 'raw-ping', heartbeat: memTiming, settleMs, countEvents: false },
    resock: { ...common, mode: 'resock', heartbeat: p.memoryHeartbeat, settleMs, countEvents: false },
  });
  check(mem, 'memory runs');
  const fast = await compare(client, p.reps, {
    'raw-ping': { ...common, mode: 'raw-ping', heartbeat: stress, settleMs: stress.interval + stress.timeout, countEvents: false },
    resock: { ...common, mode: 'resock', heartbeat: stress, settleMs: stress.interval + stress.timeout, countEvents: true },
  });
  check(fast, 'fast-heartbeat runs');

  const of = (runs: Record<string, IdleResult[]>, mode: string, key: keyof IdleResult): Summary =>
    summarize(runs[mode]!.map((r) => r[key] as number));
  const heap = { bare: of(mem, 'raw', 'heapPerConn'), raw: of(mem, 'raw-ping', 'heapPerConn'), resock: of(mem, 'resock', 'heapPerConn') };
  const rss = { bare: of(mem, 'raw', 'rssPerConn'), raw: of(mem, 'raw-ping', 'rssPerConn'), resock: of(mem, 'resock', 'rssPerConn') };
  const heapRatio = heap.resock.median / heap.raw.median;
  const rssRatio = rss.resock.median / rss.raw.median;
  const fastRatio = (key: 'heapPerConn' | 'rssPerConn'): string =>
    ratio(of(fast, 'resock', key).median / of(fast, 'raw-ping', key).median, 2);
  const overBare = (s: { bare: Summary; resock: Summary }): string =>
    `over a bare socket without heartbeat: +${((s.resock.median - s.bare.median) / 1024).toFixed(2)} KiB, ` +
    ratio(s.resock.median / s.bare.median, 2);
  const delay = of(fast, 'resock', 'delayP99');
  const beats = of(fast, 'resock', 'beatsPerSec');
  const all = [...mem.resock!, ...fast.resock!];
  const failures = all.reduce((n, r) => n + r.failures, 0);
  const warnings = fast.resock!.reduce((n, r) => n + r.warnings, 0);
  const kib = (s: Summary): string => (s.median / 1024).toFixed(2);
  const memLabel =
    p.memoryHeartbeat === 'default'
      ? `heartbeat at resock's default timing (${memTiming.interval / 1000} s)`
      : `heartbeat every ${memTiming.interval} ms`;

  const row = (label: string, s: Summary, digits: number): string[] => [label, ...summaryCells(s, digits)];
  const memRows = (runs: Record<string, IdleResult[]>, mode: string, label: string): string[][] => [
    row(`heap used, ${label} (bytes)`, of(runs, mode, 'heapPerConn'), 0),
    row(`RSS, ${label} (bytes)`, of(runs, mode, 'rssPerConn'), 0),
    row(`V8 heap committed (heapTotal), ${label} (bytes)`, of(runs, mode, 'heapTotalPerConn'), 0),
  ];
  const rawDrops = (runs: Record<string, IdleResult[]>): number => runs['raw-ping']!.reduce((n, r) => n + r.failures, 0);
  const notes = [
    `The hand-rolled heartbeat dropped ${rawDrops(mem)} healthy connections in the memory runs and ${rawDrops(fast)} in ` +
      `the ${stress.interval} ms runs (declared dead after interval + timeout without a reply while the peer was fine: ` +
      "its timers all fire in one burst and replies queue behind it). resock's heartbeat judges a silence only after " +
      'reading pending input and tells its own stalls from the peer\'s, so it dropped none.',
    `With a heartbeat every ${stress.interval} ms on both sides, resock/raw is ${fastRatio('heapPerConn')} in heap and ` +
      `${fastRatio('rssPerConn')} in RSS (table).`,
    `Every resock connection was open and had a heartbeat reply when memory was read (checked in every run); ` +
      `failures ${failures} over all runs, warnings ${warnings} in the fast-heartbeat runs.`,
    `Fast heartbeat: resock heartbeats answered during the sampling window, median ${beats.median.toFixed(0)}/s ` +
      `(expected about ${Math.round((connections * 1000) / stress.interval)}/s).`,
    `Time to open all ${connections} connections (${DIAL_BATCH} dials in flight), memory runs: raw median ` +
      `${of(mem, 'raw', 'openMs').median.toFixed(0)} ms, resock ${of(mem, 'resock', 'openMs').median.toFixed(0)} ms.`,
    'Memory is growth over the process baseline after three forced GCs, divided by the number of connections. RSS ' +
      'also holds native handle memory and the heap pages V8 keeps committed beyond what is used. V8 sizes its young ' +
      'generation by allocation rate: 10,000 pings a second (raw or resock alike: every write and read allocates in ' +
      'Node) grow it to its 32 MiB maximum, a fixed cost of the process that shows here as ~3 KiB "per connection"; at ' +
      'the default timing the rate stays low enough for V8 to keep it small.',
    'The client process runs resock compiled the way `npm run build` compiles it (tsup, no keepNames), not through tsx: ' +
      "tsx's keepNames gives every closure a property dictionary, kilobytes per connection the published package does not have.",
  ];
  if (connections < p.connections) {
    notes.unshift(`Connections reduced from ${p.connections} to ${connections}: the hard open-files limit here is ${limit}.`);
  }
  return {
    title: `${connections} idle connections with heartbeats`,
    method:
      `${connections} connections to a pong server (resock's createHeartbeatServer) in its own process; the client in a ` +
      `fresh process per run (${p.reps} runs per mode, alternating which goes first; compiled like the published build, ` +
      `see the notes). Raw: net.Socket with noDelay, an 'error' listener and a 'data' listener; with a hand-rolled ` +
      `heartbeat, the 'data' listener notes the time and a setInterval per socket writes 'PING\\n' every interval and ` +
      `drops the socket after interval + timeout of silence. resock: default options plus heartbeat 'PING\\n', a ` +
      `'data' and a 'failure' listener. Memory (3a, 3b): bare raw, raw with a hand-rolled heartbeat and resock, both ` +
      `heartbeats every ${memTiming.interval} ms (timeout ${memTiming.timeout} ms), the timing resock derives by ` +
      `default; memory is read once every connection has pinged and had its reply. Event-loop delay (3c): both with a ` +
      `heartbeat every ${stress.interval} ms (timeout ${stress.timeout} ms); ` +
      `after one full heartbeat cycle, delay is sampled for ${p.measureMs} ms with perf_hooks.monitorEventLoopDelay ` +
      '(resolution 1 ms, subtracted from every sample), then memory is read.',
    goals: [
      {
        goal: `3a. heap per connection resock/raw <= ${MEMORY_GOAL}, both with a ${memLabel}`,
        measured: `${ratio(heapRatio, 2)} (${kib(heap.resock)} vs ${kib(heap.raw)} KiB; ${overBare(heap)})`,
        pass: judge(heapRatio <= MEMORY_GOAL, smoke),
      },
      {
        goal: `3b. RSS per connection resock/raw <= ${MEMORY_GOAL}, both with a ${memLabel}`,
        measured: `${ratio(rssRatio, 2)} (${kib(rss.resock)} vs ${kib(rss.raw)} KiB; ${overBare(rss)})`,
        pass: judge(rssRatio <= MEMORY_GOAL, smoke),
      },
      {
        goal: `3c. event-loop delay p99 <= ${DELAY_GOAL_MS} ms while ${connections} heartbeats run every ${stress.interval} ms`,
        measured: `${delay.median.toFixed(2)} ms (median of ${delay.n} runs; highest ${delay.max.toFixed(2)} ms)`,
        pass: judge(delay.median <= DELAY_GOAL_MS, smoke),
      },
    ],
    table: [
      ['per connection / delay', ...SUMMARY_HEAD],
      ...memRows(mem, 'raw', 'bare raw, no heartbeat'),
      ...memRows(mem, 'raw-ping', `raw + hand-rolled heartbeat every ${memTiming.interval} ms`),
      ...memRows(mem, 'resock', `resock, ${memLabel}`),
      ...memRows(fast, 'raw-ping', `raw + hand-rolled heartbeat every ${stress.interval} ms`),
      ...memRows(fast, 'resock', `resock, heartbeat every ${stress.interval} ms`),
      row(`event-loop delay p50, raw + hand-rolled heartbeat every ${stress.interval} ms (ms)`, of(fast, 'raw-ping', 'delayP50'), 2),
      row(`event-loop delay p99, raw + hand-rolled heartbeat every ${stress.interval} ms (ms)`, of(fast, 'raw-ping', 'delayP99'), 2),
      row(`event-loop delay p50, resock, heartbeat every ${stress.interval} ms (ms)`, of(fast, 'resock', 'delayP50'), 2),
      row(`event-loop delay p99, resock, heartbeat every ${stress.interval} ms (ms)`, delay, 2),
      row(`event-loop delay max, resock, heartbeat every ${stress.interval} ms (ms)`, of(fast, 'resock', 'delayMax'), 2),
    ],
    notes,
  };
}
