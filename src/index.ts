export { ResilientSocket, connect } from './socket.js';
export { lines, lengthPrefixed } from './framing.js';
export { ResockError, type ResockErrorCode, type FailureErrorCode, type InvalidOptionError } from './errors.js';
export { DEFAULT_DETECT_WITHIN } from './options.js';
export { channels as diagnosticsChannels, type ResockChannelMessages } from './diagnostics.js';
export type { ReadyOptions } from './ready.js';
export type { WriteCallback } from './queue.js';
export type {
  CloseReason,
  Diagnosis,
  DiagnosisCause,
  DiagnoseOptions,
  Endpoint,
  Failure,
  FailureCode,
  FailureKind,
  FailurePhase,
  FrameDecoder,
  FramingCodec,
  HeartbeatOptions,
  JitterKind,
  KeepAliveOptions,
  KeepAliveReport,
  OfflineQueueOptions,
  OnConnect,
  ReconnectOptions,
  ResilientSocketEvents,
  ResilientSocketOptions,
  ResolvedOptions,
  SocketState,
  SocketStats,
  TcpInfo,
  ResockWarning,
  WarningCode,
  WriteAccount,
} from './types.js';
