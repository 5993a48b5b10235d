// An onConnect handshake: send an auth line, wait for OK, on every new connection before it counts as open (and before
// the offline queue is flushed into it). A rejected token fails the attempt with kind 'handshake'; shouldReconnect
// gives up on it at once, since a wrong token will not fix itself, and the socket closes with reason 'gave-up'.
//   npx tsx examples/handshake.ts
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect, lines, type Failure, type OnConnect } from 'resock';

// The server: the first line must be "AUTH <token>"; then it echoes lines as "ECHO <line>".
const TOKEN = 's3cret';
const connections = new Set<net.Socket>();
const server = net.createServer((s) => {
  connections.add(s);
  s.on('close', () => connections.delete(s));
  s.on('error', () => {});
  let authed = false;
  let buf = '';
  s.on('data', (chunk) => {
    buf += chunk.toString('utf8');
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (authed) s.write(`ECHO ${line}\n`);
      else if (line === `AUTH ${TOKEN}`) {
        authed = true;
        s.write('OK\n');
      } else s.write('ERR invalid token\n');
    }
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as net.AddressInfo;

/**
 * Sends "AUTH <token>" and waits for the reply line. Runs on the raw socket (no framing yet), so it reads the line
 * itself; it removes its listeners whatever happens. connectTimeout bounds it: `signal` aborts when it expires.
 */
function auth(token: string): OnConnect {
  return (socket, signal) =>
    new Promise<void>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const done = (err?: Error): void => {
        socket.off('data', onData);
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onData = (chunk: Buffer): void => {
        buf = Buffer.concat([buf, chunk]);
        const lf = buf.indexOf('\n');
        if (lf === -1) return;
        const reply = buf.subarray(0, lf).toString('utf8');
        // Bytes after the reply belong to the session: give them back to the stream.
        if (lf + 1 < buf.length) socket.unshift(buf.subarray(lf + 1));
        if (reply === 'OK') done();
        // A code resock does not know makes this kind 'handshake' (diagnosis 'peer-rejected').
        else done(Object.assign(new Error(`auth rejected: ${reply}`), { code: 'EAUTH' }));
      };
      const onAbort = (): void => done(signal.reason instanceof Error ? signal.reason : new Error('handshake aborted'));
      socket.on('data', onData);
      signal.addEventListener('abort', onAbort, { once: true });
      socket.write(`AUTH ${token}\n`);
    });
}

const watchdog = setTimeout(() => {
  console.error('✗ timed out');
  process.exit(1);
}, 10_000);

// 1. The right token. The write is made before the connection opens: it waits in the queue until after the handshake.
const good = connect({ host: '127.0.0.1', port, framing: lines(), onConnect: auth(TOKEN), connectTimeout: 2000 });
const reply = new Promise<string>((resolve) => good.once('message', (line) => resolve(line.toString())));
good.write('hello');
console.log(`authenticated, reply: ${await reply}`);
await good.close();

// 2. A wrong token.
const bad = connect({
  host: '127.0.0.1',
  port,
  framing: lines(),
  onConnect: auth('wrong'),
  connectTimeout: 2000,
  reconnect: { shouldReconnect: (f) => f.kind !== 'handshake' },
});
bad.on('failure', (f) => console.log(`failure: ${f.kind} (${f.code}, phase ${f.phase}) → ${f.diagnosis.cause}: ${f.diagnosis.summary}`));
const closed = new Promise<{ reason: string; failure?: Failure }>((resolve) => bad.once('close', resolve));
const readyError = await bad.ready().then(
  () => undefined,
  (err: Error & { code?: string }) => err,
);
const { reason, failure } = await closed;
console.log(`closed: ${reason} (failure ${failure?.kind}); ready() rejected with ${readyError?.code}`);

clearTimeout(watchdog);
for (const s of connections) s.destroy();
await new Promise((resolve) => server.close(resolve));

assert.equal(readyError?.code, 'ERR_RESOCK_CLOSED');
assert.equal(reason, 'gave-up');
assert.equal(failure?.kind, 'handshake');
assert.equal(failure?.phase, 'handshake');
assert.equal(failure?.diagnosis.cause, 'peer-rejected');
assert.equal(bad.stats().attempts, 1);
console.log('✓ the right token opened a session; the wrong one gave up after one attempt');
