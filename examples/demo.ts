// resock demo: a local server broken on purpose, one ResilientSocket riding through, every event printed with its
// classification and diagnosis. Runs in-process on 127.0.0.1 and finishes by itself in about ten seconds.
//   npm run demo
import net from 'node:net';
import { connect, lines, type Failure } from '../src/index.js';
import { createFaultProxy } from '../src/testing/index.js';

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: number, s: string): string => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const dim = (s: string): string => paint(2, s);
const bold = (s: string): string => paint(1, s);
const t0 = performance.now();
const stamp = (): string => dim(`${((performance.now() - t0) / 1000).toFixed(2).padStart(6)}s`);
const say = (s: string): void => console.log(`${stamp()}  ${s}`);
const step = (s: string): void => console.log(`\n${bold(`▶ ${s}`)}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// A line-protocol server: answers PING with PONG, echoes everything else in upper case.
const serverSockets = new Set<net.Socket>();
let server = startServer(0);
function startServer(port: number): net.Server {
  const srv = net.createServer((s) => {
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        s.write(line === 'PING' ? 'PONG\n' : `${line.toUpperCase()}\n`);
      }
    });
  });
  srv.listen(port, '127.0.0.1');
  return srv;
}
await new Promise((r) => server.once('listening', r));
const port = (server.address() as net.AddressInfo).port;
// The client goes through an in-process fault proxy so the demo can also stall the path.
const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port } });

const sock = connect({
  host: '127.0.0.1',
  port: proxy.port,
  framing: lines(),
  heartbeat: { ping: 'PING', interval: 400, timeout: 600, isPong: (f) => f.toString() === 'PONG' },
  reconnect: { minDelay: 100, maxDelay: 1000, stableAfter: 500 },
  offlineQueue: { maxWrites: 3 },
  diagnose: { idleThreshold: 1000 },
});

const tally = new Map<string, number>();
sock.on('connecting', ({ attempt }) => say(dim(`connecting (attempt ${attempt})`)));
sock.on('connect', ({ reconnected, downtime }) =>
  say(paint(32, reconnected ? `reconnected after ${Math.round(downtime)} ms down` : 'connected')),
);
sock.on('failure', (f: Failure) => {
  tally.set(f.kind, (tally.get(f.kind) ?? 0) + 1);
  say(`${paint(31, `failure ${f.kind}`)} ${dim(`(${f.code}, ${f.phase})`)} → ${paint(33, f.diagnosis.cause)}: ${f.diagnosis.summary}`);
  if (f.writes) {
    const w = f.writes;
    say(dim(`  writes: ${w.confirmedBytes} B confirmed by a heartbeat, ${w.unconfirmedBytes} B unconfirmed, ${w.requeuedBytes} B requeued`));
  }
  say(dim(`  advice: ${f.diagnosis.advice}`));
});
sock.on('reconnecting', ({ attempt, delay }) => say(dim(`reconnecting: attempt ${attempt} in ${delay} ms`)));
sock.on('message', (m) => say(`message ${JSON.stringify(m.toString())}`));
sock.on('heartbeat', ({ rtt }) => void rtt);
sock.on('warning', (w) => say(paint(35, `warning ${w.code}: ${w.message}`)));
sock.on('close', ({ reason }) => say(`closed (${reason})`));

await sock.ready();
sock.write('hello');
await sleep(200);

step('1. the peer resets the connection (crash, OOM kill)');
for (const s of serverSockets) s.resetAndDestroy();
await sock.ready().then(() => sleep(700));

step('2. the peer closes gracefully (FIN)');
for (const s of serverSockets) s.end();
await sleep(800);

step('3. the peer restarts: refused while down, writes wait in the offline queue, then back');
server.close();
proxy.refuse();
for (const s of serverSockets) s.destroy();
await sleep(150);
for (const w of ['queued-1', 'queued-2', 'queued-3', 'queued-4']) {
  sock.write(w, (err) => err && say(paint(31, `write ${w} rejected: ${(err as { code?: string }).code}`)));
}
say(`offline queue holds ${sock.stats().queuedWrites} writes`);
await sleep(600);
server = startServer(port);
await proxy.heal();
await sock.ready().then(() => sleep(700));

step('4. without heartbeats, a middlebox forgets the idle flow: reset on the first write after the quiet');
// A second socket with no heartbeat; the server stands in for a NAT that dropped the flow and answers the next segment with RST.
const quiet = connect({ host: '127.0.0.1', port, reconnect: false, diagnose: { idleThreshold: 500 } });
quiet.on('failure', (f) => say(`${paint(31, `failure ${f.kind}`)} ${dim(`(${f.code})`)} → ${paint(33, f.diagnosis.cause)}: ${f.diagnosis.summary}`));
await quiet.ready();
for (const s of serverSockets) if (s.remotePort === quiet.socket?.localPort) s.prependListener('data', () => s.resetAndDestroy());
await sleep(700);
quiet.write('after-the-quiet\n');
await new Promise((r) => quiet.once('close', r));

step('5. the peer hangs: its kernel still ACKs, nothing answers (the path is stalled)');
proxy.blackhole();
await sleep(2000);
proxy.heal();
await sock.ready().then(() => sleep(700));

step('summary');
const stats = sock.stats();
console.log(
  `  connects ${stats.connects}, attempts ${stats.attempts}, rtt ${stats.rtt?.toFixed(1) ?? '-'} ms, ` +
    `failures ${[...tally].map(([k, n]) => `${k}×${n}`).join(', ')}`,
);
await sock.close();
await proxy.close();
for (const s of serverSockets) s.destroy();
server.close();
