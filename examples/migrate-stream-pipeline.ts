// A net.Socket line client built on streams (pipeline, a Transform, for await), moved to resock by changing its
// construction line only: `net.connect(...)` becomes `connect(...).stream()`. The server crashes (resets every
// connection) halfway through; the resock version keeps its pipeline and gets every reply, the net version's pipeline
// dies with the connection.
//   npx tsx examples/migrate-stream-pipeline.ts
import assert from 'node:assert/strict';
import net from 'node:net';
import { Transform, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'resock';

/** The service's stream code, unchanged between the two: upper-cases each line it is sent back, until `count`. */
async function lineService(socket: Duplex, count: number): Promise<string[]> {
  const seen: string[] = [];
  let partial = '';
  const toLines = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      partial += chunk.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const line of parts) this.push(line);
      cb();
    },
    readableObjectMode: true,
  });
  const replies = (async function* (source: AsyncIterable<string>) {
    for await (const line of source) {
      seen.push(line);
      if (seen.length === count) {
        socket.end();
        return;
      }
    }
  })(toLines);
  // A net.Socket's pipeline ends with its connection: the error ends the loop, and what was seen is the result.
  const consume = async (): Promise<void> => {
    for await (const _ of replies) void _;
  };
  await Promise.all([pipeline(socket, toLines).catch(() => {}), consume().catch(() => {})]);
  return seen;
}

// The server: answers each "n" with "N:n"; after the third line it crashes (resets every connection), then serves on.
const crashAfter = 3;
let answered = 0;
const server = net.createServer((s) => {
  s.on('error', () => {});
  let buf = '';
  s.on('data', (d) => {
    buf += String(d);
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      s.write(`N:${line}\n`);
      if (++answered === crashAfter) {
        console.log('  server: crash (reset every connection)');
        // Once the reply is out, and well before the next line comes.
        setTimeout(() => s.resetAndDestroy(), 20);
      }
    }
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const { port } = server.address() as net.AddressInfo;

async function drive(label: string, socket: Duplex): Promise<string[]> {
  const lines = 6;
  const service = lineService(socket, lines);
  for (let i = 1; i <= lines; i++) {
    socket.write(`${i}\n`);
    await sleep(80);
  }
  const seen = await Promise.race([service, sleep(3000).then(() => ['(timed out)'])]);
  console.log(`  ${label}: ${JSON.stringify(seen)}`);
  return seen;
}

// Before: net.connect.
answered = 0;
const before = await drive('net   ', net.connect({ host: '127.0.0.1', port }).on('error', () => {}));
// After: the one line that changed.
answered = 0;
const sock = connect({ host: '127.0.0.1', port, reconnect: { minDelay: 20 } });
const after = await drive('resock', sock.stream());

server.close();
sock.destroy();
assert.ok(before.length < 6, 'the net pipeline ended with the crash');
assert.deepEqual(after.map((l) => l.replace(/^N:/, '')).sort(), ['1', '2', '3', '4', '5', '6']);
console.log('ok: same stream code; resock carried it across the crash');
