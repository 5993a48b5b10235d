// 3. Many idle connections: memory per connection and event-loop delay, raw sockets against resock with heartbeats.
// Each side runs in a fresh process (bench/idle-client.ts) against a fresh pong server process, so memory is that
// process's own growth over its baseline, and every run has its own server port (no TIME_WAIT left by the last run).
import { execFileSync } from 'node:child_process';
import { compileWorker } from './build.js';
import { spawnWorker } from './child.js';
import type { IdleConfig } from './idle-client.js';
import type { Profile } from './profile.js';
import { judge, ratio, type Section, SUMMARY_HEAD, summaryCells } from './report.js';
import { summarize, type Summary } from './stats.js';
import { DIAL_BATCH } from './wire.js';

const MEMORY_GOAL = 1.25;
const DELAY_GOAL_MS = 5;

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
  beatsPerSec: number;
  failures: number;
  warnings: number;
}

/** The most files a child can open: the hard limit, which its shell raises the soft limit to. */
function hardFileLimit(): number {
  const out = execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(out);
}

async function runOne(client: string, mode: IdleConfig['mode'], base: Omit<IdleConfig, 'mode' | 'port'>): Promise<IdleResult> {
  const files = base.connections + 200;
  const server = spawnWorker('server.ts', { role: 'pong' }, { files });
  try {
    const { port } = (await server.next('ready', 30_000)) as unknown as { port: number };
    const worker = spawnWorker(client, { ...base, mode, port } satisfies IdleConfig, {
      files,
      nodeArgs: ['--expose-gc'],
      tsx: false,
    });
    try {
      const budget = 120_000 + base.measureMs + 2 * (base.heartbeatInterval + base.heartbeatTimeout);
      return (await worker.next('result', budget)) as unknown as IdleResult;
    } finally {
      await worker.stop();
    }
  } finally {
    await server.stop();
  }
}

export async function idle(profile: Profile): Promise<Section> {
  const p = profile.idle;
  const limit = hardFileLimit();
  const connections = Math.min(p.connections, limit - 200);
  const base = {
    connections,
    heartbeatInterval: p.heartbeatInterval,
    heartbeatTimeout: p.heartbeatTimeout,
    measureMs: p.measureMs,
  };
  const client = await compileWorker('idle-client');
  const runs: Record<IdleConfig['mode'], IdleResult[]> = { raw: [], resock: [] };
  for (let rep = 0; rep < p.reps; rep++) {
    const order: IdleConfig['mode'][] = rep % 2 === 0 ? ['raw', 'resock'] : ['resock', 'raw'];
    for (const mode of order) runs[mode].push(await runOne(client, mode, base));
  }
  const of = (mode: IdleConfig['mode'], key: keyof IdleResult): Summary => summarize(runs[mode].map((r) => r[key]));
  const heapRaw = of('raw', 'heapPerConn');
  const heapResock = of('resock', 'heapPerConn');
  const rssRaw = of('raw', 'rssPerConn');
  const rssResock = of('resock', 'rssPerConn');
  const delay = of('resock', 'delayP99');
  const heapRatio = heapResock.median / heapRaw.median;
  const rssRatio = rssResock.median / rssRaw.median;
  const smoke = profile.name === 'smoke';
  const beats = of('resock', 'beatsPerSec');
  const failures = runs.resock.reduce((n, r) => n + r.failures, 0);
  const warnings = runs.resock.reduce((n, r) => n + r.warnings, 0);

  const row = (label: string, s: Summary, digits: number): string[] => [label, ...summaryCells(s, digits)];
  const notes = [
    `resock heartbeats answered during the sampling window: median ${beats.median.toFixed(0)}/s ` +
      `(expected about ${Math.round((connections * 1000) / p.heartbeatInterval)}/s); failures ${failures}, warnings ${warnings} over all runs.`,
    `Time to open all ${connections} connections (${DIAL_BATCH} dials in flight): raw median ${of('raw', 'openMs').median.toFixed(0)} ms, ` +
      `resock ${of('resock', 'openMs').median.toFixed(0)} ms.`,
    'Raw sockets carry no timer at all; resock adds one heartbeat timer, a reconnect loop, an offline queue and ' +
      'keepalive setsockopt calls per connection. Memory is growth over the process baseline after three forced GCs, ' +
      'divided by the number of connections; RSS also holds native handle memory and the heap pages V8 keeps ' +
      'committed beyond what is used (more of them when the heap churns, as heartbeats make it).',
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
      `fresh process per run (${p.reps} runs per side, alternating which side goes first; the client is compiled like ` +
      `the published build, see the notes). resock: heartbeat ` +
      `'PING\\n' every ${p.heartbeatInterval} ms of silence, timeout ${p.heartbeatTimeout} ms, otherwise defaults. Raw: ` +
      `net.Socket with noDelay, a 'data' and an 'error' listener. After one full heartbeat cycle, event-loop delay is ` +
      `sampled for ${p.measureMs} ms with perf_hooks.monitorEventLoopDelay (resolution 1 ms, subtracted from every ` +
      'sample); then memory is read after forced GCs.',
    goals: [
      {
        goal: `3a. heap per connection resock/raw <= ${MEMORY_GOAL}`,
        measured: `${ratio(heapRatio, 2)} (${(heapResock.median / 1024).toFixed(2)} vs ${(heapRaw.median / 1024).toFixed(2)} KiB)`,
        pass: judge(heapRatio <= MEMORY_GOAL, smoke),
      },
      {
        goal: `3b. RSS per connection resock/raw <= ${MEMORY_GOAL}`,
        measured: `${ratio(rssRatio, 2)} (${(rssResock.median / 1024).toFixed(2)} vs ${(rssRaw.median / 1024).toFixed(2)} KiB)`,
        pass: judge(rssRatio <= MEMORY_GOAL, smoke),
      },
      {
        goal: `3c. event-loop delay p99 <= ${DELAY_GOAL_MS} ms while ${connections} heartbeats run`,
        measured: `${delay.median.toFixed(2)} ms (median of ${delay.n} runs; highest ${delay.max.toFixed(2)} ms)`,
        pass: judge(delay.median <= DELAY_GOAL_MS, smoke),
      },
    ],
    table: [
      ['per connection / delay', ...SUMMARY_HEAD],
      row('heap used, raw (bytes)', heapRaw, 0),
      row('heap used, resock (bytes)', heapResock, 0),
      row('RSS, raw (bytes)', rssRaw, 0),
      row('RSS, resock (bytes)', rssResock, 0),
      row('V8 heap committed (heapTotal), raw (bytes)', of('raw', 'heapTotalPerConn'), 0),
      row('V8 heap committed (heapTotal), resock (bytes)', of('resock', 'heapTotalPerConn'), 0),
      row('external, raw (bytes)', of('raw', 'externalPerConn'), 0),
      row('external, resock (bytes)', of('resock', 'externalPerConn'), 0),
      row('event-loop delay p50, raw (ms)', of('raw', 'delayP50'), 2),
      row('event-loop delay p99, raw (ms)', of('raw', 'delayP99'), 2),
      row('event-loop delay p50, resock (ms)', of('resock', 'delayP50'), 2),
      row('event-loop delay p99, resock (ms)', delay, 2),
      row('event-loop delay max, resock (ms)', of('resock', 'delayMax'), 2),
    ],
    notes,
  };
}
