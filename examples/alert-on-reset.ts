// Alerting on connection trouble: 'reset' pages with the diagnosis, 'disconnect' logs every lost connection, and a
// diagnostics_channel subscriber counts failures by kind, as an APM or metrics module would without holding the socket.
// The server resets a busy connection (a crash), resets after a long silence (what a NAT that forgot the flow does),
// then closes gracefully: two alerts with different diagnoses, three disconnects.
//   npx tsx examples/alert-on-reset.ts
import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type Failure } from 'resock';

// Quiet time after which a reset on the next write is blamed on a middlebox; 30 s by default, short for the demo.
const IDLE_THRESHOLD = 300;

const connections = new Set<net.Socket>();
let resetOnNextData = false;
const server = net.createServer((s) => {
  connections.add(s);
  s.on('close', () => connections.delete(s));
  s.on('error', () => {});
  s.on('data', (chunk) => {
    if (resetOnNextData) {
      resetOnNextData = false;
      s.resetAndDestroy();
    } else {
      s.write(chunk);
    }
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as net.AddressInfo;

const watchdog = setTimeout(() => {
  console.error('✗ timed out');
  process.exit(1);
}, 10_000);

// Metrics, from anywhere in the process: every resock socket publishes on these channels.
const failuresByKind = new Map<string, number>();
const onFailure = (message: unknown): void => {
  const { kind } = message as Failure;
  failuresByKind.set(kind, (failuresByKind.get(kind) ?? 0) + 1);
};
dc.subscribe('resock:failure', onFailure);

const sock = connect({
  host: '127.0.0.1',
  port,
  diagnose: { idleThreshold: IDLE_THRESHOLD },
  // stableAfter: how long a connection must last to count as healthy again. Left at 5 s, resets this close together
  // would be diagnosed as the peer rejecting us ('peer-rejected').
  reconnect: { minDelay: 50, stableAfter: 100 },
});

const alerts: Failure[] = [];
sock.on('reset', (f) => {
  alerts.push(f);
  console.log(`ALERT ${f.kind} (${f.code}): ${f.diagnosis.cause}`);
  console.log(`      ${f.diagnosis.summary}`);
  console.log(`      → ${f.diagnosis.advice}`);
});
const disconnects: Failure[] = [];
sock.on('disconnect', (f) => {
  disconnects.push(f);
  console.log(`log   disconnect: ${f.kind} after ${f.connectionAge} ms open, ${f.idleFor} ms since the last byte in`);
});

const reconnected = (): Promise<void> => new Promise((resolve) => sock.once('connect', () => resolve()));
const echoed = (): Promise<void> => new Promise((resolve) => sock.once('data', () => resolve()));
const stable = (): Promise<void> => sleep(200);

// 1. A crash while traffic flows.
await sock.ready();
await stable();
let echo = echoed();
sock.write('busy\n');
await echo;
let back = reconnected();
for (const s of connections) s.resetAndDestroy();
await back;

// 2. Silence for longer than the idle threshold, then the next write meets a reset.
await sleep(IDLE_THRESHOLD + 200);
back = reconnected();
resetOnNextData = true;
sock.write('after the quiet\n');
await back;

// 3. A graceful close (FIN): a disconnect, not a reset.
await stable();
back = reconnected();
for (const s of connections) s.end();
await back;
echo = echoed();
sock.write('still here\n');
await echo;

clearTimeout(watchdog);
await sock.close();
dc.unsubscribe('resock:failure', onFailure);
await new Promise((resolve) => server.close(resolve));

console.log(`metrics: ${JSON.stringify(Object.fromEntries(failuresByKind))}`);
assert.deepEqual(alerts.map((f) => f.diagnosis.cause), ['peer-crashed', 'intermediary-idle-timeout']);
assert.deepEqual(disconnects.map((f) => f.kind), ['reset', 'reset', 'peer-closed']);
assert.deepEqual(Object.fromEntries(failuresByKind), { reset: 2, 'peer-closed': 1 });
console.log('✓ two alerts, each with its own diagnosis; three disconnects logged; failures counted by kind');
