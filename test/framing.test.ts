import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResockError } from '../src/errors.js';
import { lengthPrefixed, lines } from '../src/framing.js';
import type { FrameDecoder, FramingCodec } from '../src/types.js';

/** Feeds the chunks in order; returns copies of the frames (views into reused chunks would change under us). */
function decodeAll(decoder: FrameDecoder, chunks: readonly Buffer[]): string[] {
  const out: string[] = [];
  for (const chunk of chunks) decoder.push(chunk, (frame) => out.push(frame.toString('latin1')));
  return out;
}

/** Cuts `data` at the given offsets (sorted, deduplicated, within bounds). */
function cut(data: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => Math.min(Math.max(o, 0), data.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const p of [...points, data.length]) {
    if (p > start) chunks.push(data.subarray(start, p));
    start = Math.max(start, p);
  }
  return chunks;
}

function encodeAll(codec: FramingCodec, frames: readonly string[]): Buffer {
  return Buffer.concat(frames.map((f) => codec.encode(Buffer.from(f, 'latin1'))));
}

function catchError(fn: () => unknown): ResockError & { option?: string } {
  try {
    fn();
  } catch (err) {
    return err as ResockError & { option?: string };
  }
  throw new Error('expected a throw');
}

// Frames of arbitrary bytes except '\n' (forbidden by lines) and without a trailing '\r' (which lines strips).
const lineFrame = fc
  .uint8Array({ maxLength: 40 })
  .map((a) => Buffer.from(a.filter((b) => b !== 0x0a)).toString('latin1'))
  .filter((s) => !s.endsWith('\r'));
const anyFrame = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('latin1'));

const codecs: [string, () => FramingCodec, fc.Arbitrary<string>][] = [
  ['lines', () => lines(), lineFrame],
  ['lengthPrefixed 1', () => lengthPrefixed({ bytes: 1 }), anyFrame.filter((s) => s.length <= 255)],
  ['lengthPrefixed 2', () => lengthPrefixed({ bytes: 2 }), anyFrame],
  ['lengthPrefixed 4', () => lengthPrefixed(), anyFrame],
];

describe.each(codecs)('%s round trip', (_name, make, frame) => {
  it('random frames cut at random points come out unchanged', () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, offsets) => {
        const codec = make();
        const wire = encodeAll(codec, frames);
        const decoder = codec.decoder();
        const out: string[] = [];
        let pushed = 0;
        let delivered = 0;
        for (const chunk of cut(wire, offsets.map((o) => o % (wire.length + 1)))) {
          decoder.push(chunk, (f) => {
            out.push(f.toString('latin1'));
            delivered += codec.encode(f).length;
          });
          pushed += chunk.length;
          // buffered is what arrived and has not left in a frame yet.
          expect(decoder.buffered).toBe(pushed - delivered);
        }
        expect(out).toEqual(frames);
        expect(decoder.buffered).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('a multi-frame stream split at every byte boundary, and fed byte by byte', () => {
    const codec = make();
    const frames = ['', 'a', 'hello world', '', 'x'.repeat(200), 'tail'];
    const wire = encodeAll(codec, frames);
    for (let i = 0; i <= wire.length; i++) {
      expect(decodeAll(codec.decoder(), cut(wire, [i]))).toEqual(frames);
      for (let j = i; j <= wire.length; j += 7) {
        expect(decodeAll(codec.decoder(), cut(wire, [i, j]))).toEqual(frames);
      }
    }
    const bytes = Array.from({ length: wire.length }, (_, i) => i);
    expect(decodeAll(codec.decoder(), cut(wire, bytes))).toEqual(frames);
  });

  it('many frames in one chunk, and buffered counts what waits for the rest of a frame', () => {
    const codec = make();
    const frames = Array.from({ length: 100 }, (_, i) => `frame ${i}`);
    const wire = encodeAll(codec, frames);
    const decoder = codec.decoder();
    const partial = wire.subarray(0, wire.length - 3);
    expect(decodeAll(decoder, [partial])).toEqual(frames.slice(0, 99));
    const lastFrameBytes = codec.encode(Buffer.from(frames[99]!)).length;
    expect(decoder.buffered).toBe(lastFrameBytes - 3);
    expect(decodeAll(decoder, [wire.subarray(wire.length - 3)])).toEqual(['frame 99']);
    expect(decoder.buffered).toBe(0);
  });

  it('empty chunks change nothing', () => {
    const codec = make();
    const decoder = codec.decoder();
    const wire = encodeAll(codec, ['ab', 'cd']);
    expect(decodeAll(decoder, [Buffer.alloc(0), wire.subarray(0, 3), Buffer.alloc(0), wire.subarray(3)])).toEqual(['ab', 'cd']);
  });
});

describe('lines', () => {
  it('has its name', () => {
    expect(lines().name).toBe('lines');
  });

  it('splits on \\n and strips one \\r before it, also when \\r and \\n arrive in different chunks', () => {
    const wire = Buffer.from('a\r\nb\n\r\n\nc\r\r\nd\re\n');
    expect(decodeAll(lines().decoder(), [wire])).toEqual(['a', 'b', '', '', 'c\r', 'd\re']);
    const frames = ['a', 'b', '', '', 'c\r', 'd\re'];
    for (let i = 0; i <= wire.length; i++) expect(decodeAll(lines().decoder(), cut(wire, [i]))).toEqual(frames);
    expect(decodeAll(lines().decoder(), cut(wire, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]))).toEqual(frames);
  });

  it('delivers single-chunk frames as views of the chunk and spanning frames as fresh buffers', () => {
    const first = Buffer.from('one\ntw');
    const second = Buffer.from('o\n');
    const seen: Buffer[] = [];
    const decoder = lines().decoder();
    decoder.push(first, (f) => seen.push(f));
    decoder.push(second, (f) => seen.push(f));
    first.fill(0x21);
    second.fill(0x21);
    expect(seen.map((f) => f.toString())).toEqual(['!!!', 'two']);
  });

  it('encode appends \\n', () => {
    expect(lines().encode(Buffer.from('hi')).toString()).toBe('hi\n');
    expect(lines().encode(Buffer.alloc(0)).toString()).toBe('\n');
  });

  it("encode rejects a frame containing '\\n' or ending in '\\r'", () => {
    expect(catchError(() => lines().encode(Buffer.from('a\nb'))).code).toBe('ERR_RESOCK_PROTOCOL');
    expect(catchError(() => lines().encode(Buffer.from('a\r'))).code).toBe('ERR_RESOCK_PROTOCOL');
    expect(lines().encode(Buffer.from('a\rb')).toString()).toBe('a\rb\n');
  });

  it('encode rejects a frame over maxLength', () => {
    const codec = lines({ maxLength: 4 });
    expect(codec.encode(Buffer.from('abcd')).toString()).toBe('abcd\n');
    const err = catchError(() => codec.encode(Buffer.from('abcde')));
    expect(err).toBeInstanceOf(ResockError);
    expect(err.code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
  });

  it('accepts a frame of exactly maxLength, with \\n or \\r\\n, in any chunking', () => {
    for (const wire of ['abcd\n', 'abcd\r\n']) {
      const data = Buffer.from(wire + 'xy\n');
      for (let i = 0; i <= data.length; i++) {
        expect(decodeAll(lines({ maxLength: 4 }).decoder(), cut(data, [i]))).toEqual(['abcd', 'xy']);
      }
    }
  });

  it('rejects a complete frame over maxLength with its length and the limit', () => {
    const err = catchError(() => decodeAll(lines({ maxLength: 4 }).decoder(), [Buffer.from('ok\nabcde\n')]));
    expect(err).toBeInstanceOf(ResockError);
    expect(err.code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    expect(err.message).toContain('5 bytes');
    expect(err.message).toContain('(4 bytes)');
  });

  it('delivers the frames before an oversized one, then throws', () => {
    const seen: string[] = [];
    const decoder = lines({ maxLength: 4 }).decoder();
    expect(() => decoder.push(Buffer.from('a\nb\nabcdefgh\nc\n'), (f) => seen.push(f.toString()))).toThrow(ResockError);
    expect(seen).toEqual(['a', 'b']);
  });

  it('throws as soon as the bytes without a newline exceed maxLength, holding at most maxLength + 1 bytes', () => {
    const maxLength = 1000;
    const decoder = lines({ maxLength }).decoder();
    const chunk = Buffer.alloc(64, 0x61);
    let pushed = 0;
    let err: ResockError | undefined;
    for (let i = 0; i < 100 && err === undefined; i++) {
      try {
        decoder.push(chunk, () => {});
        pushed += chunk.length;
      } catch (e) {
        err = e as ResockError;
      }
      expect(decoder.buffered).toBeLessThanOrEqual(maxLength + 1);
    }
    expect(err?.code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    // The first chunk that carries the frame past the limit is the one that throws.
    expect(pushed).toBeLessThanOrEqual(maxLength);
    expect(pushed + chunk.length).toBeGreaterThan(maxLength);
    expect(err?.message).toContain(`at least ${pushed + chunk.length} bytes`);
  });

  it('throws on one huge chunk without a newline, before keeping it', () => {
    const decoder = lines({ maxLength: 100 }).decoder();
    expect(catchError(() => decoder.push(Buffer.alloc(1_000_000, 0x61), () => {})).code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    expect(decoder.buffered).toBe(0);
  });

  it("allows one byte over maxLength only while it is a '\\r' that may start '\\r\\n'", () => {
    const decoder = lines({ maxLength: 4 }).decoder();
    decoder.push(Buffer.from('abcd\r'), () => {});
    expect(decoder.buffered).toBe(5);
    expect(catchError(() => decoder.push(Buffer.from('x'), () => {})).code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    expect(catchError(() => lines({ maxLength: 4 }).decoder().push(Buffer.from('abcde'), () => {})).code).toBe(
      'ERR_RESOCK_FRAME_TOO_LONG',
    );
    // 'abcd\r' then '\r\n': the frame is 'abcd\r' (5 bytes), too long.
    const d2 = lines({ maxLength: 4 }).decoder();
    d2.push(Buffer.from('abcd\r'), () => {});
    expect(catchError(() => d2.push(Buffer.from('\r\n'), () => {})).code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
  });

  it('is unusable after a throw', () => {
    const decoder = lines({ maxLength: 2 }).decoder();
    decoder.push(Buffer.from('a'), () => {});
    expect(() => decoder.push(Buffer.from('bc\n'), () => {})).toThrow(ResockError);
    expect(decoder.buffered).toBe(0);
    const err = catchError(() => decoder.push(Buffer.from('a\n'), () => {}));
    expect(err.code).toBe('ERR_RESOCK_PROTOCOL');
    expect(err.cause).toBeInstanceOf(ResockError);
  });

  it('is unusable after onFrame throws, which propagates', () => {
    const decoder = lines().decoder();
    const boom = new Error('boom');
    expect(() =>
      decoder.push(Buffer.from('a\nb\n'), () => {
        throw boom;
      }),
    ).toThrow(boom);
    expect(catchError(() => decoder.push(Buffer.from('c\n'), () => {})).cause).toBe(boom);
  });

  it('keeps separate state per decoder', () => {
    const codec = lines();
    const d1 = codec.decoder();
    const d2 = codec.decoder();
    expect(decodeAll(d1, [Buffer.from('ab')])).toEqual([]);
    expect(decodeAll(d2, [Buffer.from('x\n')])).toEqual(['x']);
    expect(decodeAll(d1, [Buffer.from('c\n')])).toEqual(['abc']);
  });
});

describe('lengthPrefixed', () => {
  it('has its name', () => {
    expect(lengthPrefixed().name).toBe('length-prefixed');
  });

  it('writes a big-endian prefix of 1, 2 or 4 bytes', () => {
    expect([...lengthPrefixed({ bytes: 1 }).encode(Buffer.from('ab'))]).toEqual([2, 0x61, 0x62]);
    expect([...lengthPrefixed({ bytes: 2 }).encode(Buffer.alloc(0x0102))].slice(0, 2)).toEqual([1, 2]);
    expect([...lengthPrefixed().encode(Buffer.alloc(0x010203))].slice(0, 4)).toEqual([0, 1, 2, 3]);
    expect([...lengthPrefixed().encode(Buffer.alloc(0))]).toEqual([0, 0, 0, 0]);
  });

  it('carries frames of the largest length the prefix allows', () => {
    for (const [bytes, max] of [
      [1, 255],
      [2, 65_535],
    ] as const) {
      const codec = lengthPrefixed({ bytes, maxLength: max });
      const frame = Buffer.alloc(max, 0x5a);
      const wire = codec.encode(frame);
      expect(wire.length).toBe(bytes + max);
      expect(wire.subarray(0, bytes).every((b) => b === 0xff)).toBe(true);
      const seen: Buffer[] = [];
      const decoder = codec.decoder();
      for (const piece of cut(wire, [1, bytes, bytes + 1, 1000])) decoder.push(piece, (f) => seen.push(Buffer.from(f)));
      expect(seen).toHaveLength(1);
      expect(seen[0]!.equals(frame)).toBe(true);
    }
    const big = lengthPrefixed({ bytes: 4, maxLength: 2 ** 32 - 1 });
    const seen: number[] = [];
    // A 4 GiB frame is too big to build; the decoder must accept its prefix and wait for the payload.
    const decoder = big.decoder();
    decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), (f) => seen.push(f.length));
    expect(seen).toEqual([]);
    expect(decoder.buffered).toBe(7);
  });

  it('defaults maxLength to min(1 MiB, prefix limit)', () => {
    expect(catchError(() => lengthPrefixed().encode(Buffer.alloc(1024 * 1024 + 1))).code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    expect(lengthPrefixed().encode(Buffer.alloc(1024 * 1024)).length).toBe(1024 * 1024 + 4);
    expect(lengthPrefixed({ bytes: 1 }).encode(Buffer.alloc(255)).length).toBe(256);
    expect(catchError(() => lengthPrefixed({ bytes: 1 }).encode(Buffer.alloc(256))).code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    expect(lengthPrefixed({ bytes: 2 }).encode(Buffer.alloc(65_535)).length).toBe(65_537);
    expect(catchError(() => lengthPrefixed({ bytes: 2 }).encode(Buffer.alloc(65_536))).code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
  });

  it('encode rejects a frame over maxLength with its length and the limit', () => {
    const err = catchError(() => lengthPrefixed({ maxLength: 10 }).encode(Buffer.alloc(11)));
    expect(err).toBeInstanceOf(ResockError);
    expect(err.code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    expect(err.message).toContain('11 bytes');
    expect(err.message).toContain('(10 bytes)');
  });

  it('rejects an oversized frame from its prefix alone, before any payload arrives', () => {
    const decoder = lengthPrefixed({ maxLength: 1000 }).decoder();
    const seen: string[] = [];
    const good = lengthPrefixed().encode(Buffer.from('ok'));
    const err = catchError(() => decoder.push(Buffer.concat([good, Buffer.from([0, 0, 0x03, 0xe9])]), (f) => seen.push(f.toString())));
    expect(seen).toEqual(['ok']);
    expect(err.code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
    expect(err.message).toContain('1001 bytes');
    expect(err.message).toContain('(1000 bytes)');
    expect(decoder.buffered).toBe(0);
  });

  it('rejects an oversized prefix that arrives split across chunks', () => {
    const decoder = lengthPrefixed({ bytes: 2, maxLength: 300 }).decoder();
    decoder.push(Buffer.from([0x01]), () => {});
    expect(decoder.buffered).toBe(1);
    expect(catchError(() => decoder.push(Buffer.from([0x2d]), () => {})).code).toBe('ERR_RESOCK_FRAME_TOO_LONG');
  });

  it('never holds more than maxLength bytes while a frame is pending', () => {
    const maxLength = 5000;
    const codec = lengthPrefixed({ maxLength });
    const wire = codec.encode(Buffer.alloc(maxLength, 1));
    const decoder = codec.decoder();
    let frames = 0;
    for (const piece of cut(wire, Array.from({ length: 100 }, (_, i) => i * 53))) {
      decoder.push(piece, () => frames++);
      // A complete frame leaves at once, so at most the prefix and maxLength - 1 payload bytes wait.
      expect(decoder.buffered).toBeLessThanOrEqual(maxLength + 3);
    }
    expect(frames).toBe(1);
  });

  it('delivers single-chunk frames as views of the chunk and spanning frames as copies', () => {
    const codec = lengthPrefixed({ bytes: 1 });
    const wire = Buffer.concat([codec.encode(Buffer.from('one')), codec.encode(Buffer.from('two'))]);
    const first = Buffer.from(wire.subarray(0, 6));
    const second = Buffer.from(wire.subarray(6));
    const seen: Buffer[] = [];
    const decoder = codec.decoder();
    decoder.push(first, (f) => seen.push(f));
    decoder.push(second, (f) => seen.push(f));
    first.fill(0x21);
    second.fill(0x21);
    expect(seen.map((f) => f.toString())).toEqual(['!!!', 'two']);
  });

  it('holds nothing after a throw', () => {
    const decoder = lengthPrefixed({ bytes: 2, maxLength: 5 }).decoder();
    const seen: number[][] = [];
    decoder.push(Buffer.from([0, 2, 7]), (f) => seen.push([...f]));
    expect(decoder.buffered).toBe(3);
    expect(() => decoder.push(Buffer.from([8, 1, 0]), (f) => seen.push([...f]))).toThrow(ResockError);
    expect(seen).toEqual([[7, 8]]);
    expect(decoder.buffered).toBe(0);
  });

  it('rejects input after a throw', () => {
    const decoder = lengthPrefixed({ bytes: 1, maxLength: 2 }).decoder();
    expect(() => decoder.push(Buffer.from([3, 1, 2, 3]), () => {})).toThrow(ResockError);
    expect(catchError(() => decoder.push(Buffer.from([1, 1]), () => {})).code).toBe('ERR_RESOCK_PROTOCOL');
  });
});

describe('option validation', () => {
  it('rejects a bad maxLength naming framing.maxLength and the value', () => {
    for (const make of [(v: unknown) => lines({ maxLength: v as number }), (v: unknown) => lengthPrefixed({ maxLength: v as number })]) {
      for (const [value, kind] of [
        [0, RangeError],
        [-1, RangeError],
        [1.5, RangeError],
        [NaN, RangeError],
        [Infinity, RangeError],
        ['10', TypeError],
        [null, TypeError],
      ] as const) {
        const err = catchError(() => make(value));
        expect(err).toBeInstanceOf(kind);
        expect(err.code).toBe('ERR_RESOCK_INVALID_OPTION');
        expect(err.option).toBe('framing.maxLength');
        expect(err.message).toMatch(/^framing\.maxLength must be an integer >= 1/);
        expect(err.message).toContain(`got ${typeof value === 'string' ? '"10"' : String(value)}`);
      }
    }
    expect(lines({ maxLength: 1 }).name).toBe('lines');
    expect(lines({ maxLength: undefined }).name).toBe('lines');
  });

  it('rejects a maxLength the prefix cannot carry', () => {
    const err = catchError(() => lengthPrefixed({ bytes: 1, maxLength: 256 }));
    expect(err).toBeInstanceOf(RangeError);
    expect(err.option).toBe('framing.maxLength');
    expect(err.message).toContain('<= 255');
    expect(err.message).toContain('got 256');
    expect(catchError(() => lengthPrefixed({ bytes: 2, maxLength: 65_536 })).option).toBe('framing.maxLength');
    expect(catchError(() => lengthPrefixed({ maxLength: 2 ** 32 })).option).toBe('framing.maxLength');
    expect(lengthPrefixed({ bytes: 2, maxLength: 65_535 }).name).toBe('length-prefixed');
  });

  it('rejects a bad bytes naming framing.bytes and the value', () => {
    for (const [value, kind] of [
      [3, RangeError],
      [8, RangeError],
      [0, RangeError],
      ['4', TypeError],
    ] as const) {
      const err = catchError(() => lengthPrefixed({ bytes: value as 4 }));
      expect(err).toBeInstanceOf(kind);
      expect(err.option).toBe('framing.bytes');
      expect(err.message).toBe(`framing.bytes must be 1, 2 or 4, got ${typeof value === 'string' ? '"4"' : value}`);
    }
  });

  it('rejects unknown keys and non-object options', () => {
    const err = catchError(() => lines({ maxLenght: 10 } as never));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.option).toBe('framing.maxLenght');
    expect(err.message).toContain('"framing.maxLenght"');
    expect(catchError(() => lengthPrefixed({ bytes: 2, size: 1 } as never)).option).toBe('framing.size');
    expect(catchError(() => lines({ bytes: 2 } as never)).option).toBe('framing.bytes');
    for (const value of [null, 5, 'x', []]) {
      const e = catchError(() => lines(value as never));
      expect(e).toBeInstanceOf(TypeError);
      expect(e.option).toBe('framing');
    }
  });
});
