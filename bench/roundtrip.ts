// 2. Request/response: 100-byte writes to an echo server in another process, one in flight, the next sent when the
// whole 100-byte reply is back. Higher round trips per second is better.
import net from 'node:net';
import { once } from 'node:events';
import { connect } from '../src/index.js';
import type { Profile } from './profile.js';
import { judge, ratio, type Section, SUMMARY_HEAD, summaryCells } from './report.js';
import { alternate, summarize } from './stats.js';

const HOST = '127.0.0.1';
const SIZE = 100;
const GOAL = 0.93;

async function rawTrial(port: number, payload: Buffer, count: number): Promise<number> {
  const sock = net.connect({ host: HOST, port, noDelay: true });
  await once(sock, 'connect');
  const ms = await new Promise<number>((resolve, reject) => {
    sock.on('error', reject);
    let done = 0;
    let got = 0;
    sock.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got < SIZE) return;
      got -= SIZE;
      if (++done === count) resolve(performance.now() - t0);
      else sock.write(payload);
    });
    const t0 = performance.now();
    sock.write(payload);
  });
  sock.destroy();
  return count / (ms / 1000);
}

async function resockTrial(port: number, payload: Buffer, count: number): Promise<number> {
  const sock = connect({ host: HOST, port });
  await sock.ready();
  const ms = await new Promise<number>((resolve, reject) => {
    sock.on('failure', (f) => reject(new Error(`resock failure during round trips: ${f.kind} ${f.message}`)));
    let done = 0;
    let got = 0;
    sock.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got < SIZE) return;
      got -= SIZE;
      if (++done === count) resolve(performance.now() - t0);
      else sock.write(payload);
    });
    const t0 = performance.now();
    sock.write(payload);
  });
  sock.destroy();
  return count / (ms / 1000);
}

export async function roundtrip(profile: Profile, echoPort: number): Promise<Section> {
  const { count, warmup, reps } = profile.roundtrip;
  const payload = Buffer.alloc(SIZE, 'x');
  const samples = await alternate({ warmup, reps }, {
    raw: () => rawTrial(echoPort, payload, count),
    resock: () => resockTrial(echoPort, payload, count),
  });
  const raw = summarize(samples.raw);
  const resock = summarize(samples.resock);
  const r = resock.median / raw.median;
  // Each round's two trials ran back to back: their ratio cancels drift that hits both (CPU frequency, other load).
  const perRound = summarize(samples.resock.map((x, i) => x / samples.raw[i]!));
  return {
    title: '100-byte request/response, one in flight',
    method:
      `${count} sequential round trips per trial (write 100 bytes, wait for all 100 echoed back, repeat) against an echo ` +
      `server in a separate process. ${reps} trials per side after ${warmup} warmup rounds, alternating, a new ` +
      'connection per trial, noDelay on both sides; resock with its defaults.',
    goals: [
      {
        goal: `2. 100-byte round trips resock/raw >= ${GOAL}`,
        measured: ratio(r),
        pass: judge(r >= GOAL, profile.name === 'smoke'),
      },
    ],
    table: [
      ['round trips/s', ...SUMMARY_HEAD],
      ['raw net.Socket', ...summaryCells(raw, 0)],
      ['resock', ...summaryCells(resock, 0)],
      ['ratio of medians', ratio(r), '', ''],
      ['ratio within each round', ...summaryCells(perRound, 3).map((c) => `${c.replaceAll(' – ', 'x – ')}x`)],
    ],
    notes: [`Median time per round trip: raw ${(1e6 / raw.median).toFixed(1)} µs, resock ${(1e6 / resock.median).toFixed(1)} µs.`],
  };
}
