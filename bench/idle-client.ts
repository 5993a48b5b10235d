// Worker of comparison 3: opens N idle connections to a pong server and, once they have settled, samples event-loop
// delay while they sit idle, then measures memory per connection against the baseline taken before the first one was
// opened. Runs with --expose-gc so both memory readings are taken on a collected heap.
//
// Modes: 'raw' (net.Socket, no heartbeat), 'raw-ping' (net.Socket with the heartbeat a service without resock writes
// by hand: a ping from a timer of the socket's own, and a drop after silence) and 'resock' (its heartbeat, with the
// given timing or the default one).
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connect, type ResilientSocket } from '../src/index.js';
import { emit, readConfig, reportCrashes } from './child.js';
import { DIAL_BATCH, PING } from './wire.js';

export interface IdleConfig {
  mode: 'raw' | 'raw-ping' | 'resock';
  connections: number;
  port: number;
  /** Ping timing for 'resock' and 'raw-ping'; 'default' (resock only): what detectWithin's default derives. */
  heartbeat: { interval: number; timeout: number } | 'default';
  /** Time from the last connection opened to the start of sampling. */
  settleMs: number;
  measureMs: number;
  /** Count 'heartbeat' and 'warning' events (a listener each per socket, so off where memory is judged). */
  countEvents: boolean;
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

/** A reading socket with an error listener: what any real client has. Nothing else stays attached once open. */
function openRaw(port: number, onData: (chunk: Buffer) => void = noop): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port, noDelay: true });
    s.on('data', onData);
    s.on('error', noop);
    const onClose = (): void => reject(new Error('raw connection closed while opening'));
    s.once('close', onClose);
    s.once('connect', () => {
      s.off('close', onClose);
      resolve(s);
    });
  });
}

/**
 * The raw socket plus the least a hand-rolled heartbeat does: a ping every interval from a timer of the socket's own,
 * and the socket dropped once nothing has arrived for interval + timeout.
 */
async function openRawPing(port: number, hb: { interval: number; timeout: number }): Promise<net.Socket> {
  let lastData = performance.now();
  const s = await openRaw(port, () => {
    lastData = performance.now();
  });
  const timer = setInterval(() => {
    if (performance.now() - lastData > hb.interval + hb.timeout) {
      failures++;
      s.destroy();
    } else s.write(PING);
  }, hb.interval);
  timer.unref();
  s.once('close', () => clearInterval(timer));
  return s;
}

/** resock with a 'data' and a 'failure' listener, the counterpart of the raw socket's two. */
async function openResock(cfg: IdleConfig): Promise<ResilientSocket> {
  const s = connect({
    host: HOST,
    port: cfg.port,
    heartbeat: cfg.heartbeat === 'default' ? { ping: PING } : { ping: PING, ...cfg.heartbeat },
  });
  s.on('data', noop);
  s.on('failure', onFailure);
  if (cfg.countEvents) {
    s.on('heartbeat', onBeat);
    s.on('warning', onWarning);
  }
  await s.ready();
  return s;
}

function open(cfg: IdleConfig): Promise<unknown> {
  if (cfg.mode === 'raw') return openRaw(cfg.port);
  if (cfg.mode === 'raw-ping') {
    if (cfg.heartbeat === 'default') throw new Error('raw-ping needs an explicit heartbeat timing');
    return openRawPing(cfg.port, cfg.heartbeat);
  }
  return openResock(cfg);
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
  for (let j = i; j < Math.min(cfg.connections, i + DIAL_BATCH); j++) batch.push(open(cfg));
  held.push(...(await Promise.all(batch)));
}
const openMs = performance.now() - t0;

await sleep(cfg.settleMs);
const beatsBefore = beats;
const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
histogram.enable();
await sleep(cfg.measureMs);
histogram.disable();
const beatsInWindow = beats - beatsBefore;

collect();
const after = process.memoryUsage();
// Every resock connection has had a heartbeat reply by now (its rtt is known): memory was read with heartbeats
// running, not before the first one. And every connection of every mode is still open.
const replied = cfg.mode === 'resock' ? held.filter((s) => (s as ResilientSocket).stats().rtt !== undefined).length : undefined;
const stillOpen = held.filter((s) =>
  cfg.mode === 'resock' ? (s as ResilientSocket).state === 'open' : !(s as net.Socket).destroyed,
).length;
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
  beatsPerSec: cfg.countEvents ? beatsInWindow / (cfg.measureMs / 1000) : undefined,
  replied,
  open: stillOpen,
  failures,
  warnings,
});
process.exit(0);
