// 6. Detection time: how long after a fault resock reports the failure, with liveness derived from detectWithin (the
// default, and a small one). A reset is seen on the next read; a hung peer (a fault proxy that black-holes the path but
// keeps every TCP connection open and ACKed) only by the heartbeat, whose interval and timeout come from detectWithin.
import { connect, DEFAULT_DETECT_WITHIN, type Failure, type ResilientSocket } from '../src/index.js';
import { createFaultProxy, createHeartbeatServer, type FaultProxy } from '../src/testing/index.js';
import type { Profile } from './profile.js';
import { judge, type Section, summaryCells } from './report.js';
import { summarize } from './stats.js';
import { PING, PONG } from './wire.js';

const HOST = '127.0.0.1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Probe {
  ms: number;
  kind: string;
  bound: number;
}

function nextFailure(sock: ResilientSocket, withinMs: number): Promise<Failure> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no failure within ${withinMs} ms`)), withinMs);
    sock.once('failure', (f) => {
      clearTimeout(timer);
      resolve(f);
    });
  });
}

/** One socket behind its own proxy; `fault` is injected once the socket is open and nothing has arrived on it yet. */
async function probe(target: { host: string; port: number }, detectWithin: number | undefined, fault: (p: FaultProxy) => void): Promise<Probe> {
  const proxy = await createFaultProxy({ target });
  // Heartbeat interval and timeout left out: resock derives them from detectWithin.
  const sock = connect({ host: HOST, port: proxy.port, heartbeat: { ping: PING }, ...(detectWithin === undefined ? {} : { detectWithin }) });
  try {
    await sock.ready();
    const hb = sock.options.heartbeat;
    if (hb === false) throw new Error('heartbeat unexpectedly off');
    const bound = hb.interval + hb.timeout;
    const failed = nextFailure(sock, 2 * (detectWithin ?? DEFAULT_DETECT_WITHIN));
    const t0 = performance.now();
    fault(proxy);
    const f = await failed;
    return { ms: performance.now() - t0, kind: f.kind, bound };
  } finally {
    sock.destroy();
    await proxy.close();
  }
}

export async function detect(profile: Profile): Promise<Section> {
  const p = profile.detect;
  const server = await createHeartbeatServer({ ping: PING, pong: PONG });
  const table: string[][] = [['detectWithin', 'fault', 'n', 'median ms', 'min – max ms', 'kind', 'heartbeat H + T', 'detectWithin bound']];
  const goals: Section['goals'] = [];
  try {
    for (const dw of p.detectWithin) {
      const d = dw ?? DEFAULT_DETECT_WITHIN;
      const label = dw === undefined ? `${d} (default)` : String(d);
      const resets: Probe[] = [];
      for (let i = 0; i < p.resets; i++) {
        resets.push(
          await probe(server, dw, (proxy) => proxy.reset()),
        );
        await sleep(5);
      }
      // Concurrently: the default's 24 s wait is paid once for all of them.
      const hung = await Promise.all(Array.from({ length: p.hung }, () => probe(server, dw, (proxy) => proxy.blackhole())));
      const row = (fault: string, probes: Probe[]): void => {
        const s = summarize(probes.map((x) => x.ms));
        const kinds = [...new Set(probes.map((x) => x.kind))].join(', ');
        const [median, range] = summaryCells(s, 1);
        table.push([label, fault, String(s.n), median!, range!, kinds, `${probes[0]!.bound} ms`, `${d} ms`]);
      };
      row('reset (RST from the proxy)', resets);
      row('hung peer (proxy black hole)', hung);
      const worst = Math.max(...resets.map((x) => x.ms), ...hung.map((x) => x.ms));
      const kindsOk = resets.every((x) => x.kind === 'reset') && hung.every((x) => x.kind === 'heartbeat-timeout');
      goals.push({
        goal: `6. detectWithin ${label}: every reset and hung peer reported within it, with the right kind`,
        measured: `slowest ${worst.toFixed(0)} ms${kindsOk ? '' : ' (unexpected failure kind)'}`,
        pass: judge(worst <= d && kindsOk, profile.name === 'smoke'),
      });
    }
  } finally {
    await server.close();
  }
  return {
    title: 'Detection time',
    method:
      "resock with `heartbeat: { ping: 'PING\\n' }` (interval and timeout derived from detectWithin: 0.4·D each) and " +
      'otherwise default options, through its own createFaultProxy to a createHeartbeatServer. The fault is injected as ' +
      'soon as the socket is open, before any byte has arrived: for a hung peer that is the worst case, the full ' +
      `interval + timeout. Measured from the fault call to the 'failure' event. ${p.resets} resets run one after ` +
      `another, ${p.hung} hung peers at once.`,
    goals,
    table,
    notes: [
      'The proxy ACKs everything itself, so keepalive and TCP_USER_TIMEOUT never fire here: the hung-peer numbers are ' +
        'the heartbeat alone, which is what a stopped peer process looks like from the client.',
    ],
  };
}
