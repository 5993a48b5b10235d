import { describe, expect, it } from 'vitest';
import { classify } from '../src/classify.js';
import { diagnose, formatDuration, type DiagnosisContext } from '../src/diagnosis.js';

const err = (code: string): Error => Object.assign(new Error('irrelevant text: ECONNREFUSED'), { code });

describe('classify reads codes, never messages', () => {
  it.each([
    ['ECONNRESET', 'open', 'reset', true],
    ['ECONNABORTED', 'open', 'reset', true],
    ['EPIPE', 'open', 'broken-pipe', true],
    ['ECONNREFUSED', 'connect', 'refused', true],
    ['ENOENT', 'connect', 'refused', true],
    ['ETIMEDOUT', 'connect', 'connect-timeout', true],
    ['ETIMEDOUT', 'open', 'keepalive-timeout', true],
    ['ERR_RESOCK_CONNECT_TIMEOUT', 'connect', 'connect-timeout', true],
    ['ERR_RESOCK_HEARTBEAT_TIMEOUT', 'open', 'heartbeat-timeout', true],
    ['ERR_RESOCK_PEER_CLOSED', 'open', 'peer-closed', true],
    ['ERR_RESOCK_FRAME_TOO_LONG', 'open', 'protocol', true],
    ['EHOSTUNREACH', 'open', 'unreachable', true],
    ['ENOTFOUND', 'connect', 'dns', true],
    ['EMFILE', 'connect', 'resource', true],
    ['EADDRNOTAVAIL', 'connect', 'resource', true],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'connect', 'tls', false],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'connect', 'tls', false],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'connect', 'tls', false],
    ['EPROTO', 'connect', 'tls', false],
    ['ERR_RESOCK_HANDSHAKE', 'handshake', 'handshake', true],
    ['ERR_RESOCK_PING_FAILED', 'open', 'unknown', false],
    ['ERR_RESOCK_INVALID_OPTION', 'connect', 'unknown', false],
    ['ABORT_ERR', 'connect', 'aborted', false],
    ['EWHATEVER', 'open', 'unknown', true],
    ['EWHATEVER', 'handshake', 'handshake', true],
  ] as const)('%s in phase %s is %s', (code, phase, kind, retryable) => {
    expect(classify(err(code), phase)).toEqual({ kind, code, retryable });
  });

  it('an error without a code in the handshake phase is a handshake failure', () => {
    expect(classify(new Error('bad password'), 'handshake').kind).toBe('handshake');
    expect(classify(new Error('ECONNRESET'), 'open').kind).toBe('unknown');
  });

  it('reads a code only from an Error: a thrown string or object is never taken for one', () => {
    expect(classify('CERT_HAS_EXPIRED', 'handshake')).toEqual({ kind: 'handshake', code: 'ERR_RESOCK_UNKNOWN', retryable: true });
    expect(classify({ code: 'ERR_RESOCK_ABORTED' }, 'open')).toEqual({ kind: 'unknown', code: 'ERR_RESOCK_UNKNOWN', retryable: true });
    expect(classify(Object.create(null), 'connect').code).toBe('ERR_RESOCK_UNKNOWN');
  });

  it('an AggregateError from Happy Eyeballs speaks through its first error', () => {
    const agg = new AggregateError([err('ECONNREFUSED'), err('ECONNREFUSED')]);
    expect(classify(agg, 'connect').kind).toBe('refused');
  });
});

const base: DiagnosisContext = {
  kind: 'reset',
  code: 'ECONNRESET',
  phase: 'open',
  idleThreshold: 30_000,
  connectTimeout: 10_000,
  everConnected: true,
  earlyDrops: 0,
};

describe('diagnose', () => {
  it('reset on the first write after a quiet longer than the threshold blames an intermediary, with the evidence', () => {
    const d = diagnose({ ...base, quietBeforeLastWrite: 312_000, readSinceLastWrite: false, idleFor: 312_010 });
    expect(d.cause).toBe('intermediary-idle-timeout');
    expect(d.summary).toBe('reset on the first write after 312 s of silence.');
    expect(d.advice).toMatch(/shorter than 312 s/);
  });

  it('a reset after a short quiet, or with a reply since, is a peer crash', () => {
    expect(diagnose({ ...base, quietBeforeLastWrite: 10, readSinceLastWrite: false }).cause).toBe('peer-crashed');
    expect(diagnose({ ...base, quietBeforeLastWrite: 40_000, readSinceLastWrite: true }).cause).toBe('peer-crashed');
  });

  it('ECONNABORTED is a local abort (ss -K, local firewall), never blamed on the peer', () => {
    expect(diagnose({ ...base, code: 'ECONNABORTED', quietBeforeLastWrite: 40_000, readSinceLastWrite: false }).cause).toBe('local-abort');
  });

  it('EPIPE without a long quiet is a write after reset', () => {
    expect(diagnose({ ...base, kind: 'broken-pipe', code: 'EPIPE', quietBeforeLastWrite: 5 }).cause).toBe('write-after-reset');
  });

  it('refused: peer-down before it was ever up, peer-restarting after, or right after a reset', () => {
    const refused = { ...base, kind: 'refused' as const, code: 'ECONNREFUSED', phase: 'connect' as const };
    expect(diagnose({ ...refused, everConnected: false }).cause).toBe('peer-down');
    expect(diagnose({ ...refused, everConnected: true }).cause).toBe('peer-restarting');
    expect(diagnose({ ...refused, everConnected: false, previousKind: 'reset' }).cause).toBe('peer-restarting');
  });

  it('repeated early drops are peer-rejected', () => {
    expect(diagnose({ ...base, earlyDrops: 2, connectionAge: 3 }).cause).toBe('peer-rejected');
    expect(diagnose({ ...base, kind: 'peer-closed', earlyDrops: 3 }).cause).toBe('peer-rejected');
    expect(diagnose({ ...base, kind: 'peer-closed', earlyDrops: 1 }).cause).toBe('peer-closed-gracefully');
  });

  it.each([
    ['heartbeat-timeout', 'peer-unresponsive'],
    ['keepalive-timeout', 'path-dead'],
    ['resource', 'local-resource-exhaustion'],
    ['dns', 'dns-failure'],
    ['tls', 'tls-misconfigured'],
    ['aborted', 'local-abort'],
    ['protocol', 'protocol-violation'],
    ['unknown', 'unknown'],
  ] as const)('%s → %s', (kind, cause) => {
    const d = diagnose({ ...base, kind });
    expect(d.cause).toBe(cause);
    expect(d.summary.length).toBeGreaterThan(10);
    expect(d.advice.length).toBeGreaterThan(10);
  });

  it('connect timeouts: peer-down in connect, peer-unresponsive in the handshake', () => {
    const t = { ...base, kind: 'connect-timeout' as const, everConnected: false };
    expect(diagnose({ ...t, phase: 'connect' }).cause).toBe('peer-down');
    expect(diagnose({ ...t, phase: 'handshake' }).cause).toBe('peer-unresponsive');
  });

  it('formats durations for people', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(1500)).toBe('1.5 s');
    expect(formatDuration(312_000)).toBe('312 s');
  });
});
