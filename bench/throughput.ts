// 1. Bulk throughput: 64 KiB writes over loopback into a sink in another process, writing while write() says yes and
// waiting for 'drain' when it says no, until the sink confirms it has every byte. Timed from the first byte written to
// the sink's one-byte answer; connection setup is outside the timing. Higher is better.
import net from 'node:net';
import { once } from 'node:events';
import { Readable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect } from '../src/index.js';
import type { Profile } from './profile.js';
import { judge, ratio, type Section, SUMMARY_HEAD, summaryCells } from './report.js';
import { alternate, summarize } from './stats.js';

const HOST = '127.0.0.1';
const WRITE_SIZE = 64 * 1024;
const MiB = 1024 * 1024;
const GOAL = 0.97;
const STREAM_GOAL = 0.9;

function header(total: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(total));
  return b;
}

async function rawTrial(port: number, payload: Buffer, total: number): Promise<number> {
  const sock = net.connect({ host: HOST, port, noDelay: true });
  await once(sock, 'connect');
  const ms = await new Promise<number>((resolve, reject) => {
    sock.on('error', reject);
    const t0 = performance.now();
    sock.once('data', () => resolve(performance.now() - t0));
    sock.write(header(total));
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += payload.length;
        if (!sock.write(payload)) {
          sock.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  sock.destroy();
  return total / MiB / (ms / 1000);
}

async function resockTrial(port: number, payload: Buffer, total: number): Promise<number> {
  const sock = connect({ host: HOST, port });
  await sock.ready();
  const ms = await new Promise<number>((resolve, reject) => {
    sock.on('failure', (f) => reject(new Error(`resock failure during throughput: ${f.kind} ${f.message}`)));
    const t0 = performance.now();
    sock.once('data', () => resolve(performance.now() - t0));
    sock.write(header(total));
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += payload.length;
        if (!sock.write(payload)) {
          sock.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  sock.destroy();
  return total / MiB / (ms / 1000);
}

/** The payload as a Readable of 64 KiB chunks, header first: what a service pipes into a socket. */
function source(payload: Buffer, total: number): Readable {
  return Readable.from(
    (function* () {
      yield header(total);
      for (let sent = 0; sent < total; sent += payload.length) yield payload;
    })(),
    { objectMode: false },
  );
}

/** pipeline(source, socket as a stream); timed until the sink's one-byte answer. */
async function streamTrial(stream: Duplex, payload: Buffer, total: number): Promise<number> {
  const t0 = performance.now();
  const answered = new Promise<void>((resolve) => stream.once('data', () => resolve()));
  // The writable side is not ended: that would close the socket before the answer.
  await pipeline(source(payload, total), stream, { end: false });
  await answered;
  return total / MiB / ((performance.now() - t0) / 1000);
}

async function rawStreamTrial(port: number, payload: Buffer, total: number): Promise<number> {
  const sock = net.connect({ host: HOST, port, noDelay: true });
  await once(sock, 'connect');
  const rate = await streamTrial(sock, payload, total);
  sock.destroy();
  return rate;
}

async function resockStreamTrial(port: number, payload: Buffer, total: number): Promise<number> {
  const sock = connect({ host: HOST, port });
  await sock.ready();
  const rate = await streamTrial(sock.stream(), payload, total);
  sock.destroy();
  return rate;
}

export async function throughput(profile: Profile, sinkPort: number): Promise<Section> {
  const { bytes, warmup, reps } = profile.throughput;
  const total = Math.max(1, Math.round(bytes / WRITE_SIZE)) * WRITE_SIZE;
  // Random bytes, one buffer shared by both sides: same payload, nothing compressible anywhere on the path.
  const payload = Buffer.alloc(WRITE_SIZE);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  const samples = await alternate({ warmup, reps }, {
    raw: () => rawTrial(sinkPort, payload, total),
    resock: () => resockTrial(sinkPort, payload, total),
    rawStream: () => rawStreamTrial(sinkPort, payload, total),
    resockStream: () => resockStreamTrial(sinkPort, payload, total),
  });
  const raw = summarize(samples.raw);
  const resock = summarize(samples.resock);
  const r = resock.median / raw.median;
  // Each round's two trials ran back to back: their ratio cancels drift that hits both (CPU frequency, other load).
  const perRound = summarize(samples.resock.map((x, i) => x / samples.raw[i]!));
  const rawStream = summarize(samples.rawStream);
  const resockStream = summarize(samples.resockStream);
  const rs = resockStream.median / rawStream.median;
  const perRoundStream = summarize(samples.resockStream.map((x, i) => x / samples.rawStream[i]!));
  return {
    title: 'Bulk throughput, 64 KiB writes',
    method:
      `${total / MiB} MiB per trial in 64 KiB writes, honouring write()'s return value and 'drain', into a sink in a separate ` +
      `process that answers one byte once it has everything; timed from the first write to that byte. ${reps} trials ` +
      `per side after ${warmup} warmup rounds, raw and resock alternating (the first in each round alternates too), a ` +
      'new connection per trial. noDelay on both sides (resock\'s default); resock otherwise with its defaults ' +
      '(keepalive on, offline queue on, no heartbeat, no framing). The stream rows pipe the same bytes from a Readable ' +
      'with stream.pipeline: into the raw net.Socket, and into resock\'s sock.stream(), in the same rounds.',
    goals: [
      {
        goal: `1. bulk throughput resock/raw >= ${GOAL}`,
        measured: ratio(r),
        pass: judge(r >= GOAL, profile.name === 'smoke'),
      },
      {
        goal: `1b. bulk throughput through streams, resock sock.stream()/raw net.Socket as a stream >= ${STREAM_GOAL}`,
        measured: ratio(rs),
        pass: judge(rs >= STREAM_GOAL, profile.name === 'smoke'),
      },
    ],
    table: [
      ['MiB/s', ...SUMMARY_HEAD],
      ['raw net.Socket', ...summaryCells(raw, 0)],
      ['resock', ...summaryCells(resock, 0)],
      ['ratio of medians', ratio(r), '', ''],
      ['ratio within each round', ...summaryCells(perRound, 3).map((c) => `${c.replaceAll(' – ', 'x – ')}x`)],
      ['raw net.Socket, pipeline()', ...summaryCells(rawStream, 0)],
      ['resock sock.stream(), pipeline()', ...summaryCells(resockStream, 0)],
      ['stream ratio of medians', ratio(rs), '', ''],
      ['stream ratio within each round', ...summaryCells(perRoundStream, 3).map((c) => `${c.replaceAll(' – ', 'x – ')}x`)],
    ],
    notes: [],
  };
}
