// 1. Bulk throughput: 64 KiB writes over loopback into a sink in another process, writing while write() says yes and
// waiting for 'drain' when it says no, until the sink confirms it has every byte. Timed from the first byte written to
// the sink's one-byte answer; connection setup is outside the timing. Higher is better.
import net from 'node:net';
import { once } from 'node:events';
import { connect } from '../src/index.js';
import type { Profile } from './profile.js';
import { judge, ratio, type Section, SUMMARY_HEAD, summaryCells } from './report.js';
import { alternate, summarize } from './stats.js';

const HOST = '127.0.0.1';
const WRITE_SIZE = 64 * 1024;
const MiB = 1024 * 1024;
const GOAL = 0.97;

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

export async function throughput(profile: Profile, sinkPort: number): Promise<Section> {
  const { bytes, warmup, reps } = profile.throughput;
  const total = Math.max(1, Math.round(bytes / WRITE_SIZE)) * WRITE_SIZE;
  // Random bytes, one buffer shared by both sides: same payload, nothing compressible anywhere on the path.
  const payload = Buffer.alloc(WRITE_SIZE);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  const samples = await alternate({ warmup, reps }, {
    raw: () => rawTrial(sinkPort, payload, total),
    resock: () => resockTrial(sinkPort, payload, total),
  });
  const raw = summarize(samples.raw);
  const resock = summarize(samples.resock);
  const r = resock.median / raw.median;
  // Each round's two trials ran back to back: their ratio cancels drift that hits both (CPU frequency, other load).
  const perRound = summarize(samples.resock.map((x, i) => x / samples.raw[i]!));
  return {
    title: 'Bulk throughput, 64 KiB writes',
    method:
      `${total / MiB} MiB per trial in 64 KiB writes, honouring write()'s return value and 'drain', into a sink in a separate ` +
      `process that answers one byte once it has everything; timed from the first write to that byte. ${reps} trials ` +
      `per side after ${warmup} warmup rounds, raw and resock alternating (the first in each round alternates too), a ` +
      'new connection per trial. noDelay on both sides (resock\'s default); resock otherwise with its defaults ' +
      '(keepalive on, offline queue on, no heartbeat, no framing).',
    goals: [
      {
        goal: `1. bulk throughput resock/raw >= ${GOAL}`,
        measured: ratio(r),
        pass: judge(r >= GOAL, profile.name === 'smoke'),
      },
    ],
    table: [
      ['MiB/s', ...SUMMARY_HEAD],
      ['raw net.Socket', ...summaryCells(raw, 0)],
      ['resock', ...summaryCells(resock, 0)],
      ['ratio of medians', ratio(r), '', ''],
      ['ratio within each round', ...summaryCells(perRound, 3).map((c) => `${c.replaceAll(' – ', 'x – ')}x`)],
    ],
    notes: [],
  };
}
