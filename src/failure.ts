// Builds the Failure object: classification of the error, the evidence of the connection it ended, and the diagnosis.
import { classify, isError } from './classify.js';
import type { LossEvidence } from './connection.js';
import { diagnose } from './diagnosis.js';
import { codeError, describeValue } from './errors.js';
import type { Endpoint, Failure, FailureKind, FailurePhase, ResolvedOptions } from './types.js';

/** What the socket knows about its own history when a failure happens. */
export interface FailureHistory {
  attempt: number;
  queuedBytes: number;
  everConnected: boolean;
  previousKind: FailureKind | undefined;
  earlyDrops: number;
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
    earlyDrops: history.earlyDrops,
    heartbeatTimeout: hb ? hb.timeout : undefined,
    message,
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
