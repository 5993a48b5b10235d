// A line protocol with PING/PONG heartbeats. The server's handler for our connection hangs: its kernel keeps ACKing,
// so TCP sees nothing wrong, but no PONG comes back. resock fails the connection with 'heartbeat-timeout' within
// interval + timeout, reconnects, and the new connection is answered again.
//   npx tsx examples/line-protocol-heartbeat.ts
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect, lines, type Failure } from 'resock';

const HEARTBEAT = { interval: 400, timeout: 400 };

// The server: PING → PONG, GET <key> → VALUE <key>. hang() stops the handlers of the connections open now, as a
// stuck worker would; new connections get a fresh handler.
const connections = new Set<net.Socket>();
const server = net.createServer((s) => {
  connections.add(s);
  s.on('close', () => connections.delete(s));
  s.on('error', () => {});
  let buf = '';
  s.on('data', (chunk) => {
    buf += chunk.toString('utf8');
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      s.write(line === 'PING' ? 'PONG\n' : `VALUE ${line.replace(/^GET /, '')}\n`);
    }
  });
});
// pause(): the process stops reading; the kernel still accepts and ACKs what arrives.
const hang = (): void => connections.forEach((s) => s.pause());
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as net.AddressInfo;

const watchdog = setTimeout(() => {
  console.error('✗ timed out');
  process.exit(1);
}, 10_000);

const sock = connect({
  host: '127.0.0.1',
  port,
  framing: lines(),
  heartbeat: {
    ping: 'PING', // framed by lines(): 'PING\n' on the wire
    isPong: (line) => line.toString() === 'PONG', // pongs count as life and never reach 'message'
    ...HEARTBEAT, // or leave them out and set detectWithin
  },
  reconnect: { minDelay: 50, maxDelay: 500 },
});

const messages: string[] = [];
sock.on('message', (line) => messages.push(line.toString()));
sock.on('heartbeat', ({ rtt }) => console.log(`  PONG after ${rtt.toFixed(1)} ms`));
const failures: Failure[] = [];
sock.on('failure', (f) => failures.push(f));

/** The next event `name`, as a promise. */
const next = <T>(name: 'connect' | 'heartbeat' | 'failure' | 'message'): Promise<T> =>
  new Promise((resolve) => sock.once(name, resolve as (arg: unknown) => void));

await sock.ready();
sock.write('GET a');
await next('message');
await next('heartbeat'); // the link is quiet for `interval`, so a PING goes out and the PONG comes back

console.log('the server hangs (its kernel still ACKs; nothing answers)');
const hungAt = performance.now();
hang();
const failure = await next<Failure>('failure');
const detectedIn = performance.now() - hungAt;
console.log(`failure: ${failure.kind} after ${Math.round(detectedIn)} ms → ${failure.diagnosis.cause}: ${failure.diagnosis.summary}`);

const { reconnected, downtime } = await next<{ reconnected: boolean; downtime: number }>('connect');
console.log(`reconnected after ${Math.round(downtime)} ms down`);
await next('heartbeat');
sock.write('GET b');
await next('message');

clearTimeout(watchdog);
await sock.close();
connections.forEach((s) => s.destroy());
await new Promise((resolve) => server.close(resolve));

assert.equal(failure.kind, 'heartbeat-timeout');
assert.equal(failure.diagnosis.cause, 'peer-unresponsive');
// A ping goes out at most `interval` after the last PONG and fails `timeout` later; the slack absorbs a loaded machine.
const bound = HEARTBEAT.interval + HEARTBEAT.timeout;
assert.ok(detectedIn < bound * 3, `detected in ${Math.round(detectedIn)} ms, expected about ${bound} ms at most`);
assert.equal(reconnected, true);
assert.deepEqual(messages, ['VALUE a', 'VALUE b']);
assert.deepEqual(failures.map((f) => f.kind), ['heartbeat-timeout']);
console.log(`✓ hung peer found in ${Math.round(detectedIn)} ms (interval + timeout = ${bound} ms, plus timer lateness), then replaced`);
