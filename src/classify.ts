// The one place that decides what a low-level error means. It reads error codes and the phase, never message text.
// The README's failure table is checked against these tables by test/readme-tables.test.ts.
import { types } from 'node:util';
import type { FailureKind, FailurePhase } from './types.js';

export interface Classification {
  kind: FailureKind;
  code: string;
  retryable: boolean;
}

// Certificate and verification failures: retrying cannot fix a wrong CA, name or expiry, so they are fatal by default.
export const TLS_VERIFY_CODES: ReadonlySet<string> = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export const BY_CODE: Readonly<Record<string, { kind: FailureKind; retryable: boolean }>> = {
  ECONNRESET: { kind: 'reset', retryable: true },
  // `ss -K` and some middleboxes abort the connection locally.
  ECONNABORTED: { kind: 'reset', retryable: true },
  EPIPE: { kind: 'broken-pipe', retryable: true },
  ERR_STREAM_WRITE_AFTER_END: { kind: 'broken-pipe', retryable: true },
  ECONNREFUSED: { kind: 'refused', retryable: true },
  // An IPC path with no socket file behaves like a port with no listener.
  ENOENT: { kind: 'refused', retryable: true },
  ERR_RESOCK_CONNECT_TIMEOUT: { kind: 'connect-timeout', retryable: true },
  ERR_RESOCK_HANDSHAKE_TIMEOUT: { kind: 'connect-timeout', retryable: true },
  ERR_RESOCK_HEARTBEAT_TIMEOUT: { kind: 'heartbeat-timeout', retryable: true },
  ERR_RESOCK_PEER_CLOSED: { kind: 'peer-closed', retryable: true },
  ERR_RESOCK_FRAME_TOO_LONG: { kind: 'protocol', retryable: true },
  ERR_RESOCK_PROTOCOL: { kind: 'protocol', retryable: true },
  ERR_RESOCK_ABORTED: { kind: 'aborted', retryable: false },
  // onConnect threw something that is not an Error: wrapped, so what was thrown is never taken for a code.
  ERR_RESOCK_HANDSHAKE: { kind: 'handshake', retryable: true },
  // Local bugs, not the peer's: every new connection would fail the same way, so retrying only hides them.
  // An option Node refused at dial time, or a ping function that returned what cannot be sent.
  ERR_RESOCK_INVALID_OPTION: { kind: 'unknown', retryable: false },
  // A user callback threw where resock cannot go on without it (heartbeat ping or isPong), or onConnect wrote through
  // the ResilientSocket: the application's bug, the same on every connection.
  ERR_RESOCK_CALLBACK: { kind: 'unknown', retryable: false },
  // A ping function that threw.
  ERR_RESOCK_PING_FAILED: { kind: 'unknown', retryable: false },
  ABORT_ERR: { kind: 'aborted', retryable: false },
  // reconnect(): the application dropped the connection to dial again.
  ERR_RESOCK_RECONNECT: { kind: 'aborted', retryable: true },
  EHOSTUNREACH: { kind: 'unreachable', retryable: true },
  ENETUNREACH: { kind: 'unreachable', retryable: true },
  EHOSTDOWN: { kind: 'unreachable', retryable: true },
  ENETDOWN: { kind: 'unreachable', retryable: true },
  ENOTFOUND: { kind: 'dns', retryable: true },
  EAI_AGAIN: { kind: 'dns', retryable: true },
  EAI_FAIL: { kind: 'dns', retryable: true },
  EAI_NONAME: { kind: 'dns', retryable: true },
  EMFILE: { kind: 'resource', retryable: true },
  ENFILE: { kind: 'resource', retryable: true },
  EADDRNOTAVAIL: { kind: 'resource', retryable: true },
  EADDRINUSE: { kind: 'resource', retryable: true },
  ENOBUFS: { kind: 'resource', retryable: true },
  ENOMEM: { kind: 'resource', retryable: true },
  // Node reports some OpenSSL failures (a peer that does not speak TLS, a handshake alert) with the errno of the
  // write that met them: the same misconfiguration as ERR_SSL_*, which a retry does not fix either.
  EPROTO: { kind: 'tls', retryable: false },
};

/** Maps an error and the phase it happened in to a failure kind. Only an Error's own `code` is read. */
export function classify(err: unknown, phase: FailurePhase): Classification {
  const code = errorCode(err);
  if (code === 'ETIMEDOUT') {
    // Before open, ETIMEDOUT is the kernel giving up on the SYN; once open it is keepalive or TCP_USER_TIMEOUT expiry.
    return { kind: phase === 'open' ? 'keepalive-timeout' : 'connect-timeout', code, retryable: true };
  }
  if (TLS_VERIFY_CODES.has(code)) return { kind: 'tls', code, retryable: false };
  // OpenSSL errors surface as ERR_SSL_<REASON>: a protocol or configuration mismatch that a retry will not fix.
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return { kind: 'tls', code, retryable: false };
  const known = BY_CODE[code];
  if (known) return { kind: known.kind, code, retryable: known.retryable };
  // An onConnect that threw an error whose code means nothing to resock is a handshake failure.
  if (phase === 'handshake') return { kind: 'handshake', code, retryable: true };
  return { kind: 'unknown', code, retryable: true };
}

export function errorCode(err: unknown): string {
  // A thrown string or object is not an error report: `throw 'CERT_HAS_EXPIRED'` must not close the socket as fatal.
  if (isError(err)) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
    if ((err as { name?: unknown }).name === 'AbortError') return 'ABORT_ERR';
    // Happy Eyeballs (autoSelectFamily) reports one AggregateError for all addresses tried: the first one speaks for them.
    if (err instanceof AggregateError && err.errors.length > 0) return errorCode(err.errors[0]);
  }
  return 'ERR_RESOCK_UNKNOWN';
}

/** An Error of this realm or another (vm, worker): `instanceof Error` alone misses the latter. */
export function isError(value: unknown): value is Error {
  return value instanceof Error || types.isNativeError(value);
}
