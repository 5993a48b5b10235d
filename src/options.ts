// Turns the options a user writes into the frozen ResolvedOptions the rest of resock reads: every value checked once,
// defaults merged, heartbeat and keepalive gaps filled from detectWithin. Errors follow one convention: a TypeError
// when the value has the wrong type or shape (including unknown and conflicting options), a RangeError when it has the
// right type but an unacceptable value; both name the option path and echo the value.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { isError } from './classify.js';
import {
  deriveLiveness,
  detectWithinMessage,
  matchingUserTimeout,
  MAX_DETECT_WITHIN,
  MIN_DETECT_WITHIN,
} from './detect.js';
import { codeError, describeValue, invalidOption } from './errors.js';
import type {
  Endpoint,
  FramingCodec,
  JitterKind,
  OnConnect,
  ResilientSocketOptions,
  ResolvedHeartbeat,
  ResolvedKeepAlive,
  ResolvedOfflineQueue,
  ResolvedOptions,
  ResolvedReconnect,
} from './types.js';

// 30 s: the derived keepalive probes after 12 s of quiet, well inside common middlebox idle timeouts (Azure LB 4 min,
// AWS NLB 350 s) so it also keeps those flows alive, and a dead peer is found within half a minute.
export const DEFAULT_DETECT_WITHIN = 30_000;

// Node's setTimeout turns larger delays into 1 ms, so every duration that ends up in a timer stays at or below it.
const TIMER_MAX = 2_147_483_647;

type Bag = Record<string, unknown>;

const TOP_KEYS = [
  'host',
  'port',
  'path',
  'endpoints',
  'tls',
  'connectTimeout',
  'noDelay',
  'onConnect',
  'reconnect',
  'offlineQueue',
  'diagnose',
  'heartbeat',
  'keepAlive',
  'framing',
  'detectWithin',
  'signal',
] as const satisfies readonly (keyof ResilientSocketOptions)[];
const ENDPOINT_KEYS = ['host', 'port', 'path'] as const;
const RECONNECT_KEYS = [
  'retries',
  'minDelay',
  'maxDelay',
  'factor',
  'jitter',
  'maxElapsed',
  'stableAfter',
  'shouldReconnect',
] as const;
const QUEUE_KEYS = ['maxBytes', 'maxWrites', 'maxAge', 'overflow'] as const;
const DIAGNOSE_KEYS = ['idleThreshold'] as const;
const HEARTBEAT_KEYS = ['interval', 'timeout', 'ping', 'isPong'] as const;
const KEEPALIVE_KEYS = ['idle', 'interval', 'count', 'userTimeout'] as const;
const JITTERS: readonly JitterKind[] = ['full', 'equal', 'decorrelated', 'none'];
const OVERFLOWS: readonly ResolvedOfflineQueue['overflow'][] = ['reject', 'drop-oldest'];
const NO_TLS_OPTIONS = Object.freeze({});
// These would silently lose to the endpoint (transport.ts sets host/port/path last) or bypass dialing altogether.
const TLS_FORBIDDEN = ['host', 'port', 'path', 'socket'] as const;
// What tls.createSecureContext() reads. tls.connect() makes a context from them on every dial, so a bad one would fail
// every attempt alike: resolveTls makes one context up front instead.
const SECURE_CONTEXT_FIELDS = [
  'ca',
  'cert',
  'key',
  'passphrase',
  'pfx',
  'crl',
  'ciphers',
  'ecdhCurve',
  'dhparam',
  'sigalgs',
  'minVersion',
  'maxVersion',
  'secureProtocol',
  'secureOptions',
  'honorCipherOrder',
  'sessionIdContext',
  'ticketKeys',
  'sessionTimeout',
  'privateKeyEngine',
  'privateKeyIdentifier',
  'clientCertEngine',
  'allowPartialTrustChain',
] as const;
// Fields read together with the one being blamed, so a right value is not blamed for its partner's absence.
const SECURE_CONTEXT_PARTNERS: Partial<Record<string, readonly string[]>> = {
  key: ['passphrase'],
  pfx: ['passphrase'],
  minVersion: ['maxVersion', 'secureProtocol'],
  maxVersion: ['minVersion', 'secureProtocol'],
};
// Never echoed in an error message: they end up in logs.
const TLS_SECRETS = new Set(['key', 'passphrase', 'pfx', 'ticketKeys']);

/** Validates `input`, merges the defaults and returns a deeply frozen copy. Throws ERR_RESOCK_INVALID_OPTION. */
export function resolveOptions(input: ResilientSocketOptions): ResolvedOptions {
  const o = readObject(input, 'options', TOP_KEYS, 'a plain object', '');
  const endpoints = resolveEndpoints(o);
  const tls = resolveTls(own(o, 'tls'));
  // 10 s: a SYN black hole otherwise waits out tcp_syn_retries (over 2 min); a TLS handshake over a slow path fits.
  const connectTimeout = optional(own(o, 'connectTimeout'), 10_000, (v) =>
    checkNumber(v, 'connectTimeout', { min: 1, max: TIMER_MAX }),
  );
  // true: resock's writes are small messages and pings; Nagle would hold one back behind an unacknowledged write.
  const noDelay = optional(own(o, 'noDelay'), true, (v) => checkBoolean(v, 'noDelay'));
  const onConnect = optionalFunction<OnConnect>(own(o, 'onConnect'), 'onConnect');
  const reconnect = resolveReconnect(own(o, 'reconnect'));
  const offlineQueue = resolveOfflineQueue(own(o, 'offlineQueue'));
  const diagnose = resolveDiagnose(own(o, 'diagnose'));
  const framing = resolveFraming(own(o, 'framing'));
  const detectWithin = resolveDetectWithin(own(o, 'detectWithin'));
  const derived = deriveLiveness(detectWithin ?? DEFAULT_DETECT_WITHIN);
  const heartbeat = resolveHeartbeat(own(o, 'heartbeat'), derived.heartbeat, framing);
  const keepAlive = resolveKeepAlive(own(o, 'keepAlive'), derived.keepAlive);
  const signal = resolveSignal(own(o, 'signal'));
  return shared.options.dedupe(
    Object.freeze({
      endpoints: shared.endpoints.dedupe(endpoints, sameEndpoints),
      tls,
      connectTimeout,
      noDelay,
      onConnect,
      reconnect: reconnect === false ? false : shared.reconnect.dedupe(reconnect),
      offlineQueue: offlineQueue === false ? false : shared.offlineQueue.dedupe(offlineQueue),
      diagnose: shared.diagnose.dedupe(diagnose),
      heartbeat: heartbeat === false ? false : shared.heartbeat.dedupe(heartbeat, sameHeartbeat),
      keepAlive: keepAlive === false ? false : shared.keepAlive.dedupe(keepAlive),
      framing,
      detectWithin,
      signal,
    }),
  );
}

// ---- sharing between sockets ----------------------------------------------------------------------------------------

// Thousands of sockets are often made from equal options, and a resolved section is deeply frozen, so equal sections
// can be one object: that saves about a kilobyte per socket. Each kind keeps only the last value it handed out, and
// only weakly, so nothing is kept alive for a later call once the sockets using it are gone.
class LastValue<T extends object> {
  #last: WeakRef<T> | undefined;

  /** The value handed out last if it equals `fresh`, else undefined. */
  find(fresh: T, equal: (a: T, b: T) => boolean = shallowEqual): T | undefined {
    const last = this.#last?.deref();
    return last !== undefined && equal(last, fresh) ? last : undefined;
  }

  /** The value handed out last if it equals `fresh`, otherwise `fresh` (which becomes the last). */
  dedupe(fresh: T, equal: (a: T, b: T) => boolean = shallowEqual): T {
    const last = this.#last?.deref();
    if (last !== undefined && equal(last, fresh)) return last;
    this.#last = new WeakRef(fresh);
    return fresh;
  }
}

const shared = {
  options: new LastValue<ResolvedOptions>(),
  endpoints: new LastValue<readonly Endpoint[]>(),
  tls: new LastValue<NonNullable<ResolvedOptions['tls']>>(),
  reconnect: new LastValue<ResolvedReconnect>(),
  offlineQueue: new LastValue<ResolvedOfflineQueue>(),
  diagnose: new LastValue<ResolvedOptions['diagnose']>(),
  heartbeat: new LastValue<ResolvedHeartbeat>(),
  keepAlive: new LastValue<ResolvedKeepAlive>(),
};

/** Same own enumerable keys holding identical values: for frozen objects of primitives and shared references. */
function shallowEqual(a: object, b: object): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || !Object.is((a as Bag)[key], (b as Bag)[key])) return false;
  }
  return true;
}

function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  return a.length === b.length && a.every((e, i) => shallowEqual(e, b[i]!));
}

function sameHeartbeat(a: ResolvedHeartbeat, b: ResolvedHeartbeat): boolean {
  return (
    a.interval === b.interval &&
    a.timeout === b.timeout &&
    a.isPong === b.isPong &&
    samePing(pingSources.get(a.ping), pingSources.get(b.ping)) &&
    pingFramings.get(a.ping) === pingFramings.get(b.ping)
  );
}

// What each resolved ping function sends: the user's string, a copy of their bytes, or their function. Each resolution
// makes a new function, so two heartbeats are only comparable through what their pings were made from.
const pingSources = new WeakMap<() => Buffer, string | Buffer | (() => unknown)>();
// The framing a ping function checks its pings against: equal functions under another framing are another ping.
const pingFramings = new WeakMap<() => Buffer, FramingCodec>();

function samePing(a: string | Buffer | (() => unknown) | undefined, b: typeof a): boolean {
  if (a === undefined || b === undefined) return false;
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

// ---- where to connect -----------------------------------------------------------------------------------------------

function resolveEndpoints(o: Bag): readonly Endpoint[] {
  const list = own(o, 'endpoints');
  if (list === undefined) {
    const single = endpointFrom(o, '');
    if (single === undefined) {
      throw invalidOption('type', 'port', 'one of port (with optional host), path or endpoints is required, got none');
    }
    return Object.freeze([single]);
  }
  const clash = ENDPOINT_KEYS.find((key) => own(o, key) !== undefined);
  if (clash !== undefined) {
    throw invalidOption(
      'type',
      clash,
      `${clash} cannot be combined with endpoints (list every address in endpoints), ` +
        `got ${clash} ${describeValue(own(o, clash))}`,
    );
  }
  if (!Array.isArray(list)) {
    throw invalidOption(
      'type',
      'endpoints',
      `endpoints must be an array of {host, port} or {path}, got ${describeValue(list)}`,
    );
  }
  if (list.length === 0) {
    throw invalidOption('range', 'endpoints', 'endpoints must hold at least one endpoint, got an empty array');
  }
  // An index loop, not map(): map skips the holes of a sparse array and would keep them.
  const resolved: Endpoint[] = [];
  for (let i = 0; i < list.length; i++) {
    const path = `endpoints[${i}]`;
    const entry: unknown = list[i];
    const e = endpointFrom(readObject(entry, path, ENDPOINT_KEYS, 'an object {host, port} or {path}'), `${path}.`);
    if (e === undefined) {
      throw invalidOption('type', path, `${path} must have port (with optional host) or path, got an empty object`);
    }
    resolved.push(e);
  }
  return Object.freeze(resolved);
}

/** The endpoint described by host/port/path in `o`, or undefined when none of them is set. */
function endpointFrom(o: Bag, prefix: string): Endpoint | undefined {
  const host = own(o, 'host');
  const port = own(o, 'port');
  const path = own(o, 'path');
  if (path !== undefined) {
    const clash = host !== undefined ? 'host' : port !== undefined ? 'port' : undefined;
    if (clash !== undefined) {
      throw invalidOption(
        'type',
        `${prefix}${clash}`,
        `${prefix}path cannot be combined with ${prefix}${clash}, ` +
          `got ${prefix}${clash} ${describeValue(clash === 'host' ? host : port)}`,
      );
    }
    return Object.freeze({ path: checkNonEmptyString(path, `${prefix}path`) });
  }
  if (port === undefined) {
    if (host === undefined) return undefined;
    throw invalidOption('type', `${prefix}port`, `${prefix}port is required with ${prefix}host, got undefined`);
  }
  // Port 0 means "any port" only when listening; a connection to it always fails.
  const checkedPort = checkNumber(port, `${prefix}port`, { min: 1, max: 65_535 });
  // 'localhost', like net.connect when only a port is given.
  const checkedHost = host === undefined ? 'localhost' : checkNonEmptyString(host, `${prefix}host`);
  return Object.freeze({ host: checkedHost, port: checkedPort });
}

function resolveTls(value: unknown): ResolvedOptions['tls'] {
  if (value === undefined || value === false) return undefined;
  if (value === true) return NO_TLS_OPTIONS;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidOption('type', 'tls', `tls must be a boolean or tls.connect() options, got ${describeValue(value)}`);
  }
  const copy: Bag = { ...(value as Bag) };
  for (const key of TLS_FORBIDDEN) {
    if (copy[key] !== undefined) {
      throw invalidOption(
        'type',
        `tls.${key}`,
        `tls.${key} is not allowed: the address comes from host/port/path/endpoints, ` +
          `got tls.${key} ${describeValue(copy[key])}`,
      );
    }
  }
  // Making a secure context costs up to milliseconds, and a fleet of sockets is usually made from equal options:
  // options equal to the last ones that passed need no second check.
  const known = shared.tls.find(copy);
  if (known !== undefined) return known;
  checkTlsConnectFields(copy);
  // Given a context, tls.connect() makes none and ignores the fields that would make one.
  if (copy.secureContext === undefined) checkSecureContext(copy);
  // Shallow: certificates and keys stay the caller's Buffers (typed arrays cannot be frozen).
  return shared.tls.dedupe(Object.freeze(copy));
}

/**
 * The tls.connect() options outside the secure context that Node would refuse. Node checks some of them only after
 * the TCP connection is under way, and a throw there leaves that connection open with nobody to close it.
 */
function checkTlsConnectFields(o: Bag): void {
  // Any string: an empty one is how a caller turns SNI off.
  const servername = own(o, 'servername');
  if (servername !== undefined && typeof servername !== 'string') {
    throw invalidOption('type', 'tls.servername', `tls.servername must be a string, got ${describeValue(servername)}`);
  }
  for (const key of ['checkServerIdentity', 'pskCallback', 'lookup'] as const) {
    const v = own(o, key);
    if (v !== undefined) checkFunction(v, `tls.${key}`);
  }
  // Node reads these as truthy or not: `rejectUnauthorized: 'false'` would quietly keep verification on.
  for (const key of ['rejectUnauthorized', 'requestOCSP', 'enableTrace', 'autoSelectFamily'] as const) {
    const v = own(o, key);
    if (v !== undefined) checkBoolean(v, `tls.${key}`);
  }
  const session = own(o, 'session');
  if (session !== undefined && !(session instanceof Uint8Array)) {
    throw invalidOption('type', 'tls.session', `tls.session must be a Buffer, got ${describeValue(session)}`);
  }
  checkAlpn(own(o, 'ALPNProtocols'));
  const localAddress = own(o, 'localAddress');
  if (localAddress !== undefined && (typeof localAddress !== 'string' || net.isIP(localAddress) === 0)) {
    const message = `tls.localAddress must be an IP address, got ${describeValue(localAddress)}`;
    throw invalidOption(typeof localAddress === 'string' ? 'range' : 'type', 'tls.localAddress', message);
  }
  const numbers = [
    ['minDHSize', { min: 1 }],
    ['localPort', { min: 0, max: 65_535 }],
    ['timeout', { min: 0, max: TIMER_MAX }],
    ['highWaterMark', { min: 0 }],
    ['autoSelectFamilyAttemptTimeout', { min: 1, max: TIMER_MAX }],
  ] as const;
  for (const [key, rule] of numbers) {
    const v = own(o, key);
    if (v !== undefined) checkNumber(v, `tls.${key}`, rule);
  }
  const context = own(o, 'secureContext');
  if (context !== undefined && !(context instanceof secureContextClass())) {
    const message = `tls.secureContext must be made by tls.createSecureContext(), got ${describeValue(context)}`;
    throw invalidOption('type', 'tls.secureContext', message);
  }
}

function checkAlpn(alpn: unknown): void {
  // A Buffer is taken as the wire format, already length-prefixed.
  if (alpn === undefined || alpn instanceof Uint8Array) return;
  const what = 'an array of protocol names (1..255 bytes each) or a Buffer';
  if (!Array.isArray(alpn)) {
    throw invalidOption('type', 'tls.ALPNProtocols', `tls.ALPNProtocols must be ${what}, got ${describeValue(alpn)}`);
  }
  for (let i = 0; i < alpn.length; i++) {
    const path = `tls.ALPNProtocols[${i}]`;
    const p: unknown = alpn[i];
    if (typeof p !== 'string' && !(p instanceof Uint8Array)) {
      throw invalidOption('type', path, `${path} must be a string or a Buffer, got ${describeValue(p)}`);
    }
    // An empty name makes Node 20 abort the whole process in a native assertion when the socket is created.
    const bytes = typeof p === 'string' ? Buffer.byteLength(p) : p.length;
    if (bytes === 0 || bytes > 255) {
      const got = typeof p === 'string' && bytes <= 64 ? JSON.stringify(p) : `${bytes} bytes`;
      throw invalidOption('range', path, `${path} must be 1..255 bytes long, got ${got}`);
    }
  }
}

let SecureContext: (new () => unknown) | undefined;
function secureContextClass(): new () => unknown {
  return (SecureContext ??= tls.createSecureContext().constructor as new () => unknown);
}

/** Makes the secure context tls.connect() would make, and names the field it refuses. */
function checkSecureContext(o: Bag): void {
  try {
    tls.createSecureContext(o);
    return;
  } catch (err) {
    for (const field of SECURE_CONTEXT_FIELDS) {
      if (o[field] === undefined) continue;
      const probe: Bag = { [field]: o[field] };
      for (const partner of SECURE_CONTEXT_PARTNERS[field] ?? []) probe[partner] = o[partner];
      try {
        tls.createSecureContext(probe);
      } catch (fieldErr) {
        throw refusedByNode(`tls.${field}`, fieldErr, describeTlsValue(field, o[field]));
      }
    }
    // Each field is fine alone but not together, e.g. a key that does not match the certificate.
    throw refusedByNode('tls', err, 'these tls options together');
  }
}

function refusedByNode(option: string, err: unknown, got: string): Error {
  const code = (err as { code?: unknown } | null)?.code;
  const why = isError(err) ? `${typeof code === 'string' ? `${code}: ` : ''}${err.message}` : describeValue(err);
  // A wrong type is Node's ERR_INVALID_ARG_TYPE; anything else is content OpenSSL could not use.
  const kind = code === 'ERR_INVALID_ARG_TYPE' ? 'type' : 'range';
  return invalidOption(kind, option, `${option} was refused by tls.createSecureContext() (${why}), got ${got}`, err);
}

/** Like describeValue, but a key or passphrase is only sized, and a long certificate is cut short. */
function describeTlsValue(field: string, value: unknown): string {
  const size = (v: unknown): string | undefined => {
    if (typeof v === 'string') return `a string of ${v.length} characters`;
    if (v instanceof Uint8Array) return `a Buffer of ${v.length} bytes`;
    if (Array.isArray(v)) return `an array of ${v.length}`;
    return undefined;
  };
  if (TLS_SECRETS.has(field)) return size(value) ?? describeValue(value);
  if (typeof value === 'string' && value.length > 60) return `${JSON.stringify(value.slice(0, 40))}… (${value.length} characters)`;
  if (value instanceof Uint8Array || Array.isArray(value)) return size(value)!;
  return describeValue(value);
}

// ---- reconnect, queue, diagnosis ------------------------------------------------------------------------------------

function resolveReconnect(value: unknown): ResolvedReconnect | false {
  if (value === false) return false;
  const o = value === undefined ? {} : readObject(value, 'reconnect', RECONNECT_KEYS, 'false or an object');
  // Infinity: a long-lived client keeps trying; maxElapsed or shouldReconnect bound it when that is wrong.
  const retries = optional(own(o, 'retries'), Infinity, (v) =>
    checkNumber(v, 'reconnect.retries', { min: 0, infinity: true }),
  );
  // 100 ms: a restarting peer is back quickly, yet a refused dial does not spin.
  const minDelay = optional(own(o, 'minDelay'), 100, (v) =>
    checkNumber(v, 'reconnect.minDelay', { min: 0, max: TIMER_MAX }),
  );
  // 30 s (or minDelay when larger): recovery is noticed within half a minute while a crowd of clients retries slowly.
  const maxDelay = optional(own(o, 'maxDelay'), Math.max(30_000, minDelay), (v) => {
    const n = checkNumber(v, 'reconnect.maxDelay', { min: 0, max: TIMER_MAX });
    if (n < minDelay) {
      const message = `reconnect.maxDelay must be >= reconnect.minDelay (${minDelay}), got ${n}`;
      throw invalidOption('range', 'reconnect.maxDelay', message);
    }
    return n;
  });
  // 2: the classic doubling reaches maxDelay in a handful of attempts.
  const factor = optional(own(o, 'factor'), 2, (v) =>
    checkNumber(v, 'reconnect.factor', { min: 1, integer: false }),
  );
  // 'full': fewest calls in AWS's backoff simulation (796 vs 813 equal, 999 decorrelated).
  const jitter = optional(own(o, 'jitter'), 'full' as JitterKind, (v) => checkOneOf(v, 'reconnect.jitter', JITTERS));
  // Infinity: retries and shouldReconnect are the usual limits; a time budget is opt-in.
  const maxElapsed = optional(own(o, 'maxElapsed'), Infinity, (v) =>
    checkNumber(v, 'reconnect.maxElapsed', { min: 1, infinity: true }),
  );
  // 5 s: a server that accepts and then drops at once must not reset the backoff to minDelay on every accept.
  const stableAfter = optional(own(o, 'stableAfter'), 5000, (v) =>
    checkNumber(v, 'reconnect.stableAfter', { min: 0, max: TIMER_MAX }),
  );
  const shouldReconnect = optionalFunction<ResolvedReconnect['shouldReconnect']>(
    own(o, 'shouldReconnect'),
    'reconnect.shouldReconnect',
  );
  return Object.freeze({ retries, minDelay, maxDelay, factor, jitter, maxElapsed, stableAfter, shouldReconnect });
}

function resolveOfflineQueue(value: unknown): ResolvedOfflineQueue | false {
  if (value === false) return false;
  const o = value === undefined ? {} : readObject(value, 'offlineQueue', QUEUE_KEYS, 'false or an object');
  // 4 MiB: seconds of typical message traffic survive an outage without letting memory grow unbounded.
  const maxBytes = optional(own(o, 'maxBytes'), 4 * 1024 * 1024, (v) =>
    checkNumber(v, 'offlineQueue.maxBytes', { min: 0 }),
  );
  // 32,768: maxBytes counts a per-write overhead and so bounds memory already; the count bounds how long the flush
  // after a reconnect holds the event loop (a few tens of ms for this many writes).
  const maxWrites = optional(own(o, 'maxWrites'), 32_768, (v) =>
    checkNumber(v, 'offlineQueue.maxWrites', { min: 0, infinity: true }),
  );
  // Infinity: whether a late write is still worth sending is the application's call.
  const maxAge = optional(own(o, 'maxAge'), Infinity, (v) =>
    checkNumber(v, 'offlineQueue.maxAge', { min: 1, max: TIMER_MAX, infinity: true }),
  );
  // 'reject': the caller learns about the loss at the write that caused it, not later.
  const overflow = optional(own(o, 'overflow'), 'reject' as ResolvedOfflineQueue['overflow'], (v) =>
    checkOneOf(v, 'offlineQueue.overflow', OVERFLOWS),
  );
  return Object.freeze({ maxBytes, maxWrites, maxAge, overflow });
}

function resolveDiagnose(value: unknown): ResolvedOptions['diagnose'] {
  const o = value === undefined ? {} : readObject(value, 'diagnose', DIAGNOSE_KEYS, 'an object');
  // 30 s: a flow quiet for less rarely outlives a middlebox's idle timer, so a reset then is not blamed on one.
  const idleThreshold = optional(own(o, 'idleThreshold'), 30_000, (v) =>
    checkNumber(v, 'diagnose.idleThreshold', { min: 1 }),
  );
  return Object.freeze({ idleThreshold });
}

// ---- liveness -------------------------------------------------------------------------------------------------------

function resolveDetectWithin(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw invalidOption('type', 'detectWithin', detectWithinMessage(value));
  if (!Number.isInteger(value) || value < MIN_DETECT_WITHIN || value > MAX_DETECT_WITHIN) {
    throw invalidOption('range', 'detectWithin', detectWithinMessage(value));
  }
  return value;
}

function resolveHeartbeat(
  value: unknown,
  derived: { interval: number; timeout: number },
  framing: FramingCodec | undefined,
): ResolvedHeartbeat | false {
  if (value === undefined || value === false) return false;
  const o = readObject(value, 'heartbeat', HEARTBEAT_KEYS, 'false or an object with a ping');
  const ping = resolvePing(own(o, 'ping'), framing);
  const interval = optional(own(o, 'interval'), derived.interval, (v) =>
    checkNumber(v, 'heartbeat.interval', { min: 1, max: TIMER_MAX }),
  );
  const timeout = optional(own(o, 'timeout'), derived.timeout, (v) =>
    checkNumber(v, 'heartbeat.timeout', { min: 1, max: TIMER_MAX }),
  );
  const isPong = optionalFunction<ResolvedHeartbeat['isPong']>(own(o, 'isPong'), 'heartbeat.isPong');
  if (isPong !== undefined && framing === undefined) {
    // Without framing there are no frames to recognise, so the function would never be called.
    const message = 'heartbeat.isPong needs the framing option (it is called per frame), got no framing';
    throw invalidOption('type', 'heartbeat.isPong', message);
  }
  return Object.freeze({ interval, timeout, ping, isPong });
}

function resolvePing(value: unknown, framing: FramingCodec | undefined): () => Buffer {
  const what = 'a non-empty Buffer, a non-empty string or a function returning a Buffer';
  if (typeof value === 'function') {
    const make = value as () => unknown;
    const ping = (): Buffer => {
      let result: unknown;
      try {
        result = make();
      } catch (err) {
        // A bug on this side: resock's own non-retried code, whatever code the thrown error carries.
        const why = isError(err) ? err.message : describeValue(err);
        throw codeError('ERR_RESOCK_PING_FAILED', `heartbeat.ping() threw: ${why}`, err);
      }
      const bytes = checkPingResult(result);
      // Encoded once here and again by the connection: a ping the framing refuses would otherwise be reported as the
      // peer's protocol violation. Only function pings pay for it, once per interval.
      if (framing !== undefined) checkPingFrame(bytes, framing, 'heartbeat.ping() must return');
      return bytes;
    };
    pingSources.set(ping, make);
    if (framing !== undefined) pingFramings.set(ping, framing);
    return ping;
  }
  if (typeof value === 'string' || value instanceof Uint8Array) {
    if (value.length === 0) {
      const empty = typeof value === 'string' ? 'string' : 'Buffer';
      throw invalidOption('range', 'heartbeat.ping', `heartbeat.ping must be ${what}, got an empty ${empty}`);
    }
    // Copied once: the same bytes go out on every ping even if the caller reuses its buffer.
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    if (framing !== undefined) checkPingFrame(bytes, framing, 'heartbeat.ping must be');
    const ping = (): Buffer => bytes;
    pingSources.set(ping, typeof value === 'string' ? value : bytes);
    return ping;
  }
  throw invalidOption('type', 'heartbeat.ping', `heartbeat.ping must be ${what}, got ${describeValue(value)}`);
}

/** Throws ERR_RESOCK_INVALID_OPTION naming heartbeat.ping when the framing cannot carry `bytes` as one frame. */
function checkPingFrame(bytes: Buffer, framing: FramingCodec, rule: string): void {
  try {
    framing.encode(bytes);
  } catch (err) {
    const why = isError(err) ? err.message : describeValue(err);
    const message = `${rule} one frame the ${framing.name} framing can send (${why}), got ${describePing(bytes)}`;
    throw invalidOption('range', 'heartbeat.ping', message, err);
  }
}

function describePing(bytes: Buffer): string {
  return bytes.length <= 64 ? JSON.stringify(bytes.toString('utf8')) : `a ${bytes.length}-byte Buffer`;
}

function checkPingResult(result: unknown): Buffer {
  if (!(result instanceof Uint8Array)) {
    const message = `heartbeat.ping() must return a Buffer, got ${describeValue(result)}`;
    throw invalidOption('type', 'heartbeat.ping', message);
  }
  if (result.length === 0) {
    const message = 'heartbeat.ping() must return a non-empty Buffer, got an empty Buffer';
    throw invalidOption('range', 'heartbeat.ping', message);
  }
  return Buffer.isBuffer(result) ? result : Buffer.from(result.buffer, result.byteOffset, result.byteLength);
}

function resolveKeepAlive(value: unknown, derived: ResolvedKeepAlive): ResolvedKeepAlive | false {
  if (value === false) return false;
  if (value === undefined) return Object.freeze({ ...derived });
  const o = readObject(value, 'keepAlive', KEEPALIVE_KEYS, 'false or an object (use {} for the derived settings)');
  // setKeepAlive and TCP_KEEPINTVL take whole seconds, 1..32767: values are floored, so up to 32767999 ms is accepted.
  const seconds = { min: 1000, max: 32_767_999, why: 'the kernel floors it to whole seconds, 1..32767' };
  const idle = optional(own(o, 'idle'), derived.idle, (v) => checkNumber(v, 'keepAlive.idle', seconds));
  const interval = optional(own(o, 'interval'), derived.interval, (v) => checkNumber(v, 'keepAlive.interval', seconds));
  const count = optional(own(o, 'count'), derived.count, (v) =>
    checkNumber(v, 'keepAlive.count', { min: 1, max: 127, why: "the kernel's TCP_KEEPCNT limit" }),
  );
  // Derived from the final idle/interval/count rather than taken from detectWithin: once TCP_USER_TIMEOUT is set Linux
  // ignores TCP_KEEPCNT and aborts an idle connection after userTimeout instead, so a mismatch would override them.
  // With none of the three given the derived one stands: below detectWithin 2500 it is shorter than their sum.
  const ownTiming = own(o, 'idle') !== undefined || own(o, 'interval') !== undefined || own(o, 'count') !== undefined;
  const fallbackUserTimeout = ownTiming ? matchingUserTimeout(idle, interval, count) : derived.userTimeout;
  const userTimeout = optional(own(o, 'userTimeout'), fallbackUserTimeout, (v) =>
    checkNumber(v, 'keepAlive.userTimeout', { min: 0, max: TIMER_MAX, why: '0 keeps the kernel default' }),
  );
  return Object.freeze({ idle, interval, count, userTimeout });
}

// ---- the rest -------------------------------------------------------------------------------------------------------

function resolveFraming(value: unknown): FramingCodec | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) {
    const message = `framing must be a codec object {name, decoder, encode}, got ${describeValue(value)}`;
    throw invalidOption('type', 'framing', message);
  }
  // Plain property reads: a codec may be a class instance with its methods on the prototype. It stays unfrozen.
  const codec = value as Partial<Record<keyof FramingCodec, unknown>>;
  if (typeof codec.name !== 'string' || codec.name.length === 0) {
    const message = `framing.name must be a non-empty string, got ${describeValue(codec.name)}`;
    throw invalidOption('type', 'framing.name', message);
  }
  checkFunction(codec.decoder, 'framing.decoder');
  checkFunction(codec.encode, 'framing.encode');
  return value as FramingCodec;
}

function resolveSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw invalidOption('type', 'signal', `signal must be an AbortSignal, got ${describeValue(value)}`);
}

// ---- checks ---------------------------------------------------------------------------------------------------------

function own(o: Bag, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** `undefined` means "not given" everywhere, so spreading partial options never trips a check. */
function optional<T>(value: unknown, fallback: T, check: (v: unknown) => T): T {
  return value === undefined ? fallback : check(value);
}

// An object whose prototype is a root prototype: object literals, Object.create(null), and literals from another realm.
function isPlainObject(value: unknown): value is Bag {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** Checks that `value` is a plain object whose own keys are all in `known`; `prefix` is how its keys are named. */
function readObject(
  value: unknown,
  path: string,
  known: readonly string[],
  expected: string,
  prefix = `${path}.`,
): Bag {
  if (!isPlainObject(value)) {
    throw invalidOption('type', path, `${path} must be ${expected}, got ${describeValue(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const near = closest(key, known);
    const hint =
      near === undefined ? `; known options: ${known.join(', ')}` : ` (did you mean ${JSON.stringify(prefix + near)}?)`;
    throw invalidOption('type', prefix + key, `unknown option ${JSON.stringify(prefix + key)}${hint}`);
  }
  return value;
}

interface NumberRule {
  min: number;
  max?: number;
  /** Default true. */
  integer?: boolean;
  infinity?: boolean;
  why?: string;
}

function describeRule(rule: NumberRule): string {
  const integer = rule.integer !== false;
  const kind = integer ? 'an integer' : 'a finite number';
  const range = rule.max === undefined ? `${kind} >= ${rule.min}` : `${kind} in ${rule.min}..${rule.max}`;
  return `${range}${rule.infinity ? ' or Infinity' : ''}${rule.why ? ` (${rule.why})` : ''}`;
}

function checkNumber(value: unknown, path: string, rule: NumberRule): number {
  if (typeof value !== 'number') {
    throw invalidOption('type', path, `${path} must be ${describeRule(rule)}, got ${describeValue(value)}`);
  }
  if (value === Infinity && rule.infinity) return value;
  const wholeEnough = rule.integer === false ? Number.isFinite(value) : Number.isInteger(value);
  if (!wholeEnough || value < rule.min || (rule.max !== undefined && value > rule.max)) {
    throw invalidOption('range', path, `${path} must be ${describeRule(rule)}, got ${describeValue(value)}`);
  }
  return value;
}

function checkBoolean(value: unknown, path: string): boolean {
  if (typeof value === 'boolean') return value;
  throw invalidOption('type', path, `${path} must be a boolean, got ${describeValue(value)}`);
}

function checkNonEmptyString(value: unknown, path: string): string {
  if (typeof value !== 'string') {
    throw invalidOption('type', path, `${path} must be a non-empty string, got ${describeValue(value)}`);
  }
  if (value.length === 0) throw invalidOption('range', path, `${path} must be a non-empty string, got ""`);
  return value;
}

function checkOneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  if ((allowed as readonly unknown[]).includes(value)) return value as T;
  const list = allowed.map((a) => JSON.stringify(a)).join(', ');
  // A string outside the set is a value out of range; anything else is the wrong type.
  const kind = typeof value === 'string' ? 'range' : 'type';
  throw invalidOption(kind, path, `${path} must be one of ${list}, got ${describeValue(value)}`);
}

function checkFunction(value: unknown, path: string): void {
  if (typeof value !== 'function') {
    throw invalidOption('type', path, `${path} must be a function, got ${describeValue(value)}`);
  }
}

function optionalFunction<T>(value: unknown, path: string): T | undefined {
  if (value === undefined) return undefined;
  checkFunction(value, path);
  return value as T;
}

// ---- suggestions ----------------------------------------------------------------------------------------------------

/** The known name nearest to `name` (case-insensitive, a transposition counts once), if near enough to be a typo. */
function closest(name: string, known: readonly string[]): string | undefined {
  // Long junk cannot be a typo of a short option name; skipping it also bounds the work.
  if (name.length > 40) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions. */
function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let previous: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      current.push(d);
    }
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}
