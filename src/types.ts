// The public data shapes of resock: options as the user writes them, options as resock resolves them,
// failures, and the event map. Behaviour lives elsewhere; this file only names things.
import type { Socket } from 'node:net';
import type { FailureErrorCode } from './errors.js';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';

export type Endpoint = { host: string; port: number } | { path: string };

export type JitterKind = 'full' | 'equal' | 'decorrelated' | 'none';

export interface ReconnectOptions {
  /** Attempts after a failure before giving up. */
  retries?: number;
  /** Base delay in ms of the first retry. */
  minDelay?: number;
  /** Cap in ms on any one delay, applied before the jitter. */
  maxDelay?: number;
  /** Growth of the delay per attempt. */
  factor?: number;
  jitter?: JitterKind;
  /** Give up once this many ms have passed since the first failure of a run of failures. */
  maxElapsed?: number;
  /** A connection must stay open this long (ms) before the attempt count and backoff reset. */
  stableAfter?: number;
  /** Return false to give up on this failure. */
  shouldReconnect?: (failure: Failure) => boolean;
}

export interface OfflineQueueOptions {
  maxBytes?: number;
  maxWrites?: number;
  /** ms a write may wait in the queue before it is rejected with ERR_RESOCK_EXPIRED. */
  maxAge?: number;
  overflow?: 'reject' | 'drop-oldest';
}

export interface DiagnoseOptions {
  /** Quiet time in ms (both directions) after which a reset on the next write is blamed on an intermediary. */
  idleThreshold?: number;
}

export interface HeartbeatOptions {
  /** ms without inbound bytes before a ping is sent. */
  interval?: number;
  /** ms to wait for a reply (or any inbound byte) after a ping. */
  timeout?: number;
  ping: Buffer | string | (() => Buffer);
  /**
   * With framing: which inbound frames are replies to pings. Only they end the wait for a reply; they are not emitted
   * as 'message'. For a reply that spans several frames, answer 'more' while the frames so far could still be one:
   * resock holds them back and calls again with the next frame and the frames held (`held`, oldest first). `true`
   * takes them all as the reply; `false` delivers them as messages (at most 64 are held: then `false` is assumed).
   */
  isPong?: (frame: Buffer, held: readonly Buffer[]) => boolean | 'more';
}

export interface KeepAliveOptions {
  /** ms of idleness before the first probe (TCP_KEEPIDLE, whole seconds in the kernel). */
  idle?: number;
  /** ms between probes (TCP_KEEPINTVL, whole seconds in the kernel). */
  interval?: number;
  /** Unanswered probes before the kernel drops the connection (TCP_KEEPCNT). */
  count?: number;
  /** ms unacknowledged data may stay unacknowledged before the kernel drops the connection (TCP_USER_TIMEOUT). */
  userTimeout?: number;
}

/** Turns a byte stream into frames and frames into bytes. One decoder instance per connection. */
export interface FramingCodec {
  readonly name: string;
  /** A fresh decoder for a new connection. */
  decoder(): FrameDecoder;
  /** The bytes that carry one frame on the wire. */
  encode(frame: Buffer): Buffer;
}

export interface FrameDecoder {
  /** Feeds a chunk; calls onFrame for each whole frame. Throws a ResockError with code ERR_RESOCK_FRAME_TOO_LONG or ERR_RESOCK_PROTOCOL on bad input. */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): void;
  /** Bytes held waiting for the rest of a frame. */
  readonly buffered: number;
}

export type OnConnect = (socket: Socket, signal: AbortSignal) => void | Promise<void>;

export interface ResilientSocketOptions {
  host?: string;
  port?: number;
  path?: string;
  endpoints?: Endpoint[];
  tls?: boolean | TlsConnectionOptions;
  connectTimeout?: number;
  noDelay?: boolean;
  onConnect?: OnConnect;
  reconnect?: false | ReconnectOptions;
  offlineQueue?: false | OfflineQueueOptions;
  diagnose?: DiagnoseOptions;
  heartbeat?: false | HeartbeatOptions;
  keepAlive?: false | KeepAliveOptions;
  framing?: FramingCodec;
  /** One knob: derive heartbeat and keepalive so every dead or hung connection is found within this many ms. */
  detectWithin?: number;
  signal?: AbortSignal;
}

export interface ResolvedReconnect {
  readonly retries: number;
  readonly minDelay: number;
  readonly maxDelay: number;
  readonly factor: number;
  readonly jitter: JitterKind;
  readonly maxElapsed: number;
  readonly stableAfter: number;
  readonly shouldReconnect: ((failure: Failure) => boolean) | undefined;
}

export interface ResolvedOfflineQueue {
  readonly maxBytes: number;
  readonly maxWrites: number;
  readonly maxAge: number;
  readonly overflow: 'reject' | 'drop-oldest';
}

export interface ResolvedHeartbeat {
  readonly interval: number;
  readonly timeout: number;
  readonly ping: () => Buffer;
  readonly isPong: ((frame: Buffer, held: readonly Buffer[]) => boolean | 'more') | undefined;
}

export interface ResolvedKeepAlive {
  readonly idle: number;
  readonly interval: number;
  readonly count: number;
  readonly userTimeout: number;
}

export interface ResolvedOptions {
  readonly endpoints: readonly Endpoint[];
  readonly tls: TlsConnectionOptions | undefined;
  readonly connectTimeout: number;
  readonly noDelay: boolean;
  readonly onConnect: OnConnect | undefined;
  readonly reconnect: ResolvedReconnect | false;
  readonly offlineQueue: ResolvedOfflineQueue | false;
  readonly diagnose: { readonly idleThreshold: number };
  readonly heartbeat: ResolvedHeartbeat | false;
  readonly keepAlive: ResolvedKeepAlive | false;
  readonly framing: FramingCodec | undefined;
  readonly detectWithin: number | undefined;
  readonly signal: AbortSignal | undefined;
}

export type FailureKind =
  | 'reset'
  | 'broken-pipe'
  | 'peer-closed'
  | 'refused'
  | 'connect-timeout'
  | 'handshake'
  | 'heartbeat-timeout'
  | 'keepalive-timeout'
  | 'unreachable'
  | 'dns'
  | 'tls'
  | 'aborted'
  | 'resource'
  | 'protocol'
  | 'unknown';

export type FailurePhase = 'connect' | 'handshake' | 'open';

export type DiagnosisCause =
  | 'intermediary-idle-timeout'
  | 'peer-crashed'
  | 'peer-restarting'
  | 'peer-down'
  | 'peer-closed-gracefully'
  | 'peer-idle-timeout'
  | 'peer-host-restarted'
  | 'peer-rejected'
  | 'peer-unresponsive'
  | 'path-dead'
  | 'local-resource-exhaustion'
  | 'write-after-reset'
  | 'dns-failure'
  | 'tls-misconfigured'
  | 'local-abort'
  | 'protocol-violation'
  | 'unknown';

export interface Diagnosis {
  cause: DiagnosisCause;
  summary: string;
  advice: string;
}

/**
 * The kernel's view of a TCP connection (Linux struct tcp_info), read while its descriptor still exists. Times are ms;
 * `last*` fields are ms before the reading. Absent where the platform or the optional koffi package does not give it.
 */
export interface TcpInfo {
  /** TCP state at the reading: 'established', 'close-wait', 'close' (after a reset or timeout)… */
  state: string;
  /** Consecutive retransmission timeouts of the oldest unacknowledged segment (tcpi_retransmits). */
  retransmits: number;
  /** Unanswered zero-window or keepalive probes (tcpi_probes). */
  probes: number;
  /** Exponential backoff of the retransmission timer (tcpi_backoff). */
  backoff: number;
  /** Retransmission timeout, ms. */
  rto: number;
  /** Segments sent and not yet acknowledged. Linux empties the queue on reset or timeout, so 0 afterwards. */
  unacked: number;
  lost: number;
  /** Retransmitted segments not yet acknowledged. */
  retrans: number;
  /** ms since new data was last sent. */
  lastDataSent: number;
  /** ms since an ACK was last received: above `lastDataSent`, the last data sent was never acknowledged. */
  lastAckRecv: number;
  /** ms since data was last received. */
  lastDataRecv: number;
  /** Smoothed round-trip time, ms (fractional). */
  rtt: number;
  rttvar: number;
  sndCwnd: number;
  /** Retransmissions over the connection's life. */
  totalRetrans: number;
}

/** What became of the bytes accepted for one connection when it was lost. The three add up to what was accepted. */
export interface WriteAccount {
  /** Written before a heartbeat whose reply came back: the peer received them. */
  confirmedBytes: number;
  /** Handed to the kernel after the last confirmation: may or may not have reached the peer. */
  unconfirmedBytes: number;
  /** Never left the process: back at the head of the offline queue (or rejected when there is no queue). */
  requeuedBytes: number;
}

/**
 * The `code` of a failure: resock's own, the errno and TLS codes Node raises, or any other code an error carried
 * (hence the open end, which keeps editors completing the known ones).
 */
export type FailureCode =
  | FailureErrorCode
  | 'ECONNRESET'
  | 'ECONNABORTED'
  | 'EPIPE'
  | 'ECONNREFUSED'
  | 'ENOENT'
  | 'ETIMEDOUT'
  | 'EHOSTUNREACH'
  | 'ENETUNREACH'
  | 'EHOSTDOWN'
  | 'ENETDOWN'
  | 'ENOTFOUND'
  | 'EAI_AGAIN'
  | 'EAI_FAIL'
  | 'EAI_NONAME'
  | 'EMFILE'
  | 'ENFILE'
  | 'EADDRNOTAVAIL'
  | 'EADDRINUSE'
  | 'ENOBUFS'
  | 'ENOMEM'
  | 'EPROTO'
  | 'ABORT_ERR'
  | 'ERR_STREAM_WRITE_AFTER_END'
  | (string & {});

/** What a 'warning' event reports. */
export type WarningCode = 'EVENT_LOOP_STALL' | 'KEEPALIVE_NOT_APPLIED' | 'PEER_IDLE_LIMIT';

export interface ResockWarning {
  code: WarningCode;
  message: string;
}

export interface Failure {
  kind: FailureKind;
  code: FailureCode;
  message: string;
  phase: FailurePhase;
  retryable: boolean;
  endpoint: Endpoint;
  attempt: number;
  at: number;
  connectionAge?: number;
  idleFor?: number;
  sinceLastWrite?: number;
  bytesRead: number;
  bytesWritten: number;
  queuedBytes: number;
  diagnosis: Diagnosis;
  writes?: WriteAccount;
  /** The kernel's TCP_INFO at the moment the failure was judged, before the descriptor closed (Linux with koffi). */
  tcp?: TcpInfo;
  error?: Error;
}

export type SocketState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

export type CloseReason = 'closed' | 'aborted' | 'gave-up' | 'fatal';

export interface KeepAliveReport {
  requested: ResolvedKeepAlive | false;
  /** What the kernel was told, per setting; false where it could not be applied. */
  applied: { idle: boolean; interval: boolean; count: boolean; userTimeout: boolean } | false;
}

export interface SocketStats {
  state: SocketState;
  attempts: number;
  connects: number;
  failures: Partial<Record<FailureKind, number>>;
  bytesRead: number;
  bytesWritten: number;
  queuedBytes: number;
  queuedWrites: number;
  lastFailure: Failure | undefined;
  /** The last heartbeat's round trip, in whole ms; undefined before the first reply. */
  rtt: number | undefined;
  keepAlive: KeepAliveReport;
  /** TCP_INFO of the open connection, read now; undefined between connections or where it cannot be read. */
  tcp: TcpInfo | undefined;
  /**
   * The idle time after which the peer keeps closing connections (FIN), learned from at least two closes that agree;
   * undefined until then. Heartbeats must come more often than this.
   */
  peerIdleLimit: number | undefined;
}

export interface ResilientSocketEvents {
  connecting: (info: { attempt: number; endpoint: Endpoint }) => void;
  connect: (info: { attempt: number; endpoint: Endpoint; reconnected: boolean; downtime: number }) => void;
  data: (chunk: Buffer) => void;
  message: (frame: Buffer) => void;
  drain: () => void;
  failure: (failure: Failure) => void;
  reset: (failure: Failure) => void;
  disconnect: (failure: Failure) => void;
  reconnecting: (info: { attempt: number; delay: number; failure: Failure }) => void;
  /** A heartbeat reply arrived; `rtt` in whole ms. */
  heartbeat: (info: { rtt: number }) => void;
  close: (info: { reason: CloseReason; failure?: Failure }) => void;
  warning: (warning: ResockWarning) => void;
}
