// TCP keepalive tuning on a connected socket. Node sets SO_KEEPALIVE and TCP_KEEPIDLE (setKeepAlive) but pins
// TCP_KEEPINTVL/TCP_KEEPCNT to 1 s/10 and has no TCP_USER_TIMEOUT, so those go through setsockopt(2) on the
// socket's descriptor via the optional koffi FFI package. Every failure is reported as a problem, never thrown.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { ResolvedKeepAlive, TcpInfo } from './types.js';

// Linux numbering (<asm-generic/socket.h>, <netinet/tcp.h>); macOS and the BSDs use other numbers and names.
const SOL_SOCKET = 1;
const SO_KEEPALIVE = 9;
const IPPROTO_TCP = 6;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;
const TCP_USER_TIMEOUT = 18;
const TCP_INFO = 11;

/** Returned by a backend call that failed without an errno to report. */
const UNKNOWN_ERRNO = -1;

export interface KeepAliveApplied {
  idle: boolean;
  interval: boolean;
  count: boolean;
  userTimeout: boolean;
}

export interface KeepAliveReading {
  keepAlive: boolean;
  /** ms (the kernel keeps whole seconds). */
  idle: number;
  /** ms (the kernel keeps whole seconds). */
  interval: number;
  count: number;
  /** ms; 0 means the kernel default (tcp_retries2). */
  userTimeout: number;
}

/**
 * @internal The two libc calls keepalive needs, for int-valued options only. Exported so tests can swap it.
 * Both return 0 on success, otherwise the errno (or -1 when none is known); `get` leaves the value in `out[0]`.
 */
export interface SockoptBackend {
  set(fd: number, level: number, name: number, value: number): number;
  get(fd: number, level: number, name: number, out: Int32Array): number;
  /** Renders an errno returned by set/get, e.g. "EINVAL". */
  describeErrno(errno: number): string;
  /**
   * getsockopt into a byte buffer (struct-valued options such as TCP_INFO): the length the kernel filled in, or a
   * negative errno. Optional so a test backend that only fakes int options need not provide it.
   */
  getBytes?(fd: number, level: number, name: number, out: Uint8Array): number;
}

type Loaded = { backend: SockoptBackend; reason?: undefined } | { backend: undefined; reason: string };

// Resolved on first use and kept: loading the native module and declaring the functions costs far more than a call.
let loaded: Loaded | undefined;

// The shape of the part of koffi used here, declared locally so no koffi type leaks into the published typings.
interface KoffiLibrary {
  func(definition: string): (...args: unknown[]) => unknown;
}
interface KoffiModule {
  load(path: string | null): KoffiLibrary;
  errno?: () => number;
  os?: { errno?: Record<string, number> };
}

// First line only: Node's module errors append a multi-line require stack that does not belong in a warning.
function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0] ?? '';
}

function loadBackend(): Loaded {
  if (process.platform !== 'linux') {
    return { backend: undefined, reason: `setsockopt keepalive tuning is not supported on ${process.platform}` };
  }
  let koffi: KoffiModule;
  try {
    koffi = createRequire(import.meta.url)('koffi') as KoffiModule;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'MODULE_NOT_FOUND') {
      return { backend: undefined, reason: 'the optional dependency koffi is not installed' };
    }
    return { backend: undefined, reason: `the optional dependency koffi could not be loaded: ${messageOf(err)}` };
  }
  try {
    return { backend: koffiBackend(koffi) };
  } catch (err) {
    return { backend: undefined, reason: `koffi could not bind setsockopt/getsockopt from libc: ${messageOf(err)}` };
  }
}

function openLibc(koffi: KoffiModule): KoffiLibrary {
  try {
    return koffi.load('libc.so.6');
  } catch (err) {
    // musl has no libc.so.6; the process image itself exports setsockopt there.
    try {
      return koffi.load(null);
    } catch {
      throw err;
    }
  }
}

function koffiBackend(koffi: KoffiModule): SockoptBackend {
  const libc = openLibc(koffi);
  const setsockopt = libc.func('int setsockopt(int, int, int, const void*, uint32)');
  const getsockopt = libc.func('int getsockopt(int, int, int, _Out_ void*, _Inout_ uint32*)');
  // Calls are synchronous on one thread, so one scratch value and length serve every call.
  const value = new Int32Array(1);
  const length = new Uint32Array(1);
  const lastErrno = (): number => {
    const errno = typeof koffi.errno === 'function' ? koffi.errno() : 0;
    return errno > 0 ? errno : UNKNOWN_ERRNO;
  };
  let names: Map<number, string> | undefined;
  return {
    set(fd, level, name, v) {
      value[0] = v;
      return setsockopt(fd, level, name, value, 4) === 0 ? 0 : lastErrno();
    },
    get(fd, level, name, out) {
      length[0] = 4;
      if (getsockopt(fd, level, name, value, length) !== 0) return lastErrno();
      out[0] = value[0] ?? 0;
      return 0;
    },
    getBytes(fd, level, name, out) {
      length[0] = out.byteLength;
      // koffi passes a TypedArray to a void* by pointer: the kernel writes straight into `out`, nothing is copied.
      if (getsockopt(fd, level, name, out, length) !== 0) return -lastErrno();
      return length[0] ?? 0;
    },
    describeErrno(errno) {
      if (errno === UNKNOWN_ERRNO) return 'unknown error';
      names ??= new Map(Object.entries(koffi.os?.errno ?? {}).map(([n, code]) => [code, n]));
      return names.get(errno) ?? `errno ${errno}`;
    },
  };
}

function backendOrReason(): Loaded {
  return (loaded ??= loadBackend());
}

/**
 * @internal Test hook, not part of the public API: `null` makes the FFI path unavailable, a backend replaces it,
 * `undefined` restores lazy loading of koffi.
 */
export function __setSockoptForTests(backend: SockoptBackend | null | undefined): void {
  if (backend === undefined) loaded = undefined;
  else if (backend === null) loaded = { backend: undefined, reason: 'setsockopt disabled by a test hook' };
  else loaded = { backend };
}

/** Whether TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT can be set here, and why not. Loads koffi on first call. */
export function sockoptSupport(): { available: boolean; reason?: string } {
  const state = backendOrReason();
  return state.backend ? { available: true } : { available: false, reason: state.reason };
}

type Transport = { kind: 'tcp'; fd: number | undefined } | { kind: 'ipc' } | { kind: 'other'; name: string } | { kind: 'closed' };

interface HandleLike {
  fd?: unknown;
  _parent?: HandleLike | null;
}

// Node keeps the OS socket in `_handle`: a TCP wrap for net sockets, a TLSWrap whose `_parent` is the TCP wrap for
// TLS (TLSWrap also forwards `fd`). There is no public API for either, hence the defensive reads.
function transportOf(socket: Socket): Transport {
  const handle = (socket as unknown as { _handle?: HandleLike | null })._handle;
  if (handle === null || handle === undefined) return { kind: 'closed' };
  const wrap = handle._parent ?? handle;
  const name = (wrap as { constructor?: { name?: unknown } }).constructor?.name;
  if (name === 'Pipe') return { kind: 'ipc' };
  if (name !== 'TCP') return { kind: 'other', name: typeof name === 'string' ? name : 'unknown' };
  const fd = typeof wrap.fd === 'number' ? wrap.fd : handle.fd;
  return { kind: 'tcp', fd: typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined };
}

function notApplicable(transport: Exclude<Transport, { kind: 'tcp' }>): string {
  switch (transport.kind) {
    case 'ipc':
      return 'keepalive does not apply to IPC sockets';
    case 'closed':
      return 'keepalive not applied: the socket has no open handle (not connected or already destroyed)';
    case 'other':
      return `keepalive does not apply: the socket is not carried by TCP (${transport.name})`;
  }
}

// Reads are synchronous on one thread, so one value slot serves every call.
const scratch = new Int32Array(1);

const NONE_APPLIED: Readonly<KeepAliveApplied> = Object.freeze({
  idle: false,
  interval: false,
  count: false,
  userTimeout: false,
});

/**
 * Applies `ka` to a connected TCP or TLS socket: idle through `setKeepAlive`, then interval, count and user timeout
 * through setsockopt (after it, because setKeepAlive resets interval and count to 1 s and 10).
 * Never throws; `problems` names each setting that was not applied and why.
 */
export function applyKeepAlive(
  socket: Socket,
  ka: ResolvedKeepAlive,
): { applied: KeepAliveApplied; problems: string[] } {
  const transport = transportOf(socket);
  if (transport.kind !== 'tcp') return { applied: { ...NONE_APPLIED }, problems: [notApplicable(transport)] };

  const applied: KeepAliveApplied = { ...NONE_APPLIED };
  const problems: string[] = [];
  try {
    socket.setKeepAlive(true, ka.idle);
    applied.idle = true;
  } catch (err) {
    problems.push(`setKeepAlive(true, ${ka.idle}) threw: ${messageOf(err)}`);
  }

  const { backend, reason } = backendOrReason();
  const unsupported: string[] = ['interval', 'count'];
  if (ka.userTimeout > 0) unsupported.push('userTimeout');
  if (backend === undefined || transport.fd === undefined) {
    const why = reason ?? 'the socket has no file descriptor';
    problems.push(`keepalive ${unsupported.join(', ')} not applied: ${why}`);
    return { applied, problems };
  }

  try {
    tuneBeyondNode(backend, transport.fd, ka, applied, problems);
  } catch (err) {
    problems.push(`setsockopt threw: ${messageOf(err)}`);
  }
  return { applied, problems };
}

function tuneBeyondNode(
  backend: SockoptBackend,
  fd: number,
  ka: ResolvedKeepAlive,
  applied: KeepAliveApplied,
  problems: string[],
): void {
  const set = (label: string, name: number, value: number): boolean => {
    const errno = backend.set(fd, IPPROTO_TCP, name, value);
    if (errno === 0) return true;
    problems.push(`setsockopt(${label}, ${value}) failed: ${backend.describeErrno(errno)}`);
    return false;
  };

  // setKeepAlive swallows libuv's errors (an idle over the kernel's 32767 s limit fails silently); read it back.
  if (applied.idle) {
    const idleSeconds = Math.floor(ka.idle / 1000);
    const onErrno = backend.get(fd, SOL_SOCKET, SO_KEEPALIVE, scratch);
    const on = scratch[0];
    const idleErrno = onErrno === 0 ? backend.get(fd, IPPROTO_TCP, TCP_KEEPIDLE, scratch) : 0;
    const idle = scratch[0];
    if (onErrno !== 0 || idleErrno !== 0) {
      const what = onErrno !== 0 ? 'SO_KEEPALIVE' : 'TCP_KEEPIDLE';
      problems.push(`getsockopt(${what}) failed: ${backend.describeErrno(onErrno || idleErrno)}; idle not verified`);
    } else if (on === 0 || idle !== idleSeconds) {
      applied.idle = false;
      problems.push(
        `setKeepAlive(true, ${ka.idle}) left SO_KEEPALIVE=${on}, TCP_KEEPIDLE=${idle} s instead of 1, ${idleSeconds} s`,
      );
    }
  }
  applied.interval = set('TCP_KEEPINTVL', TCP_KEEPINTVL, Math.max(1, Math.floor(ka.interval / 1000)));
  applied.count = set('TCP_KEEPCNT', TCP_KEEPCNT, ka.count);
  // 0 is the kernel's own "no user timeout", which is already in place on a fresh socket.
  if (ka.userTimeout > 0) applied.userTimeout = set('TCP_USER_TIMEOUT', TCP_USER_TIMEOUT, ka.userTimeout);
}

/** The keepalive settings the kernel holds for a TCP or TLS socket, in ms; undefined when they cannot be read. */
export function readKeepAlive(socket: Socket): KeepAliveReading | undefined {
  const transport = transportOf(socket);
  if (transport.kind !== 'tcp' || transport.fd === undefined) return undefined;
  const { backend } = backendOrReason();
  if (backend === undefined) return undefined;
  const fd = transport.fd;
  const read = (level: number, name: number): number | undefined => {
    try {
      return backend.get(fd, level, name, scratch) === 0 ? (scratch[0] ?? 0) : undefined;
    } catch {
      return undefined;
    }
  };
  const keepAlive = read(SOL_SOCKET, SO_KEEPALIVE);
  const idle = read(IPPROTO_TCP, TCP_KEEPIDLE);
  const interval = read(IPPROTO_TCP, TCP_KEEPINTVL);
  const count = read(IPPROTO_TCP, TCP_KEEPCNT);
  const userTimeout = read(IPPROTO_TCP, TCP_USER_TIMEOUT);
  if (
    keepAlive === undefined ||
    idle === undefined ||
    interval === undefined ||
    count === undefined ||
    userTimeout === undefined
  ) {
    return undefined;
  }
  return { keepAlive: keepAlive !== 0, idle: idle * 1000, interval: interval * 1000, count, userTimeout };
}

// ---- TCP_INFO ---------------------------------------------------------------------------------------------------

// Offsets in Linux's struct tcp_info (<linux/tcp.h>): eight u8 fields, then u32 fields from byte 8 on. The struct only
// ever grows at its end, so these hold for every kernel that returns at least TCP_INFO_MIN bytes.
const TI_STATE = 0;
const TI_RETRANSMITS = 2;
const TI_PROBES = 3;
const TI_BACKOFF = 4;
const TI_RTO = 8; // µs
const TI_UNACKED = 24;
const TI_LOST = 32;
const TI_RETRANS = 36;
const TI_LAST_DATA_SENT = 44; // ms
const TI_LAST_DATA_RECV = 52; // ms
const TI_LAST_ACK_RECV = 56; // ms
const TI_RTT = 68; // µs
const TI_RTTVAR = 72; // µs
const TI_SND_CWND = 80;
const TI_TOTAL_RETRANS = 100;
/** Bytes up to and including tcpi_total_retrans (Linux 2.6.x on). */
const TCP_INFO_MIN = 104;
/** Room for the whole struct of current kernels (about 280 bytes); the kernel copies no more than it is given. */
const TCP_INFO_SIZE = 512;

// Linux's TCP states (include/net/tcp_states.h), by number.
const TCP_STATES = [
  'unknown',
  'established',
  'syn-sent',
  'syn-recv',
  'fin-wait1',
  'fin-wait2',
  'time-wait',
  'close',
  'close-wait',
  'last-ack',
  'listen',
  'closing',
] as const;

// Reads are synchronous on one thread, so one buffer serves every call.
let tcpInfoScratch: Buffer | undefined;

/** Parses the fields resock uses from a struct tcp_info; undefined when the kernel returned too little. */
export function parseTcpInfo(buf: Uint8Array, length: number): TcpInfo | undefined {
  if (length < TCP_INFO_MIN || buf.byteLength < TCP_INFO_MIN) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u32 = (offset: number): number => view.getUint32(offset, true);
  const state = buf[TI_STATE] ?? 0;
  return {
    state: TCP_STATES[state] ?? `state-${state}`,
    retransmits: buf[TI_RETRANSMITS] ?? 0,
    probes: buf[TI_PROBES] ?? 0,
    backoff: buf[TI_BACKOFF] ?? 0,
    rto: u32(TI_RTO) / 1000,
    unacked: u32(TI_UNACKED),
    lost: u32(TI_LOST),
    retrans: u32(TI_RETRANS),
    lastDataSent: u32(TI_LAST_DATA_SENT),
    lastAckRecv: u32(TI_LAST_ACK_RECV),
    lastDataRecv: u32(TI_LAST_DATA_RECV),
    rtt: u32(TI_RTT) / 1000,
    rttvar: u32(TI_RTTVAR) / 1000,
    sndCwnd: u32(TI_SND_CWND),
    totalRetrans: u32(TI_TOTAL_RETRANS),
  };
}

/**
 * The kernel's own view of a TCP or TLS connection (getsockopt TCP_INFO), or undefined where it cannot be had: not
 * Linux, koffi missing, IPC, or the descriptor already closed. Never throws. About a microsecond (see CHANGELOG).
 */
export function readTcpInfo(socket: Socket): TcpInfo | undefined {
  const transport = transportOf(socket);
  if (transport.kind !== 'tcp' || transport.fd === undefined) return undefined;
  const { backend } = backendOrReason();
  if (backend?.getBytes === undefined) return undefined;
  const buf = (tcpInfoScratch ??= Buffer.alloc(TCP_INFO_SIZE));
  try {
    const length = backend.getBytes(transport.fd, IPPROTO_TCP, TCP_INFO, buf);
    return length < 0 ? undefined : parseTcpInfo(buf, length);
  } catch {
    return undefined;
  }
}
