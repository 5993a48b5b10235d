// The servers the benchmarks talk to, in a process of their own so their work never lands on the measured client.
// Roles (config.role):
// - 'sink-echo': a sink that reads an 8-byte big-endian total, swallows that many bytes and answers one byte; and an
//   echo server. Raw and resock clients of comparisons 1 and 2 talk to these same two listeners.
// - 'pong': resock's own createHeartbeatServer, answering 'PING\n' with 'PONG\n' (comparison 3).
// - 'storm': a server that "restarts" on command and reports when, from that moment, it accepted each connection
//   (comparison 5).
import net from 'node:net';
import { createHeartbeatServer } from '../src/testing/index.js';
import { emit, onCommand, readConfig, reportCrashes } from './child.js';
import { PING, PONG } from './wire.js';

type Config = { role: 'sink-echo' } | { role: 'pong' } | { role: 'storm'; backlog: number };

const noop = (): void => {};

function listen(server: net.Server, port = 0, backlog = 511): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', backlog }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function sinkConnection(socket: net.Socket): void {
  socket.on('error', noop);
  let header = Buffer.alloc(0);
  let expected = -1;
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    if (expected < 0) {
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      expected = Number(header.readBigUInt64BE(0));
      received = header.length - 8;
    } else {
      received += chunk.length;
    }
    if (received >= expected) socket.write('k');
  });
}

function echoConnection(socket: net.Socket): void {
  socket.on('error', noop);
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => socket.write(chunk));
}

async function sinkEcho(): Promise<void> {
  const sink = await listen(net.createServer(sinkConnection));
  const echo = await listen(net.createServer(echoConnection));
  emit('ready', { sink, echo });
  onCommand(noop);
}

async function pong(): Promise<void> {
  const server = await createHeartbeatServer({ ping: PING, pong: PONG });
  emit('ready', { port: server.port });
  onCommand(({ cmd }) => {
    if (cmd === 'connections') emit('connections', { count: server.connections });
  });
}

async function storm(backlog: number): Promise<void> {
  const sockets = new Set<net.Socket>();
  let restartAt = -1;
  let acceptedAt: number[] = [];
  let expect = 0;
  let finish: (() => void) | undefined;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', noop);
    socket.on('close', () => sockets.delete(socket));
    if (restartAt < 0) return;
    acceptedAt.push(performance.now() - restartAt);
    if (acceptedAt.length >= expect) finish?.();
  });
  const port = await listen(server, 0, backlog);
  emit('ready', { port });

  onCommand(async (c) => {
    if (c.cmd === 'connections') {
      emit('connections', { count: sockets.size });
      return;
    }
    if (c.cmd !== 'restart') throw new Error(`unknown command ${c.cmd}`);
    const downMs = c.downMs as number;
    expect = c.expect as number;
    acceptedAt = [];
    // Like a process that dies: the listener goes away and every connection ends at the same instant.
    restartAt = performance.now();
    const restartWall = performance.timeOrigin + restartAt;
    await new Promise<void>((closed) => {
      server.close(() => closed());
      for (const s of sockets) s.destroy();
    });
    const wait = downMs - (performance.now() - restartAt);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const upAt = performance.now() - restartAt;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    // SO_REUSEADDR (libuv's default) lets the port be bound again while old connections sit in TIME_WAIT.
    await listen(server, port, backlog);
    const timer = setTimeout(() => finish?.(), c.timeoutMs as number);
    await done;
    clearTimeout(timer);
    finish = undefined;
    emit('restarted', { acceptedAt: acceptedAt.map((t) => Math.round(t * 10) / 10), upAt, restartWall });
    restartAt = -1;
  });
}

reportCrashes();
const config = readConfig<Config>();
if (config.role === 'sink-echo') await sinkEcho();
else if (config.role === 'pong') await pong();
else await storm(config.backlog);
