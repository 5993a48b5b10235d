// Builds the Failure object: classification of the error, the evidence of the connection it ended, and the diagnosis.
import { classify, isError } from './classify.js';
import type { LossEvidence } from './connection.js';
import { ACCEPT_WINDOW, diagnose, formatDuration, IDLE_CLOSES_KEPT, learnIdleLimit, quietAtEnd } from './diagnosis.js';
import { codeError, describeValue } from './errors.js';
import type { DiagnosisCause, Endpoint, Failure, FailureKind, FailurePhase, ResockWarning, ResolvedOptions } from './types.js';

/** What the socket knows about its own history when a failure happens. */
export interface FailureHistory {
  attempt: number;
  queuedBytes: number;
  everConnected: boolean;
  previousKind: FailureKind | undefined;
  /** The cause the failure before this one was given, in the same run. */
  previousCause?: DiagnosisCause | undefined;
  earlyDrops: number;
  /** Quiet time at each earlier FIN from the peer, oldest first, kept across reconnects (see withPeerClose). */
  peerIdleCloses?: readonly number[];
}

export function buildFailure(
  thrown: unknown,
  phase: FailurePhase,
  endpoint: Endpoint,
  evidence: LossEvidence | undefined,
  history: FailureHistory,
  options: ResolvedOptions,
): Failure {
  const err = asError(thrown, phase);
  const { kind, code, retryable } = classify(err, phase);
  const message = err.message;
  const hb = options.heartbeat;
  const diagnosis = diagnose({
    kind,
    code,
    phase,
    idleThreshold: options.diagnose.idleThreshold,
    connectTimeout: options.connectTimeout,
    idleFor: evidence?.idleFor,
    quietBeforeLastWrite: evidence?.quietBeforeLastWrite,
    readSinceLastWrite: evidence?.readSinceLastWrite,
    connectionAge: evidence?.connectionAge,
    everConnected: history.everConnected,
    previousKind: history.previousKind,
    previousCause: history.previousCause,
    earlyDrops: history.earlyDrops,
    heartbeatTimeout: hb ? hb.timeout : undefined,
    message,
    sinceLastWrite: evidence?.sinceLastWrite,
    bytesRead: evidence?.bytesRead,
    tcp: evidence?.tcp,
    peerIdleCloses: evidence === undefined ? history.peerIdleCloses : withPeerClose(history.peerIdleCloses, kind, evidence),
  });
  const failure: Failure = {
    kind,
    code,
    message,
    phase,
    retryable,
    endpoint,
    attempt: history.attempt,
    at: Date.now(),
    bytesRead: evidence?.bytesRead ?? 0,
    bytesWritten: evidence?.bytesWritten ?? 0,
    queuedBytes: history.queuedBytes,
    diagnosis,
  };
  if (evidence !== undefined) {
    failure.connectionAge = Math.round(evidence.connectionAge);
    failure.idleFor = Math.round(evidence.idleFor);
    if (evidence.sinceLastWrite !== undefined) failure.sinceLastWrite = Math.round(evidence.sinceLastWrite);
    failure.writes = evidence.writes;
    if (evidence.tcp !== undefined) failure.tcp = evidence.tcp;
  }
  failure.error = err;
  return failure;
}

/**
 * What user code threw, as an Error: a thrown string or object is wrapped, never read for a code or turned into a
 * string (String() throws for an object without a prototype). Only onConnect can throw such a value today.
 */
function asError(thrown: unknown, phase: FailurePhase): Error {
  if (isError(thrown)) return thrown;
  const handshake = phase === 'handshake';
  return codeError(
    handshake ? 'ERR_RESOCK_HANDSHAKE' : 'ERR_RESOCK_UNKNOWN',
    `${handshake ? 'onConnect threw' : 'the connection failed with'} a value that is not an Error: ${describeValue(thrown)}`,
    thrown,
  );
}

/**
 * The history of FIN closes with this failure's quiet time added when it is one (a new array, at most
 * IDLE_CLOSES_KEPT long); the same array otherwise. The socket keeps the result across reconnects.
 */
export function withPeerClose(
  closes: readonly number[] | undefined,
  kind: FailureKind,
  evidence: { idleFor?: number; sinceLastWrite?: number; connectionAge?: number },
): readonly number[] | undefined {
  if (kind !== 'peer-closed') return closes;
  const quiet = quietAtEnd(evidence);
  if (quiet === undefined) return closes;
  const next = closes === undefined ? [] : closes.slice(-(IDLE_CLOSES_KEPT - 1));
  next.push(quiet);
  return next;
}

/** Lost right after the peer accepted it: what counts towards `earlyDrops` (see ACCEPT_WINDOW). */
export function droppedRightAfterAccept(evidence: { connectionAge: number }): boolean {
  return evidence.connectionAge <= ACCEPT_WINDOW;
}

/**
 * The warning owed once the peer's idle limit is known and the heartbeat would not beat it: none, or an interval at
 * or above the limit. Undefined when there is nothing to warn about.
 */
export function peerIdleWarning(
  options: ResolvedOptions,
  closes: readonly number[] | undefined,
): ResockWarning | undefined {
  const idle = learnIdleLimit(closes);
  if (idle === undefined) return undefined;
  const hb = options.heartbeat;
  if (hb !== false && hb.interval < idle.limit) return undefined;
  const limit = formatDuration(idle.limit);
  return {
    code: 'PEER_IDLE_LIMIT',
    message:
      hb === false
        ? `the peer closed ${idle.closes} idle connections after ${limit}: without a heartbeat every idle connection will be closed; set heartbeat.interval below ${limit}`
        : `the peer closed ${idle.closes} idle connections after ${limit}, but heartbeat.interval is ${formatDuration(hb.interval)}: set it below ${limit}`,
  };
}
