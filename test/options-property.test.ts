// Property tests over the whole options object, through the public constructor. Each field has arbitraries of valid and
// of invalid values; an invalid value carries the option path it must be reported under. Then:
// - any input with an invalid field throws ERR_RESOCK_INVALID_OPTION synchronously, naming one of those paths;
// - any all-valid input constructs, connects to a local endpoint (listening or refused, TCP or IPC) and closes cleanly.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResilientSocket, lengthPrefixed, lines, type FramingCodec, type ResilientSocketOptions } from '../src/index.js';
import { activeResources, freePort, listen, sleep, type TestServer } from './support/net.js';

/** One field's value, built fresh per use (signals, codecs), and the option paths that make it invalid ([] = valid). */
interface Field {
  make(): unknown;
  bad: string[];
  /** heartbeat with an isPong function: valid only next to framing. */
  pong?: boolean;
}

const TIMER_MAX = 2_147_483_647;

// One invalid value per this many valid ones, per field: with some thirty fields, about one input in five is all valid.
const VALID_WEIGHT = 14;

const good = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<Field> => a.map((v) => ({ make: () => v, bad: [] }));
const bad = <T>(path: string, a: fc.Arbitrary<T>): fc.Arbitrary<Field> => a.map((v) => ({ make: () => v, bad: [path] }));
const goodMake = (...makers: Array<() => unknown>): fc.Arbitrary<Field> => fc.constantFrom(...makers).map((make) => ({ make, bad: [] }));
const badMake = (path: string, ...makers: Array<() => unknown>): fc.Arbitrary<Field> =>
  fc.constantFrom(...makers).map((make) => ({ make, bad: [path] }));

/** Values that are not numbers, or numbers that no integer option accepts. */
const notANumber = fc.constantFrom<unknown>('10', null, true, {}, [], 10n, () => 10);
const notAnInteger = fc.constantFrom(1.5, Number.NaN, -Infinity);

// Options without an upper bound are still tried up to here: far past any sensible value.
const LARGE = 2 ** 40;

interface IntRule {
  min: number;
  /** Undefined: no upper bound. */
  max?: number;
  /** Infinity is accepted too. */
  infinity?: boolean;
}

/** An integer the rule accepts, mostly small so runs stay fast. */
function int(rule: IntRule): fc.Arbitrary<number> {
  const hi = rule.max ?? LARGE;
  const edges = [rule.min, hi, ...(rule.infinity ? [Infinity] : [])];
  return fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: rule.min, max: Math.min(hi, rule.min + 50) }) },
    { weight: 1, arbitrary: fc.integer({ min: rule.min, max: hi }) },
    { weight: 1, arbitrary: fc.constantFrom(...edges) },
  );
}

/** An integer option: valid per the rule; invalid by type, by fraction, or by lying just outside it. */
function intField(path: string, rule: IntRule): { ok: fc.Arbitrary<Field>; any: fc.Arbitrary<Field> } {
  const outside = [rule.min - 1, ...(rule.max === undefined ? [] : [rule.max + 1]), ...(rule.infinity ? [] : [Infinity])];
  const ok = good(int(rule));
  const wrong = bad(path, fc.oneof(notANumber, notAnInteger, fc.constantFrom(...outside)));
  return { ok, any: fc.oneof({ weight: VALID_WEIGHT, arbitrary: ok }, { weight: 1, arbitrary: wrong }) };
}

/**
 * An optional sub-object: each key present or not; its Field collects the paths of its bad keys, plus `cross`. With
 * `typo`, now and then that unknown key is added too.
 */
function section(
  path: string,
  keys: Record<string, fc.Arbitrary<Field>>,
  cross: (values: Record<string, unknown>, bads: string[]) => string[] = () => [],
  typo?: string,
): fc.Arbitrary<Field> {
  const extra = typo === undefined ? fc.constant(undefined) : rarely(bad(`${path}.${typo}`, fc.constant(1)));
  return fc.tuple(fc.record(keys, { requiredKeys: [] }), extra).map(([fields, unknown]) => {
    const entries = Object.entries(fields) as Array<[string, Field]>;
    if (unknown !== undefined) entries.push([typo!, unknown]);
    const bads = entries.flatMap(([, f]) => f.bad);
    const sample = Object.fromEntries(entries.map(([k, f]) => [k, f.make()]));
    return {
      make: () => Object.fromEntries(entries.map(([k, f]) => [k, f.make()])),
      bad: [...bads, ...cross(sample, bads)],
      pong: typeof sample.isPong === 'function',
    };
  });
}

/** Mostly absent (undefined), now and then the given field. */
function rarely(a: fc.Arbitrary<Field>): fc.Arbitrary<Field | undefined> {
  return fc.oneof({ weight: VALID_WEIGHT, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
}

const fn = (): void => {};

interface Env {
  port: number;
  refused: number;
  ipc: string;
  missing: string;
}

function arbitraries(env: Env, validOnly: boolean) {
  const pick = (f: { ok: fc.Arbitrary<Field>; any: fc.Arbitrary<Field> }): fc.Arbitrary<Field> => (validOnly ? f.ok : f.any);
  const either = (ok: fc.Arbitrary<Field>, wrong: fc.Arbitrary<Field>, weight = VALID_WEIGHT): fc.Arbitrary<Field> =>
    validOnly ? ok : fc.oneof({ weight, arbitrary: ok }, { weight: 1, arbitrary: wrong });
  const tcp = { host: '127.0.0.1', port: env.port };

  const endpoint = either(
    goodMake(
      () => tcp,
      () => ({ port: env.port }),
      () => ({ host: 'localhost', port: env.port }),
      () => ({ host: '127.0.0.1', port: env.refused }),
      () => ({ path: env.ipc }),
      () => ({ path: env.missing }),
      () => ({ endpoints: [{ host: '127.0.0.1', port: env.refused }, tcp] }),
      () => ({ endpoints: [{ path: env.ipc }, { port: env.port }] }),
    ),
    fc.oneof(
      badMake('port', () => ({ port: 0 }), () => ({ port: 65_536 }), () => ({ port: '80' }), () => ({ port: 1.5 }), () => ({})),
      badMake('port', () => ({ host: '127.0.0.1' }), () => ({ path: env.ipc, port: env.port }), () => ({ endpoints: [tcp], port: 1 })),
      badMake('host', () => ({ host: '', port: env.port }), () => ({ host: 5, port: env.port }), () => ({ path: env.ipc, host: 'h' })),
      badMake('path', () => ({ path: '' }), () => ({ path: 7 })),
      badMake('endpoints', () => ({ endpoints: [] }), () => ({ endpoints: 'x' }), () => ({ endpoints: { 0: tcp } })),
      badMake('endpoints[0]', () => ({ endpoints: [{}] }), () => ({ endpoints: [null] }), () => ({ endpoints: ['127.0.0.1:80'] })),
      badMake('endpoints[1].port', () => ({ endpoints: [tcp, { port: -1 }] }), () => ({ endpoints: [tcp, { host: 'h' }] })),
      badMake('endpoints[0].prot', () => ({ endpoints: [{ host: 'h', prot: 1, port: 1 }] })),
    ),
  );

  const tls = either(
    goodMake(() => undefined, () => false, () => true, () => ({ rejectUnauthorized: false }), () => ({ servername: 'x', rejectUnauthorized: false })),
    fc.oneof(
      badMake('tls', () => 'yes', () => 5, () => null, () => []),
      badMake('tls.host', () => ({ host: 'x' })),
      badMake('tls.port', () => ({ port: 443 })),
      badMake('tls.socket', () => ({ socket: new net.Socket() })),
    ),
  );

  const bool = (path: string): fc.Arbitrary<Field> => either(good(fc.boolean()), bad(path, fc.constantFrom<unknown>('true', 1, 0, null, {})));
  const func = (path: string, ...ok: unknown[]): fc.Arbitrary<Field> =>
    either(good(fc.constantFrom(...ok)), bad(path, fc.constantFrom<unknown>('fn', 5, true, {}, null)));

  const reconnect = either(
    fc.oneof(
      good(fc.constant(false)),
      section(
        'reconnect',
        {
          retries: pick(intField('reconnect.retries', { min: 0, infinity: true })),
          minDelay: pick(intField('reconnect.minDelay', { min: 0, max: TIMER_MAX })),
          maxDelay: pick(intField('reconnect.maxDelay', { min: 0, max: TIMER_MAX })),
          factor: either(
            good(fc.oneof(fc.constantFrom(1, 1.5, 2, 10), fc.double({ min: 1, max: 1e6, noNaN: true }))),
            bad('reconnect.factor', fc.oneof(notANumber, fc.constantFrom(0.5, 0, -1, Infinity, Number.NaN))),
          ),
          jitter: either(
            good(fc.constantFrom('full', 'equal', 'decorrelated', 'none')),
            bad('reconnect.jitter', fc.constantFrom<unknown>('fulll', 'FULL', '', 5, null, true)),
          ),
          maxElapsed: pick(intField('reconnect.maxElapsed', { min: 1, infinity: true })),
          stableAfter: pick(intField('reconnect.stableAfter', { min: 0, max: TIMER_MAX })),
          shouldReconnect: func('reconnect.shouldReconnect', () => true, () => false),
        },
        // maxDelay below the (given or default 100 ms) minDelay cannot be honoured.
        (v, bads) => {
          if (bads.includes('reconnect.minDelay') || bads.includes('reconnect.maxDelay')) return [];
          const min = (v.minDelay as number | undefined) ?? 100;
          const max = v.maxDelay as number | undefined;
          return max !== undefined && max < min ? ['reconnect.maxDelay'] : [];
        },
        validOnly ? undefined : 'retires',
      ),
    ),
    badMake('reconnect', () => true, () => 'always', () => null, () => [], () => new (class Reconnect {})()),
  );

  const offlineQueue = either(
    fc.oneof(
      good(fc.constant(false)),
      section('offlineQueue', {
        maxBytes: pick(intField('offlineQueue.maxBytes', { min: 0 })),
        maxWrites: pick(intField('offlineQueue.maxWrites', { min: 0, infinity: true })),
        maxAge: pick(intField('offlineQueue.maxAge', { min: 1, max: TIMER_MAX, infinity: true })),
        overflow: either(good(fc.constantFrom('reject', 'drop-oldest')), bad('offlineQueue.overflow', fc.constantFrom<unknown>('drop', 'oldest', 1, null))),
      }, undefined, validOnly ? undefined : 'maxbytes'),
    ),
    badMake('offlineQueue', () => true, () => 'on', () => null),
  );

  const diagnose = either(
    section('diagnose', { idleThreshold: pick(intField('diagnose.idleThreshold', { min: 1 })) }),
    badMake('diagnose', () => false, () => true, () => 'x', () => null),
  );

  const heartbeat = either(
    fc.oneof(
      good(fc.constant(false)),
      section('heartbeat', {
        // ping is required: the record below always includes it.
        interval: pick(intField('heartbeat.interval', { min: 1, max: TIMER_MAX })),
        timeout: pick(intField('heartbeat.timeout', { min: 1, max: TIMER_MAX })),
        isPong: func('heartbeat.isPong', (f: Buffer) => f.length === 0),
      }).chain((rest) =>
        either(
          goodMake(() => 'p', () => Buffer.from('ping'), () => new Uint8Array([1, 2]), () => () => Buffer.from('x')),
          badMake('heartbeat.ping', () => '', () => Buffer.alloc(0), () => 5, () => null, () => undefined, () => ({})),
        ).map((ping) => ({
          make: () => ({ ...(rest.make() as object), ping: ping.make() }),
          bad: [...rest.bad, ...ping.bad],
          pong: rest.pong === true && rest.bad.length === 0,
        })),
      ),
    ),
    badMake('heartbeat', () => true, () => 'ping', () => null, () => 1000),
  );

  const seconds = { min: 1000, max: 32_767_999 };
  const keepAlive = either(
    fc.oneof(
      good(fc.constant(false)),
      section('keepAlive', {
        idle: pick(intField('keepAlive.idle', seconds)),
        interval: pick(intField('keepAlive.interval', seconds)),
        count: pick(intField('keepAlive.count', { min: 1, max: 127 })),
        userTimeout: pick(intField('keepAlive.userTimeout', { min: 0, max: TIMER_MAX })),
      }),
    ),
    badMake('keepAlive', () => true, () => 1000, () => null, () => 'on'),
  );

  const codec: FramingCodec = { name: 'custom', decoder: () => lines().decoder(), encode: (f) => lines().encode(f) };
  const framing = either(
    goodMake(
      () => lines(),
      () => lines({ maxLength: 64 }),
      () => lengthPrefixed(),
      () => lengthPrefixed({ bytes: 1 }),
      () => lengthPrefixed({ bytes: 2, maxLength: 1000 }),
      () => codec,
    ),
    fc.oneof(
      badMake('framing.maxLength', () => lines({ maxLength: 0 }), () => lengthPrefixed({ bytes: 1, maxLength: 256 }), () => lines({ maxLength: 1.5 })),
      badMake('framing.bytes', () => lengthPrefixed({ bytes: 3 as 4 })),
      badMake('framing.size', () => lengthPrefixed({ size: 4 } as never)),
      badMake('framing', () => lines('x' as never), () => lengthPrefixed(4 as never), () => 'lines', () => null, () => 5),
      badMake('framing.name', () => ({ ...codec, name: '' }), () => ({ decoder: codec.decoder, encode: codec.encode })),
      badMake('framing.decoder', () => ({ ...codec, decoder: 1 })),
      badMake('framing.encode', () => ({ ...codec, encode: null })),
    ),
  );

  const detectWithin = either(
    good(int({ min: 3000, max: TIMER_MAX })),
    bad('detectWithin', fc.oneof(notANumber, fc.constantFrom(999, 0, 3000.5, Number.NaN, Infinity, TIMER_MAX + 1))),
  );

  const signal = either(
    // Mostly live signals: an aborted one closes at connect() and exercises nothing else.
    fc.nat(3).map((n): Field => ({ make: () => (n === 0 ? AbortSignal.abort() : new AbortController().signal), bad: [] })),
    badMake('signal', () => ({}), () => 'signal', () => new AbortController(), () => null),
  );

  const top = fc.record(
    {
      endpoint,
      tls,
      connectTimeout: pick(intField('connectTimeout', { min: 1, max: TIMER_MAX })),
      noDelay: bool('noDelay'),
      onConnect: func('onConnect', fn, async () => {}, (s: net.Socket) => void s.setNoDelay(true)),
      reconnect,
      offlineQueue,
      diagnose,
      heartbeat,
      keepAlive,
      framing,
      detectWithin,
      signal,
    },
    { requiredKeys: ['endpoint'] },
  );
  const typo = validOnly
    ? fc.constant(undefined)
    : rarely(fc.oneof(bad('reconect', fc.constant(['reconect', false])), bad('conectTimeout', fc.constant(['conectTimeout', 5]))));

  const options = fc.tuple(top, typo).map(([{ endpoint: ep, ...rest }, unknown]) => {
    const fields = Object.entries(rest) as Array<[string, Field]>;
    if (unknown !== undefined) {
      const [key, value] = unknown.make() as [string, unknown];
      fields.push([key, { make: () => value, bad: unknown.bad }]);
    }
    const bads = [ep.bad, ...fields.map(([, f]) => f.bad)].flat();
    const framingGiven = rest.framing !== undefined;
    if (rest.heartbeat?.pong === true && !framingGiven) bads.push('heartbeat.isPong');
    return {
      bad: bads,
      build: (): ResilientSocketOptions => {
        const o: Record<string, unknown> = { ...(ep.make() as object) };
        for (const [k, f] of fields) o[k] = f.make();
        return o as ResilientSocketOptions;
      },
    };
  });
  // Fields valid alone can still clash (maxDelay below minDelay, isPong without framing).
  return validOnly ? options.filter((o) => o.bad.length === 0) : options;
}

/** Fails the property when `fn` does not throw, or throws anything but ERR_RESOCK_INVALID_OPTION about one of `paths`. */
function expectInvalid(fn: () => unknown, paths: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error(`expected ERR_RESOCK_INVALID_OPTION about ${paths.join(' or ')}, nothing was thrown`);
  const e = err as Error & { code?: unknown; option?: unknown };
  expect(e instanceof TypeError || e instanceof RangeError, String(e)).toBe(true);
  expect(e.code, e.message).toBe('ERR_RESOCK_INVALID_OPTION');
  expect(paths, e.message).toContain(e.option);
  expect(e.message).toContain(e.option as string);
}

const invalidOptionsOnTop = fc.constantFrom<unknown>(null, undefined, 'localhost:80', [], 42, new Map([['port', 80]]));

let env: Env;
let tcp: TestServer;
let ipcServer: net.Server;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'resock-options-'));
  // Reads and drops, and ends when the client ends, so a graceful close completes at once.
  tcp = await listen((s) => s.resume());
  ipcServer = net.createServer((s) => {
    s.on('error', () => {});
    s.resume();
  });
  const ipc = join(dir, 'ipc.sock');
  await new Promise<void>((resolve) => ipcServer.listen(ipc, () => resolve()));
  env = { port: tcp.port, refused: await freePort(), ipc, missing: join(dir, 'missing.sock') };
});

afterAll(async () => {
  await tcp.close();
  await new Promise<void>((resolve) => ipcServer.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe('options property', () => {
  it('every input with an invalid field throws ERR_RESOCK_INVALID_OPTION synchronously, naming the option', () => {
    let invalid = 0;
    let valid = 0;
    fc.assert(
      fc.property(arbitraries(env, false), ({ bad: paths, build }) => {
        if (paths.length === 0) {
          valid++;
          // Valid: constructs (and stays idle, so nothing to close).
          expect(new ResilientSocket(build()).state).toBe('idle');
          return;
        }
        invalid++;
        expectInvalid(() => new ResilientSocket(build()), paths);
      }),
      { numRuns: 1500 },
    );
    fc.assert(fc.property(invalidOptionsOnTop, (o) => expectInvalid(() => new ResilientSocket(o as ResilientSocketOptions), ['options'])));
    // The generator must reach both sides, or the property says little.
    expect(invalid).toBeGreaterThan(300);
    expect(valid).toBeGreaterThan(30);
  });

  // The property meets this case about once per run; here it is every time.
  it('a framing factory given options that are not an object names framing in the message', () => {
    expectInvalid(() => new ResilientSocket({ port: env.port, framing: lines('x' as never) }), ['framing']);
    expectInvalid(() => new ResilientSocket({ port: env.port, framing: lengthPrefixed(4 as never) }), ['framing']);
  });

  it('every valid input constructs, connects to a local endpoint and closes cleanly, leaving nothing behind', async () => {
    const baseline = activeResources();
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(arbitraries(env, true), async ({ bad: paths, build }) => {
        expect(paths).toEqual([]);
        const sock = new ResilientSocket(build());
        const closes: string[] = [];
        sock.on('close', (info) => closes.push(info.reason));
        const first = firstEvent(sock, 50);
        sock.connect();
        const outcome = await first;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        await bounded(sock.close(), 3000, 'close()');
        await new Promise((resolve) => setImmediate(resolve));
        expect(sock.state).toBe('closed');
        expect(closes).toHaveLength(1);
        expect(await settle(baseline, 2000)).toEqual([]);
      }),
      { numRuns: 200 },
    );
    // Both a real connection and failed dials were exercised.
    expect(outcomes.get('connect') ?? 0).toBeGreaterThan(10);
    expect(outcomes.get('failure') ?? 0).toBeGreaterThan(10);
  });
});

/** Which of connect / failure / close comes first, or 'none' within `ms`. Cleans up its listeners. */
function firstEvent(sock: ResilientSocket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const names = ['connect', 'failure', 'close'] as const;
    const done = (name: string): void => {
      clearTimeout(timer);
      for (const [n, l] of listeners) sock.off(n, l);
      resolve(name);
    };
    const listeners = names.map((n) => [n, () => done(n)] as const);
    for (const [n, l] of listeners) sock.on(n, l);
    const timer = setTimeout(() => done('none'), ms);
  });
}

async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Like settleResources, polling every millisecond: 200 runs cannot afford 20 ms each. */
async function settle(baseline: string[], ms: number): Promise<string[]> {
  const deadline = performance.now() + ms;
  for (;;) {
    const extra = [...activeResources()];
    for (const r of baseline) {
      const i = extra.indexOf(r);
      if (i >= 0) extra.splice(i, 1);
    }
    if (extra.length === 0 || performance.now() > deadline) return extra;
    await sleep(1);
  }
}
