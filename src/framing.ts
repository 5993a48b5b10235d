// Frame codecs: newline-delimited and length-prefixed. Decoders find boundaries with Buffer.indexOf / fixed offsets
// rather than byte loops, and hand out frames that lie inside one chunk as subarray views: a frame may share memory
// with the chunk it came in, so a caller that keeps frames for long should copy them (Buffer.from(frame)).
// A frame that spans chunks is gathered as a list of pieces and concatenated once, when its last byte arrives.
import { constants as bufferConstants } from 'node:buffer';
import { ResockError, describeValue, invalidOption } from './errors.js';
import type { FrameDecoder, FramingCodec } from './types.js';

export interface LinesOptions {
  /** Longest frame in bytes, not counting the '\n' or '\r\n' that ends it. Default 1 MiB. */
  maxLength?: number;
  /**
   * What ends a frame on the wire when resock writes one: '\n' (default) or '\r\n' for RESP, SMTP, memcached and
   * other CRLF protocols. Either way the decoder accepts both.
   */
  eol?: '\n' | '\r\n';
}

export interface LengthPrefixedOptions {
  /** Size of the big-endian unsigned length prefix. Default 4. */
  bytes?: 1 | 2 | 4;
  /** Longest payload in bytes. Default min(1 MiB, 2^(8·bytes) - 1). */
  maxLength?: number;
}

// 1 MiB: far above a typical message, low enough that a peer sending garbage cannot make us hold much memory.
const DEFAULT_MAX_LENGTH = 1024 * 1024;
const LF = 0x0a;
const CR = 0x0d;
const NEWLINE = Buffer.from('\n');
const CRLF = Buffer.from('\r\n');

/** Frames separated by '\n'; a '\r' just before the '\n' is stripped, so '\r\n' peers work too. */
export function lines(opts?: LinesOptions): FramingCodec {
  const o = readOptions(opts, ['maxLength', 'eol'], 'lines');
  const maxLength = readMaxLength(o.maxLength, bufferConstants.MAX_LENGTH);
  const eol = o.eol === undefined ? NEWLINE : readEol(o.eol);
  const crlf = eol === CRLF;
  return {
    name: crlf ? 'lines-crlf' : 'lines',
    decoder: () => new LineDecoder(maxLength),
    encode(frame: Buffer): Buffer {
      if (frame.length > maxLength) throw tooLong(frame.length, maxLength, 'frame');
      if (frame.indexOf(LF) !== -1) {
        throw new ResockError('ERR_RESOCK_PROTOCOL', `a lines() frame must not contain '\\n' (found at byte ${frame.indexOf(LF)})`);
      }
      // The decoder strips one '\r' before '\n': ended by '\n' alone, this frame would arrive without its last byte.
      // Ended by '\r\n' it arrives whole.
      if (!crlf && frame.length > 0 && frame[frame.length - 1] === CR) {
        throw new ResockError(
          'ERR_RESOCK_PROTOCOL',
          `a lines() frame must not end with '\\r' (it would be read as part of '\\r\\n'); for CRLF protocols use lines({ eol: '\\r\\n' })`,
        );
      }
      return Buffer.concat([frame, eol], frame.length + eol.length);
    },
  };
}

function readEol(value: unknown): Buffer {
  if (value === '\n') return NEWLINE;
  if (value === '\r\n') return CRLF;
  throw invalidOption('range', 'framing.eol', `framing.eol must be '\\n' or '\\r\\n', got ${describeValue(value)}`);
}

/** Frames preceded by their payload length as a big-endian unsigned integer of `bytes` bytes. */
export function lengthPrefixed(opts?: LengthPrefixedOptions): FramingCodec {
  const o = readOptions(opts, ['bytes', 'maxLength'], 'lengthPrefixed');
  const bytes = readPrefixBytes(o.bytes);
  const prefixMax = 2 ** (8 * bytes) - 1;
  const maxLength = readMaxLength(o.maxLength, Math.min(prefixMax, bufferConstants.MAX_LENGTH), ` (the most a ${bytes}-byte prefix can carry)`);
  return {
    name: 'length-prefixed',
    decoder: () => new LengthPrefixedDecoder(bytes, maxLength),
    encode(frame: Buffer): Buffer {
      if (frame.length > maxLength) throw tooLong(frame.length, maxLength, 'frame');
      const out = Buffer.allocUnsafe(bytes + frame.length);
      out.writeUIntBE(frame.length, 0, bytes);
      frame.copy(out, bytes);
      return out;
    },
  };
}

/** Decoders become unusable after their first throw: the stream position is lost and the connection is dropped. */
abstract class Decoder implements FrameDecoder {
  /** Pieces of the frame in progress, in order; their total is pendingLength. */
  protected pending: Buffer[] = [];
  protected pendingLength = 0;
  #failure: unknown;

  get buffered(): number {
    return this.pendingLength + this.extraBuffered();
  }

  push(chunk: Buffer, onFrame: (frame: Buffer) => void): void {
    if (this.#failure !== undefined) {
      throw new ResockError('ERR_RESOCK_PROTOCOL', 'the frame decoder failed earlier and cannot continue', { cause: this.#failure });
    }
    if (chunk.length === 0) return;
    try {
      this.decode(chunk, onFrame);
    } catch (err) {
      // Also when onFrame threw: the rest of the chunk was not decoded, so later bytes would be misread.
      this.#failure = err ?? new Error('frame decoder failed');
      this.clear();
      throw err;
    }
  }

  protected abstract decode(chunk: Buffer, onFrame: (frame: Buffer) => void): void;

  protected extraBuffered(): number {
    return 0;
  }

  /** Drops what is held: after a failure nothing buffered can become a frame. */
  protected clear(): void {
    this.pending = [];
    this.pendingLength = 0;
  }

  // A view, not a copy: net.Socket hands out a fresh buffer per read (resock sets no reused `onread` buffer).
  protected hold(piece: Buffer): void {
    this.pending.push(piece);
    this.pendingLength += piece.length;
  }

  /** The pending pieces plus `last` as one buffer of `length` bytes (Buffer.concat truncates to it). */
  protected takePending(last: Buffer, length: number): Buffer {
    const pieces = this.pending;
    pieces.push(last);
    this.pending = [];
    this.pendingLength = 0;
    return Buffer.concat(pieces, length);
  }
}

class LineDecoder extends Decoder {
  readonly #maxLength: number;

  constructor(maxLength: number) {
    super();
    this.#maxLength = maxLength;
  }

  protected decode(chunk: Buffer, onFrame: (frame: Buffer) => void): void {
    let start = 0;
    let lf = chunk.indexOf(LF);
    if (this.pendingLength > 0) {
      if (lf === -1) {
        this.#holdRest(chunk, 0);
        return;
      }
      // The '\r' of a '\r\n' split across chunks is the last pending byte.
      const lastByte = lf > 0 ? chunk[lf - 1] : lastPendingByte(this.pending);
      const length = this.pendingLength + lf - (lastByte === CR ? 1 : 0);
      if (length > this.#maxLength) throw tooLong(length, this.#maxLength, 'received frame');
      start = lf + 1;
      onFrame(this.takePending(chunk.subarray(0, lf), length));
      lf = chunk.indexOf(LF, start);
    }
    while (lf !== -1) {
      const end = lf > start && chunk[lf - 1] === CR ? lf - 1 : lf;
      if (end - start > this.#maxLength) throw tooLong(end - start, this.#maxLength, 'received frame');
      const frame = chunk.subarray(start, end);
      start = lf + 1;
      onFrame(frame);
      lf = chunk.indexOf(LF, start);
    }
    if (start < chunk.length) this.#holdRest(chunk, start);
  }

  /** Keeps chunk[start..] as the start of a frame, unless that alone proves the frame too long. */
  #holdRest(chunk: Buffer, start: number): void {
    const total = this.pendingLength + chunk.length - start;
    // One byte of slack only for a '\r' that may turn out to be half of the '\r\n' ending a frame of exactly maxLength.
    if (total > this.#maxLength + 1 || (total === this.#maxLength + 1 && chunk[chunk.length - 1] !== CR)) {
      throw tooLong(total, this.#maxLength, 'received frame', 'at least ');
    }
    this.hold(start === 0 ? chunk : chunk.subarray(start));
  }
}

class LengthPrefixedDecoder extends Decoder {
  readonly #bytes: number;
  readonly #maxLength: number;
  /** Prefix bytes seen so far when the prefix itself spans chunks. */
  readonly #prefix: Buffer;
  #prefixFill = 0;
  /** Payload length of the frame in progress, or -1 while its prefix is being read. */
  #expected = -1;

  constructor(bytes: number, maxLength: number) {
    super();
    this.#bytes = bytes;
    this.#maxLength = maxLength;
    this.#prefix = Buffer.alloc(bytes);
  }

  // A parsed prefix still counts: buffered is what the stream delivered that no frame has carried out yet.
  protected override extraBuffered(): number {
    return this.#expected >= 0 ? this.#bytes : this.#prefixFill;
  }

  protected decode(chunk: Buffer, onFrame: (frame: Buffer) => void): void {
    const bytes = this.#bytes;
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.#expected < 0) {
        let length: number;
        if (this.#prefixFill === 0 && end - pos >= bytes) {
          length = chunk.readUIntBE(pos, bytes);
          pos += bytes;
        } else {
          const take = Math.min(bytes - this.#prefixFill, end - pos);
          chunk.copy(this.#prefix, this.#prefixFill, pos, pos + take);
          this.#prefixFill += take;
          pos += take;
          if (this.#prefixFill < bytes) return;
          this.#prefixFill = 0;
          length = this.#prefix.readUIntBE(0, bytes);
        }
        if (length > this.#maxLength) throw tooLong(length, this.#maxLength, 'received frame (length prefix)');
        this.#expected = length;
      }
      const missing = this.#expected - this.pendingLength;
      if (end - pos < missing) {
        this.hold(chunk.subarray(pos));
        return;
      }
      const piece = chunk.subarray(pos, pos + missing);
      pos += missing;
      const length = this.#expected;
      this.#expected = -1;
      onFrame(this.pendingLength === 0 ? piece : this.takePending(piece, length));
    }
  }
}

function lastPendingByte(pending: readonly Buffer[]): number | undefined {
  const last = pending[pending.length - 1];
  return last === undefined ? undefined : last[last.length - 1];
}

function tooLong(length: number, maxLength: number, what: string, qualifier = ''): ResockError {
  return new ResockError(
    'ERR_RESOCK_FRAME_TOO_LONG',
    `${what} of ${qualifier}${length} bytes exceeds framing.maxLength (${maxLength} bytes)`,
  );
}

function readOptions(value: unknown, known: readonly string[], factory: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidOption('type', 'framing', `framing: ${factory}() options must be an object, got ${describeValue(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw invalidOption('type', `framing.${key}`, `unknown option "framing.${key}"; ${factory}() knows: ${known.join(', ')}`);
    }
  }
  return value as Record<string, unknown>;
}

function readMaxLength(value: unknown, limit: number, why = ''): number {
  if (value === undefined) return Math.min(DEFAULT_MAX_LENGTH, limit);
  const rule = `framing.maxLength must be an integer >= 1 and <= ${limit}${why}, got ${describeValue(value)}`;
  if (typeof value !== 'number') throw invalidOption('type', 'framing.maxLength', rule);
  if (!Number.isInteger(value) || value < 1 || value > limit) throw invalidOption('range', 'framing.maxLength', rule);
  return value;
}

function readPrefixBytes(value: unknown): 1 | 2 | 4 {
  if (value === undefined) return 4;
  const rule = `framing.bytes must be 1, 2 or 4, got ${describeValue(value)}`;
  if (typeof value !== 'number') throw invalidOption('type', 'framing.bytes', rule);
  if (value !== 1 && value !== 2 && value !== 4) throw invalidOption('range', 'framing.bytes', rule);
  return value;
}
