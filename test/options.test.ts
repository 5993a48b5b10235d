import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResockError } from '../src/errors.js';
import { lengthPrefixed, lines } from '../src/framing.js';
import { DEFAULT_DETECT_WITHIN, resolveOptions } from '../src/options.js';
import type { FrameDecoder, FramingCodec, ResilientSocketOptions, ResolvedOptions } from '../src/types.js';

type Kind = typeof TypeError | typeof RangeError;

/** Resolves options a test writes on purpose with the wrong types. */
function resolve(options: unknown): ResolvedOptions {
  return resolveOptions(options as ResilientSocketOptions);
}

function errorOf(fn: () => unknown): Error & { code?: unknown; option?: unknown } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: unknown; option?: unknown };
  }
  throw new Error('expected a throw, none happened');
}

/** Asserts an ERR_RESOCK_INVALID_OPTION of `kind` about `option` whose message names the option and holds `fragments`. */
function expectInvalid(options: unknown, kind: Kind, option: string, ...fragments: string[]): void {
  const err = errorOf(() => resolve(options));
  expect(err).toBeInstanceOf(kind);
  // A RangeError is not a TypeError and vice versa: the kind is meaningful.
  expect(err).not.toBeInstanceOf(kind === TypeError ? RangeError : TypeError);
  expect(err.code).toBe('ERR_RESOCK_INVALID_OPTION');
  expect(err.option).toBe(option);
  expect(err.message).toContain(option);
  for (const fragment of fragments) expect(err.message).toContain(fragment);
}

const codec: FramingCodec = {
  name: 'test',
  decoder: (): FrameDecoder => ({ push: () => undefined, buffered: 0 }),
  encode: (frame) => frame,
};

describe('resolveOptions: the input object', () => {
  it.each([
    ['null', null, 'null'],
    ['a string', 'localhost:80', '"localhost:80"'],
    ['an array', [], 'an array'],
    ['a Map', new Map([['port', 80]]), 'an object'],
    ['undefined', undefined, 'undefined'],
  ])('rejects %s', (_, input, shown) => {
    expectInvalid(input, TypeError, 'options', 'must be a plain object', `got ${shown}`);
  });

  it('rejects a class instance', () => {
    class Options {
      port = 80;
    }
    expectInvalid(new Options(), TypeError, 'options', 'plain object');
  });

  it('accepts an object without prototype', () => {
    const input = Object.assign(Object.create(null) as object, { port: 80 });
    expect(resolve(input).endpoints).toEqual([{ host: 'localhost', port: 80 }]);
  });

  it('names an unknown option and suggests the nearest known one', () => {
    const err = errorOf(() => resolve({ port: 80, reconect: false }));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe('unknown option "reconect" (did you mean "reconnect"?)');
  });

  it('suggests across case and transpositions', () => {
    expectInvalid({ port: 80, keepalive: false }, TypeError, 'keepalive', '(did you mean "keepAlive"?)');
    expectInvalid({ port: 80, conectTimeuot: 5 }, TypeError, 'conectTimeuot', '(did you mean "connectTimeout"?)');
  });

  it('lists the known options when nothing is close', () => {
    expectInvalid({ port: 80, zzzzzzzz: 1 }, TypeError, 'zzzzzzzz', 'known options: host, port, path, endpoints');
  });

  it('treats an option set to undefined as absent', () => {
    const r = resolve({ port: 80, host: undefined, reconnect: undefined, heartbeat: undefined, connectTimeout: undefined });
    expect(r.endpoints).toEqual([{ host: 'localhost', port: 80 }]);
    expect(r.connectTimeout).toBe(10_000);
    expect(r.reconnect).not.toBe(false);
  });

  it('does not change the input', () => {
    const input = { port: 80, reconnect: { minDelay: 5 }, keepAlive: { idle: 2000 } };
    const copy = structuredClone(input);
    resolve(input);
    expect(input).toEqual(copy);
  });
});

describe('resolveOptions: where to connect', () => {
  it('takes host and port', () => {
    expect(resolve({ host: 'example.com', port: 443 }).endpoints).toEqual([{ host: 'example.com', port: 443 }]);
  });

  it('takes a port alone as localhost, like net.connect', () => {
    expect(resolve({ port: 8080 }).endpoints).toEqual([{ host: 'localhost', port: 8080 }]);
  });

  it('takes a path', () => {
    expect(resolve({ path: '/tmp/x.sock' }).endpoints).toEqual([{ path: '/tmp/x.sock' }]);
  });

  it('takes a list of endpoints', () => {
    const r = resolve({ endpoints: [{ host: 'a', port: 1 }, { path: '/p' }, { port: 2 }] });
    expect(r.endpoints).toEqual([{ host: 'a', port: 1 }, { path: '/p' }, { host: 'localhost', port: 2 }]);
  });

  it('requires one of them', () => {
    expectInvalid({}, TypeError, 'port', 'port', 'path', 'endpoints', 'got none');
  });

  it('requires a port with a host', () => {
    expectInvalid({ host: 'a' }, TypeError, 'port', 'port is required with host, got undefined');
  });

  it.each([
    [70_000, RangeError, '70000'],
    [0, RangeError, '0'],
    [-1, RangeError, '-1'],
    [80.5, RangeError, '80.5'],
    [Number.NaN, RangeError, 'NaN'],
    ['80', TypeError, '"80"'],
  ] as const)('rejects port %s', (port, kind, shown) => {
    expectInvalid({ port }, kind, 'port', 'port must be an integer in 1..65535', `got ${shown}`);
  });

  it('rejects a bad host', () => {
    expectInvalid({ host: '', port: 1 }, RangeError, 'host', 'non-empty string', 'got ""');
    expectInvalid({ host: 5, port: 1 }, TypeError, 'host', 'non-empty string', 'got 5');
  });

  it('rejects a bad path', () => {
    expectInvalid({ path: '' }, RangeError, 'path', 'got ""');
    expectInvalid({ path: 7 }, TypeError, 'path', 'got 7');
  });

  it('rejects path together with port or host', () => {
    expectInvalid({ path: '/p', port: 80 }, TypeError, 'port', 'path cannot be combined with port, got port 80');
    expectInvalid({ path: '/p', host: 'h' }, TypeError, 'host', 'path cannot be combined with host, got host "h"');
  });

  it('rejects endpoints together with host, port or path', () => {
    expectInvalid({ endpoints: [{ port: 1 }], port: 2 }, TypeError, 'port', 'cannot be combined with endpoints', 'got port 2');
    expectInvalid({ endpoints: [{ port: 1 }], host: 'h' }, TypeError, 'host', 'got host "h"');
    expectInvalid({ endpoints: [{ port: 1 }], path: '/p' }, TypeError, 'path', 'got path "/p"');
  });

  it('rejects endpoints that are not a non-empty array', () => {
    expectInvalid({ endpoints: { port: 1 } }, TypeError, 'endpoints', 'must be an array', 'got an object');
    expectInvalid({ endpoints: [] }, RangeError, 'endpoints', 'at least one endpoint', 'got an empty array');
  });

  it('validates each endpoint under its index', () => {
    expectInvalid({ endpoints: [{ port: 1 }, { port: 70_000 }] }, RangeError, 'endpoints[1].port', 'got 70000');
    expectInvalid({ endpoints: [{ port: 1 }, 'h:1'] }, TypeError, 'endpoints[1]', 'got "h:1"');
    expectInvalid({ endpoints: [{}] }, TypeError, 'endpoints[0]', 'got an empty object');
    expectInvalid({ endpoints: [{ port: 1 }, , { port: 2 }] }, TypeError, 'endpoints[1]', 'got undefined');
    expectInvalid({ endpoints: [{ path: '/p', port: 1 }] }, TypeError, 'endpoints[0].port', 'endpoints[0].path cannot be combined');
    expectInvalid({ endpoints: [{ host: 'h', prot: 1 }] }, TypeError, 'endpoints[0].prot', '(did you mean "endpoints[0].port"?)');
  });

  it('copies and freezes the endpoints', () => {
    const list = [{ host: 'a', port: 1 }];
    const r = resolve({ endpoints: list });
    expect(r.endpoints).not.toBe(list);
    expect(r.endpoints[0]).not.toBe(list[0]);
    expect(Object.isFrozen(r.endpoints)).toBe(true);
    expect(Object.isFrozen(r.endpoints[0])).toBe(true);
  });
});

describe('resolveOptions: tls, connectTimeout, noDelay, onConnect, signal', () => {
  it('resolves tls forms', () => {
    expect(resolve({ port: 1 }).tls).toBeUndefined();
    expect(resolve({ port: 1, tls: false }).tls).toBeUndefined();
    expect(resolve({ port: 1, tls: true }).tls).toEqual({});
    const given = { servername: 'x', rejectUnauthorized: false };
    const tls = resolve({ port: 1, tls: given }).tls;
    expect(tls).toEqual({ servername: 'x', rejectUnauthorized: false });
    expect(tls).not.toBe(given);
    expect(Object.isFrozen(tls)).toBe(true);
    expect(Object.isFrozen(given)).toBe(false);
  });

  it('rejects bad tls values', () => {
    expectInvalid({ port: 1, tls: 'yes' }, TypeError, 'tls', 'got "yes"');
    expectInvalid({ port: 1, tls: null }, TypeError, 'tls', 'got null');
    expectInvalid({ port: 1, tls: { port: 2 } }, TypeError, 'tls.port', 'not allowed', 'got tls.port 2');
    expectInvalid({ port: 1, tls: { socket: {} } }, TypeError, 'tls.socket', 'not allowed');
  });

  it('defaults connectTimeout to 10 s and checks it', () => {
    expect(resolve({ port: 1 }).connectTimeout).toBe(10_000);
    expect(resolve({ port: 1, connectTimeout: 1 }).connectTimeout).toBe(1);
    expectInvalid({ port: 1, connectTimeout: 0 }, RangeError, 'connectTimeout', 'integer in 1..2147483647', 'got 0');
    expectInvalid({ port: 1, connectTimeout: 1.5 }, RangeError, 'connectTimeout', 'got 1.5');
    expectInvalid({ port: 1, connectTimeout: Infinity }, RangeError, 'connectTimeout', 'got Infinity');
    expectInvalid({ port: 1, connectTimeout: 2 ** 31 }, RangeError, 'connectTimeout', 'got 2147483648');
    expectInvalid({ port: 1, connectTimeout: '10' }, TypeError, 'connectTimeout', 'got "10"');
  });

  it('defaults noDelay to true and checks it', () => {
    expect(resolve({ port: 1 }).noDelay).toBe(true);
    expect(resolve({ port: 1, noDelay: false }).noDelay).toBe(false);
    expectInvalid({ port: 1, noDelay: 'no' }, TypeError, 'noDelay', 'must be a boolean', 'got "no"');
  });

  it('checks onConnect', () => {
    const onConnect = (): void => undefined;
    expect(resolve({ port: 1, onConnect }).onConnect).toBe(onConnect);
    expect(resolve({ port: 1 }).onConnect).toBeUndefined();
    expectInvalid({ port: 1, onConnect: 5 }, TypeError, 'onConnect', 'must be a function', 'got 5');
  });

  it('checks signal', () => {
    const { signal } = new AbortController();
    expect(resolve({ port: 1, signal }).signal).toBe(signal);
    expectInvalid({ port: 1, signal: { aborted: false } }, TypeError, 'signal', 'AbortSignal', 'got an object');
  });
});

describe('resolveOptions: reconnect', () => {
  it('has documented defaults', () => {
    expect(resolve({ port: 1 }).reconnect).toEqual({
      retries: Infinity,
      minDelay: 100,
      maxDelay: 30_000,
      factor: 2,
      jitter: 'full',
      maxElapsed: Infinity,
      stableAfter: 5000,
      shouldReconnect: undefined,
    });
  });

  it('can be turned off', () => {
    expect(resolve({ port: 1, reconnect: false }).reconnect).toBe(false);
  });

  it('keeps given values', () => {
    const shouldReconnect = (): boolean => true;
    const r = resolve({
      port: 1,
      reconnect: { retries: 0, minDelay: 0, maxDelay: 0, factor: 1.5, jitter: 'decorrelated', maxElapsed: 1, stableAfter: 0, shouldReconnect },
    }).reconnect;
    expect(r).toEqual({ retries: 0, minDelay: 0, maxDelay: 0, factor: 1.5, jitter: 'decorrelated', maxElapsed: 1, stableAfter: 0, shouldReconnect });
  });

  it('lifts the default maxDelay to a larger minDelay', () => {
    const r = resolve({ port: 1, reconnect: { minDelay: 60_000 } }).reconnect;
    expect(r && r.maxDelay).toBe(60_000);
  });

  it('requires maxDelay >= minDelay', () => {
    const err = errorOf(() => resolve({ port: 1, reconnect: { maxDelay: 50 } }));
    expect(err).toBeInstanceOf(RangeError);
    expect(err.code).toBe('ERR_RESOCK_INVALID_OPTION');
    expect(err.message).toBe('reconnect.maxDelay must be >= reconnect.minDelay (100), got 50');
  });

  it.each([
    ['retries', -1, RangeError, 'integer >= 0 or Infinity'],
    ['retries', 1.5, RangeError, 'integer >= 0 or Infinity'],
    ['retries', '3', TypeError, 'integer >= 0 or Infinity'],
    ['minDelay', -1, RangeError, 'integer in 0..2147483647'],
    ['maxDelay', 2 ** 31, RangeError, 'integer in 0..2147483647'],
    ['factor', 0.5, RangeError, 'finite number >= 1'],
    ['factor', Infinity, RangeError, 'finite number >= 1'],
    ['jitter', 'ful', RangeError, 'one of "full", "equal", "decorrelated", "none"'],
    ['jitter', 5, TypeError, 'one of "full"'],
    ['maxElapsed', 0, RangeError, 'integer >= 1 or Infinity'],
    ['stableAfter', -5, RangeError, 'integer in 0..2147483647'],
    ['shouldReconnect', true, TypeError, 'must be a function'],
  ] as const)('rejects %s = %s', (key, value, kind, rule) => {
    const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
    expectInvalid({ port: 1, reconnect: { [key]: value } }, kind, `reconnect.${key}`, rule, `got ${shown}`);
  });

  it('accepts Infinity retries and maxElapsed', () => {
    const r = resolve({ port: 1, reconnect: { retries: Infinity, maxElapsed: Infinity } }).reconnect;
    expect(r && [r.retries, r.maxElapsed]).toEqual([Infinity, Infinity]);
  });

  it('rejects anything but false or an object', () => {
    expectInvalid({ port: 1, reconnect: true }, TypeError, 'reconnect', 'false or an object', 'got true');
    expectInvalid({ port: 1, reconnect: [] }, TypeError, 'reconnect', 'got an array');
  });

  it('rejects unknown keys with a suggestion', () => {
    expectInvalid({ port: 1, reconnect: { maxDelays: 5 } }, TypeError, 'reconnect.maxDelays', '(did you mean "reconnect.maxDelay"?)');
  });
});

describe('resolveOptions: offlineQueue and diagnose', () => {
  it('has documented defaults', () => {
    const r = resolve({ port: 1 });
    expect(r.offlineQueue).toEqual({ maxBytes: 4 * 1024 * 1024, maxWrites: 32_768, maxAge: Infinity, overflow: 'reject' });
    expect(r.diagnose).toEqual({ idleThreshold: 30_000 });
  });

  it('keeps given values and can be turned off', () => {
    const q = { maxBytes: 0, maxWrites: 10, maxAge: 5, overflow: 'drop-oldest' } as const;
    expect(resolve({ port: 1, offlineQueue: q }).offlineQueue).toEqual(q);
    expect(resolve({ port: 1, offlineQueue: false }).offlineQueue).toBe(false);
    expect(resolve({ port: 1, diagnose: { idleThreshold: 1 } }).diagnose).toEqual({ idleThreshold: 1 });
  });

  it.each([
    ['maxBytes', -1, RangeError, 'integer >= 0'],
    ['maxBytes', 1.5, RangeError, 'integer >= 0'],
    ['maxBytes', Infinity, RangeError, 'integer >= 0'],
    ['maxWrites', -1, RangeError, 'integer >= 0 or Infinity'],
    ['maxAge', 0, RangeError, 'integer in 1..2147483647 or Infinity'],
    ['maxAge', 2 ** 31, RangeError, 'integer in 1..2147483647 or Infinity'],
    ['overflow', 'drop-newest', RangeError, 'one of "reject", "drop-oldest"'],
    ['overflow', null, TypeError, 'one of "reject", "drop-oldest"'],
  ] as const)('rejects offlineQueue.%s = %s', (key, value, kind, rule) => {
    const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
    expectInvalid({ port: 1, offlineQueue: { [key]: value } }, kind, `offlineQueue.${key}`, rule, `got ${shown}`);
  });

  it('rejects bad diagnose values', () => {
    expectInvalid({ port: 1, diagnose: { idleThreshold: 0 } }, RangeError, 'diagnose.idleThreshold', 'integer >= 1', 'got 0');
    expectInvalid({ port: 1, diagnose: false }, TypeError, 'diagnose', 'got false');
    expectInvalid({ port: 1, diagnose: { idle: 5 } }, TypeError, 'diagnose.idle', 'unknown option');
    expectInvalid({ port: 1, offlineQueue: { maxByte: 5 } }, TypeError, 'offlineQueue.maxByte', '(did you mean "offlineQueue.maxBytes"?)');
  });
});

describe('resolveOptions: detectWithin, heartbeat and keepAlive', () => {
  it('derives keepalive from the default detectWithin, so it is on by default', () => {
    expect(DEFAULT_DETECT_WITHIN).toBe(30_000);
    const r = resolve({ port: 1 });
    expect(r.detectWithin).toBeUndefined();
    expect(r.heartbeat).toBe(false);
    expect(r.keepAlive).toEqual({ idle: 12_000, interval: 4000, count: 3, userTimeout: 24_000 });
  });

  it('derives both from a given detectWithin and keeps the value', () => {
    const r = resolve({ port: 1, detectWithin: 10_000, heartbeat: { ping: 'p' } });
    expect(r.detectWithin).toBe(10_000);
    expect(r.keepAlive).toEqual({ idle: 5000, interval: 1000, count: 3, userTimeout: 8000 });
    expect(r.heartbeat && [r.heartbeat.interval, r.heartbeat.timeout]).toEqual([4000, 4000]);
  });

  it('derives the heartbeat timers from the default detectWithin', () => {
    const r = resolve({ port: 1, heartbeat: { ping: 'p' } });
    expect(r.heartbeat && [r.heartbeat.interval, r.heartbeat.timeout]).toEqual([12_000, 12_000]);
  });

  it('lets explicit heartbeat fields win over derived ones', () => {
    const r = resolve({ port: 1, detectWithin: 10_000, heartbeat: { ping: 'p', interval: 700 } });
    expect(r.heartbeat && [r.heartbeat.interval, r.heartbeat.timeout]).toEqual([700, 4000]);
  });

  it('lets explicit keepalive fields win and matches the derived user timeout to them', () => {
    const r = resolve({ port: 1, detectWithin: 10_000, keepAlive: { idle: 60_000 } });
    expect(r.keepAlive).toEqual({ idle: 60_000, interval: 1000, count: 3, userTimeout: 63_000 });
    const floored = resolve({ port: 1, keepAlive: { idle: 1500, interval: 2999, count: 2 } });
    expect(floored.keepAlive).toEqual({ idle: 1500, interval: 2999, count: 2, userTimeout: 5000 });
    const explicit = resolve({ port: 1, detectWithin: 10_000, keepAlive: { userTimeout: 0 } });
    expect(explicit.keepAlive).toEqual({ idle: 5000, interval: 1000, count: 3, userTimeout: 0 });
  });

  it('turns keepalive off with false and derives it all with {}', () => {
    expect(resolve({ port: 1, keepAlive: false }).keepAlive).toBe(false);
    expect(resolve({ port: 1, keepAlive: {} }).keepAlive).toEqual(resolve({ port: 1 }).keepAlive);
  });

  it.each([
    [999, RangeError, '999'],
    [3000.5, RangeError, '3000.5'],
    [Infinity, RangeError, 'Infinity'],
    ['30000', TypeError, '"30000"'],
  ] as const)('rejects detectWithin %s and says why', (value, kind, shown) => {
    expectInvalid({ port: 1, detectWithin: value }, kind, 'detectWithin', 'integer in 1000..2147483647', 'whole seconds', `got ${shown}`);
  });

  it.each([
    ['idle', 999, RangeError, 'integer in 1000..32767999 (the kernel floors it to whole seconds, 1..32767)'],
    ['idle', 32_768_000, RangeError, 'integer in 1000..32767999'],
    ['interval', 500, RangeError, 'integer in 1000..32767999'],
    ['interval', '5s', TypeError, 'integer in 1000..32767999'],
    ['count', 0, RangeError, 'integer in 1..127'],
    ['count', 128, RangeError, 'integer in 1..127'],
    ['userTimeout', -1, RangeError, 'integer in 0..2147483647'],
    ['userTimeout', 1.5, RangeError, 'integer in 0..2147483647'],
  ] as const)('rejects keepAlive.%s = %s', (key, value, kind, rule) => {
    const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
    expectInvalid({ port: 1, keepAlive: { [key]: value } }, kind, `keepAlive.${key}`, rule, `got ${shown}`);
  });

  it('rejects keepAlive: true with a hint', () => {
    expectInvalid({ port: 1, keepAlive: true }, TypeError, 'keepAlive', 'use {} for the derived settings', 'got true');
    expectInvalid({ port: 1, keepAlive: { idel: 1000 } }, TypeError, 'keepAlive.idel', '(did you mean "keepAlive.idle"?)');
  });

  it.each([
    ['interval', 0, RangeError, 'integer in 1..2147483647'],
    ['timeout', 1.5, RangeError, 'integer in 1..2147483647'],
    ['timeout', -3, RangeError, 'integer in 1..2147483647'],
    ['interval', '1s', TypeError, 'integer in 1..2147483647'],
    ['isPong', 'pong', TypeError, 'must be a function'],
  ] as const)('rejects heartbeat.%s = %s', (key, value, kind, rule) => {
    const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
    expectInvalid({ port: 1, framing: codec, heartbeat: { ping: 'p', [key]: value } }, kind, `heartbeat.${key}`, rule, `got ${shown}`);
  });

  it('requires a non-empty ping', () => {
    expectInvalid({ port: 1, heartbeat: {} }, TypeError, 'heartbeat.ping', 'got undefined');
    expectInvalid({ port: 1, heartbeat: { ping: 5 } }, TypeError, 'heartbeat.ping', 'got 5');
    expectInvalid({ port: 1, heartbeat: { ping: '' } }, RangeError, 'heartbeat.ping', 'got an empty string');
    expectInvalid({ port: 1, heartbeat: { ping: Buffer.alloc(0) } }, RangeError, 'heartbeat.ping', 'got an empty Buffer');
  });

  it('rejects a ping the framing cannot carry as one frame, at once rather than as the peer\'s protocol error later', () => {
    expectInvalid({ port: 1, framing: lines(), heartbeat: { ping: 'PING\n' } }, RangeError, 'heartbeat.ping', 'must be one frame the lines framing can send', 'got "PING\\n"');
    expectInvalid({ port: 1, framing: lines(), heartbeat: { ping: Buffer.from('PING\r') } }, RangeError, 'heartbeat.ping');
    expectInvalid({ port: 1, framing: lengthPrefixed({ bytes: 1 }), heartbeat: { ping: 'x'.repeat(300) } }, RangeError, 'heartbeat.ping', 'length-prefixed');
    expect(resolve({ port: 1, framing: lines(), heartbeat: { ping: 'PING' } }).heartbeat).not.toBe(false);
    // Without framing the bytes go out as they are: a newline is the user's own protocol.
    expect(resolve({ port: 1, heartbeat: { ping: 'PING\n' } }).heartbeat).not.toBe(false);
  });

  it('a ping function: its throw is ERR_RESOCK_PING_FAILED (cause: the thrown value); an unframable ping names heartbeat.ping', () => {
    const thrown = Object.assign(new Error('no ping today'), { code: 'ECONNRESET' });
    const hb = resolve({ port: 1, heartbeat: { ping: () => {
      throw thrown;
    } } }).heartbeat;
    if (hb === false) throw new Error('heartbeat expected');
    const err = errorOf(() => hb.ping());
    expect(err).toBeInstanceOf(ResockError);
    expect(err).toMatchObject({ code: 'ERR_RESOCK_PING_FAILED', message: 'heartbeat.ping() threw: no ping today', cause: thrown });

    const framed = resolve({ port: 1, framing: lines(), heartbeat: { ping: () => Buffer.from('a\nb') } }).heartbeat;
    if (framed === false) throw new Error('heartbeat expected');
    const refused = errorOf(() => framed.ping());
    expect(refused).toMatchObject({ code: 'ERR_RESOCK_INVALID_OPTION', option: 'heartbeat.ping' });
    expect(refused.message).toMatch(/^heartbeat\.ping\(\) must return one frame the lines framing can send \(.*\), got "a\\nb"$/);
  });

  it('rejects heartbeat: true and unknown heartbeat keys', () => {
    expectInvalid({ port: 1, heartbeat: true }, TypeError, 'heartbeat', 'got true');
    expectInvalid({ port: 1, heartbeat: { ping: 'p', intreval: 5 } }, TypeError, 'heartbeat.intreval', '(did you mean "heartbeat.interval"?)');
  });

  it('turns a string ping into its UTF-8 bytes once', () => {
    const r = resolve({ port: 1, heartbeat: { ping: 'pïng\n' } });
    const hb = r.heartbeat;
    if (hb === false) throw new Error('heartbeat expected');
    const first = hb.ping();
    expect(first).toEqual(Buffer.from('pïng\n', 'utf8'));
    expect(hb.ping()).toBe(first);
  });

  it('copies a Buffer ping so later changes to the caller buffer do not leak in', () => {
    const given = Buffer.from('ping');
    const hb = resolve({ port: 1, heartbeat: { ping: given } }).heartbeat;
    if (hb === false) throw new Error('heartbeat expected');
    given.fill(0);
    expect(hb.ping().toString()).toBe('ping');
  });

  it('calls a ping function each time and checks what it returns', () => {
    let n = 0;
    const hb = resolve({ port: 1, heartbeat: { ping: () => Buffer.from(`p${++n}`) } }).heartbeat;
    if (hb === false) throw new Error('heartbeat expected');
    expect(hb.ping().toString()).toBe('p1');
    expect(hb.ping().toString()).toBe('p2');

    const wrong = resolve({ port: 1, heartbeat: { ping: () => 'text' as unknown as Buffer } }).heartbeat;
    if (wrong === false) throw new Error('heartbeat expected');
    const err = errorOf(() => wrong.ping());
    expect(err).toBeInstanceOf(TypeError);
    expect(err.code).toBe('ERR_RESOCK_INVALID_OPTION');
    expect(err.message).toBe('heartbeat.ping() must return a Buffer, got "text"');

    const empty = resolve({ port: 1, heartbeat: { ping: () => Buffer.alloc(0) } }).heartbeat;
    if (empty === false) throw new Error('heartbeat expected');
    expect(errorOf(() => empty.ping())).toBeInstanceOf(RangeError);
  });

  it('accepts isPong only with framing', () => {
    const isPong = (frame: Buffer): boolean => frame.length === 1;
    const hb = resolve({ port: 1, framing: codec, heartbeat: { ping: 'p', isPong } }).heartbeat;
    expect(hb && hb.isPong).toBe(isPong);
    expectInvalid({ port: 1, heartbeat: { ping: 'p', isPong } }, TypeError, 'heartbeat.isPong', 'needs the framing option');
  });
});

describe('resolveOptions: framing', () => {
  it('keeps a valid codec, class instances included', () => {
    expect(resolve({ port: 1, framing: codec }).framing).toBe(codec);
    class Lines implements FramingCodec {
      readonly name = 'lines';
      decoder(): FrameDecoder {
        return { push: () => undefined, buffered: 0 };
      }
      encode(frame: Buffer): Buffer {
        return frame;
      }
    }
    const codecInstance = new Lines();
    expect(resolve({ port: 1, framing: codecInstance }).framing).toBe(codecInstance);
  });

  it('checks the codec shape', () => {
    expectInvalid({ port: 1, framing: 'lines' }, TypeError, 'framing', 'got "lines"');
    expectInvalid({ port: 1, framing: { ...codec, name: '' } }, TypeError, 'framing.name', 'got ""');
    expectInvalid({ port: 1, framing: { ...codec, decoder: undefined } }, TypeError, 'framing.decoder', 'must be a function', 'got undefined');
    expectInvalid({ port: 1, framing: { ...codec, encode: 1 } }, TypeError, 'framing.encode', 'got 1');
  });
});

describe('resolveOptions: the result', () => {
  it('is frozen all the way down', () => {
    const r = resolve({
      endpoints: [{ port: 1 }],
      tls: { servername: 'x' },
      heartbeat: { ping: 'p' },
      keepAlive: { idle: 2000 },
    });
    for (const part of [r, r.endpoints, r.endpoints[0], r.tls, r.reconnect, r.offlineQueue, r.diagnose, r.heartbeat, r.keepAlive]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(() => {
      (r as { connectTimeout: number }).connectTimeout = 1;
    }).toThrow(TypeError);
  });
});

describe('resolveOptions: junk', () => {
  const keys = [
    'host', 'port', 'path', 'endpoints', 'tls', 'connectTimeout', 'noDelay', 'onConnect', 'reconnect', 'offlineQueue',
    'diagnose', 'heartbeat', 'keepAlive', 'framing', 'detectWithin', 'signal', 'reconect', 'x',
  ];
  const nestedKeys = [
    'retries', 'minDelay', 'maxDelay', 'factor', 'jitter', 'maxElapsed', 'stableAfter', 'shouldReconnect', 'maxBytes',
    'maxWrites', 'maxAge', 'overflow', 'idleThreshold', 'interval', 'timeout', 'ping', 'isPong', 'idle', 'count',
    'userTimeout', 'host', 'port', 'path', 'name', 'decoder', 'encode',
  ];
  const scalar = fc.oneof(
    fc.constantFrom(undefined, null, true, false, 0, -0, 1, 80, 1000, 3000, 65_536, Infinity, -Infinity, Number.NaN, '', 'p', 'full', 'reject'),
    fc.integer({ min: -10, max: 100_000 }),
    fc.double(),
    fc.string(),
    fc.func(fc.anything()),
  );
  const nested = fc.oneof(
    scalar,
    fc.dictionary(fc.constantFrom(...nestedKeys), scalar),
    fc.array(fc.dictionary(fc.constantFrom(...nestedKeys), scalar), { maxLength: 3 }),
    fc.anything(),
  );
  // Mostly valid options with a few junk fields per section, so the success path is reached too.
  const section = (sectionKeys: string[]) =>
    fc.oneof(fc.constantFrom(undefined, false), fc.dictionary(fc.constantFrom(...sectionKeys), scalar, { maxKeys: 2 }));
  const nearlyValid = fc.record(
    {
      port: fc.constantFrom(80, 1, 65_535, 70_000),
      reconnect: section(['retries', 'minDelay', 'maxDelay', 'factor', 'jitter', 'maxElapsed', 'stableAfter', 'shouldReconnect']),
      offlineQueue: section(['maxBytes', 'maxWrites', 'maxAge', 'overflow']),
      heartbeat: section(['interval', 'timeout', 'ping', 'isPong']),
      keepAlive: section(['idle', 'interval', 'count', 'userTimeout']),
      detectWithin: fc.constantFrom(undefined, 999, 1000, 2999, 3000, 30_000, 3000.5),
      connectTimeout: fc.constantFrom(undefined, 1, 10_000, 0, '5'),
    },
    { requiredKeys: ['port'] },
  );
  const options = fc.oneof(nearlyValid, fc.dictionary(fc.constantFrom(...keys), nested), fc.anything());

  it('either resolves or throws ERR_RESOCK_INVALID_OPTION, never anything else', () => {
    let resolved = 0;
    fc.assert(
      fc.property(options, (input) => {
        let r: ResolvedOptions;
        try {
          r = resolve(input);
        } catch (err) {
          expect(err instanceof TypeError || err instanceof RangeError).toBe(true);
          expect((err as { code?: unknown }).code).toBe('ERR_RESOCK_INVALID_OPTION');
          return;
        }
        resolved++;
        expect(Object.isFrozen(r)).toBe(true);
        expect(r.endpoints.length).toBeGreaterThan(0);
        if (r.heartbeat !== false) {
          try {
            expect(Buffer.isBuffer(r.heartbeat.ping())).toBe(true);
          } catch (err) {
            expect((err as { code?: unknown }).code).toBe('ERR_RESOCK_INVALID_OPTION');
          }
        }
      }),
      { numRuns: 3000 },
    );
    // The generator must reach the success path too, or the property says little.
    expect(resolved).toBeGreaterThan(10);
  });
});
