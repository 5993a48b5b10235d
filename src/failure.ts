// Builds the Failure object: classification of the error, the evidence of the connection it ended, and the diagnosis.
import { classify } from './classify.js';
import type { LossEvidence } from './connection.js';
import { diagnose } from './diagnosis.js';
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
  err: unknown,
  phase: FailurePhase,
  endpoint: Endpoint,
  evidence: LossEvidence | undefined,
  history: FailureHistory,
  options: ResolvedOptions,
): Failure {
  const { kind, code, retryable } = classify(err, phase);
  const message = err instanceof Error ? err.message : String(err);
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
  if (err instanceof Error) failure.error = err;
  return failure;
}
