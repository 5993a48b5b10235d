// The same line client written twice, on node:net and on resock, run side by side against one server that crashes
// (resets every connection) halfway through. Both must get their reply from before and after the crash.
//   npx tsx examples/migrate-from-net.ts
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, lines } from 'resock';

// ---- node:net: framing, error handling, reconnect and a write buffer are all yours to write ----------------------

function netLineClient(port: number, onLine: (line: string) => void, onLost: () => void) {
  let socket: net.Socket;
  let buffered = '';
  let delay = 100;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const pending: string[] = []; // writes made while disconnected

  const open = (): void => {
    socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000); // resock: tuned from detectWithin, incl. probe count and TCP_USER_TIMEOUT
    socket.on('connect', () => {
      delay = 100;
      for (const line of pending.splice(0)) socket.write(`${line}\n`);
    });
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      for (let i = buffered.indexOf('\n'); i !== -1; i = buffered.indexOf('\n')) {
        onLine(buffered.slice(0, i));
        buffered = buffered.slice(i + 1);
      }
    });
    // Without an 'error' listener a reset crashes the process. resock never emits 'error'.
    socket.on('error', (err: NodeJS.ErrnoException) => console.log(`  net:    error ${err.code}`));
    socket.on('close', () => {
      buffered = '';
      if (closed) return;
      onLost();
      // A fixed doubling with no jitter: every client of a restarted server comes back in lockstep.
      reconnectTimer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 30_000);
    });
  };
  open();

  return {
    send(line: string): void {
      if (socket.readyState === 'open') socket.write(`${line}\n`);
      else pending.push(line);
    },
    close(): Promise<void> {
      closed = true;
      clearTimeout(reconnectTimer);
      return new Promise((resolve) => {
        if (socket.destroyed) resolve();
        else socket.end().once('close', () => resolve());
      });
    },
  };
}

// ---- the server both clients talk to: upper-cases each line ------------------------------------------------------

const serverSockets = new Set<net.Socket>();
const server = net.createServer((s) => {
  serverSockets.add(s);
  s.on('close', () => serverSockets.delete(s));
  s.on('error', () => {});
  let buf = '';
  s.on('data', (chunk) => {
    buf += chunk.toString('utf8');
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      s.write(`${buf.slice(0, i).toUpperCase()}\n`);
      buf = buf.slice(i + 1);
    }
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as net.AddressInfo;

// Fail instead of hanging if a reply never comes.
const watchdog = setTimeout(() => {
  console.error('✗ timed out waiting for the replies');
  process.exit(1);
}, 10_000);
const until = async (done: () => boolean): Promise<void> => {
  while (!done()) await sleep(10);
};

const replies = { net: [] as string[], resock: [] as string[] };
let lost = 0;
const viaNet = netLineClient(port, (line) => replies.net.push(line), () => lost++);

// ---- resock: the same client. The diff, piece by piece:
//   net.connect({ host, port })            → connect({ host, port })
//   'data' + a hand-written line splitter  → framing: lines() and 'message'
//   an 'error' listener, or a crash        → nothing: 'disconnect' / 'failure' carry a classified Failure
//   'close' + setTimeout(open, delay)      → reconnect: { ... } (jittered backoff, on by default)
//   pending[] while disconnected           → the offline queue (bounded, on by default)
//   setNoDelay / setKeepAlive              → on by default (noDelay; keepAlive derived from detectWithin)

const viaResock = connect({
  host: '127.0.0.1',
  port,
  framing: lines(), // 'message' carries whole lines; write() adds the '\n'
  reconnect: { minDelay: 100 }, // jittered exponential backoff, on by default
});
viaResock.on('message', (line) => replies.resock.push(line.toString('utf8')));
viaResock.on('disconnect', (failure) => {
  console.log(`  resock: ${failure.kind} (${failure.code}) → ${failure.diagnosis.cause}`);
  lost++;
});

viaNet.send('hello');
viaResock.write('hello');
await until(() => replies.net.length === 1 && replies.resock.length === 1);
console.log('both clients got their first reply; the server now crashes (RST on every connection)');

for (const s of serverSockets) s.resetAndDestroy();
await until(() => lost === 2);

// Both clients are between connections now: net needs the hand-written buffer above, resock queues by itself.
viaNet.send('again');
viaResock.write('again');
await until(() => replies.net.length === 2 && replies.resock.length === 2);

clearTimeout(watchdog);
await Promise.all([viaNet.close(), viaResock.close()]);
for (const s of serverSockets) s.destroy();
await new Promise((resolve) => server.close(resolve));

console.log(`net:    ${JSON.stringify(replies.net)}`);
console.log(`resock: ${JSON.stringify(replies.resock)}`);
assert.deepEqual(replies.net, ['HELLO', 'AGAIN']);
assert.deepEqual(replies.resock, ['HELLO', 'AGAIN']);
console.log('✓ both clients rode through the crash; on resock that took options, not code');
