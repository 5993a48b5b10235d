// Errors resock throws or hands to callbacks. Each has a stable `code`, a `name`, and the low-level error on `cause`.
// A Symbol.for brand makes `instanceof` hold across two loaded copies of the package (ESM and CJS side by side).

const kResockError = Symbol.for('resock.error');

export type ResockErrorCode =
  | 'ERR_RESOCK_INVALID_OPTION'
  | 'ERR_RESOCK_CLOSED'
  | 'ERR_RESOCK_NOT_OPEN'
  | 'ERR_RESOCK_QUEUE_FULL'
  | 'ERR_RESOCK_DROPPED'
  | 'ERR_RESOCK_EXPIRED'
  | 'ERR_RESOCK_CONNECT_TIMEOUT'
  | 'ERR_RESOCK_HANDSHAKE_TIMEOUT'
  | 'ERR_RESOCK_HEARTBEAT_TIMEOUT'
  | 'ERR_RESOCK_PEER_CLOSED'
  | 'ERR_RESOCK_FRAME_TOO_LONG'
  | 'ERR_RESOCK_PROTOCOL'
  | 'ERR_RESOCK_CALLBACK'
  | 'ERR_RESOCK_READY_TIMEOUT'
  | 'ERR_RESOCK_RECONNECT'
  | 'ERR_RESOCK_ABORTED'
  | 'ERR_RESOCK_HANDSHAKE'
  | 'ERR_RESOCK_PING_FAILED';

/**
 * Codes of the failures resock detects itself. Besides its own, a connection closed before it was established keeps
 * the errno code Node would have given it, so it classifies as the reset it is; ERR_RESOCK_UNKNOWN wraps a thrown
 * value that is not an Error.
 */
export type FailureErrorCode = ResockErrorCode | 'ECONNRESET' | 'ERR_RESOCK_UNKNOWN';

export class ResockError extends Error {
  readonly code: FailureErrorCode;

  constructor(code: FailureErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ResockError';
    this.code = code;
  }

  get [kResockError](): true {
    return true;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kResockError] === true;
  }
}

export type InvalidOptionError = (TypeError | RangeError) & { code: 'ERR_RESOCK_INVALID_OPTION'; option: string };

/**
 * TypeError for a value of the wrong type, RangeError for one out of range; both carry the option path. `cause` is
 * the error Node raised when Node is the one refusing the value.
 */
export function invalidOption(kind: 'type' | 'range', option: string, message: string, cause?: unknown): InvalidOptionError {
  const options = cause === undefined ? undefined : { cause };
  const err = (kind === 'type' ? new TypeError(message, options) : new RangeError(message, options)) as InvalidOptionError;
  Object.defineProperty(err, 'code', { value: 'ERR_RESOCK_INVALID_OPTION', enumerable: true });
  Object.defineProperty(err, 'option', { value: option, enumerable: true });
  Object.defineProperty(err, kResockError, { value: true });
  return err;
}

/**
 * The error of a failure resock detects itself (timeouts, FIN, heartbeat loss): a ResockError, so `failure.error` is
 * one whatever ended the connection, with the `code` classify() reads like an errno code.
 */
export function codeError(code: FailureErrorCode, message: string, cause?: unknown): ResockError {
  return new ResockError(code, message, cause === undefined ? undefined : { cause });
}

/** Renders a value for an error message: strings quoted, functions and objects named by type. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}
