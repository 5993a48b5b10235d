// 4. Frame decoding, no sockets: resock's lines() and lengthPrefixed() decoders against the naive decoder most code
// starts with (concatenate the leftover with each chunk, then split), over the same pre-built stream cut into the same
// chunks. Both hand out frames as Buffer views and feed them to the same consumer. Higher MiB/s is better.
import { lengthPrefixed, lines } from '../src/index.js';
import type { FrameDecoder } from '../src/index.js';
import type { Profile } from './profile.js';
import { ratio, type Section, SUMMARY_HEAD, summaryCells } from './report.js';
import { alternate, summarize } from './stats.js';

const MiB = 1024 * 1024;
const LF = 0x0a;
const EMPTY: Buffer = Buffer.alloc(0);
// Frame payloads: 16..240 bytes, a typical size for line protocols and small RPC messages.
const MIN_FRAME = 16;
const MAX_FRAME = 240;

type Push = (chunk: Buffer, onFrame: (frame: Buffer) => void) => void;

function naiveLines(): Push {
  let rest = EMPTY;
  return (chunk, onFrame) => {
    const buf = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
    let start = 0;
    let i = buf.indexOf(LF, start);
    while (i !== -1) {
      onFrame(buf.subarray(start, i));
      start = i + 1;
      i = buf.indexOf(LF, start);
    }
    rest = buf.subarray(start);
  };
}

function naiveLengthPrefixed(): Push {
  let rest = EMPTY;
  return (chunk, onFrame) => {
    const buf = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
    let pos = 0;
    while (buf.length - pos >= 4) {
      const length = buf.readUInt32BE(pos);
      if (buf.length - pos - 4 < length) break;
      onFrame(buf.subarray(pos + 4, pos + 4 + length));
      pos += 4 + length;
    }
    rest = buf.subarray(pos);
  };
}

function resockPush(decoder: FrameDecoder): Push {
  return (chunk, onFrame) => decoder.push(chunk, onFrame);
}

/** A deterministic stream of frames of printable bytes, encoded by `codec`, cut into `chunkSize` pieces. */
interface Stream {
  chunks: Buffer[];
  frames: number;
  payloadBytes: number;
}

function buildStream(encode: (frame: Buffer) => Buffer, bytes: number, chunkSize: number): Stream {
  let seed = 42;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const parts: Buffer[] = [];
  let total = 0;
  let frames = 0;
  let payloadBytes = 0;
  while (total < bytes) {
    const length = MIN_FRAME + Math.floor(rand() * (MAX_FRAME - MIN_FRAME + 1));
    const frame = Buffer.alloc(length);
    for (let i = 0; i < length; i++) frame[i] = 0x21 + Math.floor(rand() * 90);
    const wire = encode(frame);
    parts.push(wire);
    total += wire.length;
    frames++;
    payloadBytes += length;
  }
  const stream = Buffer.concat(parts);
  // Each chunk its own allocation, as a socket delivers them.
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += chunkSize) chunks.push(Buffer.from(stream.subarray(i, i + chunkSize)));
  return { chunks, frames, payloadBytes };
}

function decodeAll(push: Push, { chunks, frames: expectFrames, payloadBytes }: Stream): number {
  let frames = 0;
  let bytes = 0;
  const onFrame = (frame: Buffer): void => {
    frames++;
    bytes += frame.length;
  };
  const t0 = performance.now();
  for (const c of chunks) push(c, onFrame);
  const ms = performance.now() - t0;
  // Also keeps the consumer's work observable, so none of it can be optimised away.
  if (frames !== expectFrames || bytes !== payloadBytes) {
    throw new Error(`decoded ${frames} frames of ${bytes} bytes, expected ${expectFrames} of ${payloadBytes}`);
  }
  let streamBytes = 0;
  for (const c of chunks) streamBytes += c.length;
  return streamBytes / MiB / (ms / 1000);
}

export async function framing(profile: Profile): Promise<Section> {
  const { bytes, warmup, reps } = profile.framing;
  const cases = [
    { name: 'lines', codec: lines(), naive: naiveLines, chunk: 64 * 1024 },
    { name: 'lines', codec: lines(), naive: naiveLines, chunk: 1500 },
    { name: 'lengthPrefixed', codec: lengthPrefixed(), naive: naiveLengthPrefixed, chunk: 64 * 1024 },
    { name: 'lengthPrefixed', codec: lengthPrefixed(), naive: naiveLengthPrefixed, chunk: 1500 },
  ];
  const table: string[][] = [['codec, chunk size', 'decoder', ...SUMMARY_HEAD.map((h) => `MiB/s ${h}`), 'resock/naive']];
  const ratios: string[] = [];
  for (const c of cases) {
    const stream = buildStream((f) => c.codec.encode(f), bytes, c.chunk);
    const samples = await alternate({ warmup, reps }, {
      naive: () => decodeAll(c.naive(), stream),
      resock: () => decodeAll(resockPush(c.codec.decoder()), stream),
    });
    const naive = summarize(samples.naive);
    const resock = summarize(samples.resock);
    const r = resock.median / naive.median;
    const label = `${c.name}, ${c.chunk === 1500 ? '1500 B' : '64 KiB'}`;
    table.push([label, 'naive split', ...summaryCells(naive, 0), '']);
    table.push([label, 'resock', ...summaryCells(resock, 0), ratio(r, 2)]);
    ratios.push(`${label}: ${ratio(r, 2)}`);
  }
  return {
    title: 'Frame decoding (no sockets)',
    method:
      `A ${bytes / MiB} MiB stream of frames with ${MIN_FRAME}–${MAX_FRAME}-byte payloads, cut into 64 KiB chunks (what ` +
      'loopback reads deliver) or 1500-byte chunks (frames often span chunks), decoded by resock and by a naive ' +
      'decoder (Buffer.concat of the leftover and the chunk, then indexOf/readUInt32BE and subarray). Both deliver ' +
      `Buffer views to the same consumer; every pass is checked for the exact frame count. ${reps} passes per decoder ` +
      `after ${warmup} warmup rounds, alternating.`,
    goals: [{ goal: '4. frame decoding resock/naive (no goal set)', measured: ratios.join('; '), pass: undefined }],
    table,
    notes: [
      'resock does more per frame than the naive split: maxLength checks, stripping a \\r before \\n, and gathering a ' +
        'frame that spans chunks as a list of pieces joined once instead of re-concatenating the leftover on every chunk.',
    ],
  };
}
