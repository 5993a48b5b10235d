// Worker of comparison 3: opens N idle connections (raw net.Socket, or resock with heartbeats) to a pong server, then
// samples event-loop delay while they sit idle and measures memory per connection against the baseline taken before
// the first one was opened. Runs with --expose-gc so both measurements are taken on a collected heap.
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connect, type ResilientSocket } from '../src/index.js';
import { emit, readConfig, reportCrashes } from './child.js';
import { DIAL_BATCH, PING } from './wire.js';

export interface IdleConfig {
  mode: 'raw' | 'resock';
  connections: number;
  port: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  measureMs: number;
}

const HOST = '127.0.0.1';
// monitorEventLoopDelay records the time between its timer's ticks, which includes the resolution itself.
const RESOLUTION_MS = 1;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const noop = (): void => {};

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('idle-client needs node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
}

function openRaw(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port, noDelay: true });
    // A reading socket with an error listener: what any real client has, and what resock's connection sets up too.
    s.on('data', noop);
    s.on('error', noop);
    s.once('connect', () => resolve(s));
    s.once('close', () => reject(new Error('raw connection closed while opening')));
  });
}

let beats = 0;
let failures = 0;
let warnings = 0;
const onBeat = (): void => {
  beats++;
};
const onFailure = (): void => {
  failures++;
};
const onWarning = (): void => {
  warnings++;
};

async function openResock(cfg: IdleConfig): Promise<ResilientSocket> {
  const s = connect({
    host: HOST,
    port: cfg.port,
    heartbeat: { ping: PING, interval: cfg.heartbeatInterval, timeout: cfg.heartbeatTimeout },
  });
  s.on('heartbeat', onBeat);
  s.on('failure', onFailure);
  s.on('warning', onWarning);
  await s.ready();
  return s;
}

reportCrashes();
const cfg = readConfig<IdleConfig>();
// Kept reachable until the end so the collector cannot take them before the second reading.
const held: unknown[] = [];
await sleep(200);
collect();
const base = process.memoryUsage();

const t0 = performance.now();
for (let i = 0; i < cfg.connections; i += DIAL_BATCH) {
  const batch: Promise<unknown>[] = [];
  for (let j = i; j < Math.min(cfg.connections, i + DIAL_BATCH); j++) {
    batch.push(cfg.mode === 'raw' ? openRaw(cfg.port) : openResock(cfg));
  }
  held.push(...(await Promise.all(batch)));
}
const openMs = performance.now() - t0;

// One full heartbeat cycle first, so every connection's heartbeat is running when sampling starts.
await sleep(cfg.heartbeatInterval + cfg.heartbeatTimeout);
const beatsBefore = beats;
const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
histogram.enable();
await sleep(cfg.measureMs);
histogram.disable();
const beatsInWindow = beats - beatsBefore;

collect();
const after = process.memoryUsage();
const ms = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);
emit('result', {
  connections: held.length,
  openMs,
  heapPerConn: (after.heapUsed - base.heapUsed) / cfg.connections,
  heapTotalPerConn: (after.heapTotal - base.heapTotal) / cfg.connections,
  rssPerConn: (after.rss - base.rss) / cfg.connections,
  externalPerConn: (after.external - base.external) / cfg.connections,
  delayP50: ms(histogram.percentile(50)),
  delayP99: ms(histogram.percentile(99)),
  delayMax: ms(histogram.max),
  beatsPerSec: beatsInWindow / (cfg.measureMs / 1000),
  failures,
  warnings,
});
process.exit(0);
