// The diagnosis rules one by one, as a pure function of evidence: no socket. Each case pairs a fault's evidence with a
// near miss that must not get the same cause, so a rule that fires too eagerly or not at all fails here.
import { describe, expect, it } from 'vitest';
import {
  ACCEPT_WINDOW,
  diagnose,
  lastSendUnanswered,
  learnIdleLimit,
  quietAtEnd,
  unansweredForLong,
  type DiagnosisContext,
} from '../src/diagnosis.js';
import { droppedRightAfterAccept, peerIdleWarning, withPeerClose } from '../src/failure.js';
import { parseTcpInfo } from '../src/keepalive.js';
import { resolveOptions } from '../src/options.js';
import type { TcpInfo } from '../src/types.js';

const open: DiagnosisContext = {
  kind: 'reset',
  code: 'ECONNRESET',
  phase: 'open',
  idleThreshold: 30_000,
  connectTimeout: 10_000,
  everConnected: true,
  earlyDrops: 0,
  connectionAge: 60_000,
  bytesRead: 1234,
  idleFor: 50,
  sinceLastWrite: 10,
};

/** A healthy reading: everything we sent was acknowledged right after it left. */
function tcp(over: Partial<TcpInfo> = {}): TcpInfo {
  return {
    state: 'close',
    retransmits: 0,
    probes: 0,
    backoff: 0,
    rto: 204,
    unacked: 0,
    lost: 0,
    retrans: 0,
    lastDataSent: 10,
    lastAckRecv: 10,
    lastDataRecv: 50,
    rtt: 0.3,
    rttvar: 0.1,
    sndCwnd: 10,
    totalRetrans: 0,
    ...over,
  };
}

describe('kernel evidence helpers', () => {
  it('the last send is unanswered when data is unacked or no ACK came since it was sent', () => {
    expect(lastSendUnanswered(tcp())).toBe(false);
    expect(lastSendUnanswered(tcp({ unacked: 1 }))).toBe(true);
    // After a reset or timeout Linux empties the queue (unacked 0), but the age of the last ACK tells.
    expect(lastSendUnanswered(tcp({ lastDataSent: 900, lastAckRecv: 5000 }))).toBe(true);
    expect(lastSendUnanswered(tcp({ lastDataSent: 900, lastAckRecv: 899 }))).toBe(false);
  });

  it('unanswered for long needs a retransmission or more than one RTO of silence', () => {
    expect(unansweredForLong(tcp({ lastDataSent: 5, lastAckRecv: 3000 }))).toBe(false);
    expect(unansweredForLong(tcp({ lastDataSent: 5, lastAckRecv: 3000, retransmits: 2 }))).toBe(true);
    expect(unansweredForLong(tcp({ lastDataSent: 1500, lastAckRecv: 3000 }))).toBe(true);
    expect(unansweredForLong(tcp({ lastDataSent: 1500, lastAckRecv: 1500, retransmits: 2 }))).toBe(false);
  });

  it('parses struct tcp_info by offset and refuses a short one', () => {
    const buf = Buffer.alloc(232);
    buf[0] = 1; // TCP_ESTABLISHED
    buf[2] = 3; // retransmits
    buf[3] = 2; // probes
    buf[4] = 4; // backoff
    buf.writeUInt32LE(1_600_000, 8); // rto µs
    buf.writeUInt32LE(5, 24); // unacked
    buf.writeUInt32LE(2, 32); // lost
    buf.writeUInt32LE(1, 36); // retrans
    buf.writeUInt32LE(3200, 44); // last_data_sent ms
    buf.writeUInt32LE(7, 52); // last_data_recv
    buf.writeUInt32LE(4100, 56); // last_ack_recv
    buf.writeUInt32LE(250, 68); // rtt µs
    buf.writeUInt32LE(125, 72); // rttvar µs
    buf.writeUInt32LE(10, 80); // snd_cwnd
    buf.writeUInt32LE(9, 100); // total_retrans
    expect(parseTcpInfo(buf, 232)).toEqual({
      state: 'established',
      retransmits: 3,
      probes: 2,
      backoff: 4,
      rto: 1600,
      unacked: 5,
      lost: 2,
      retrans: 1,
      lastDataSent: 3200,
      lastAckRecv: 4100,
      lastDataRecv: 7,
      rtt: 0.25,
      rttvar: 0.125,
      sndCwnd: 10,
      totalRetrans: 9,
    });
    expect(parseTcpInfo(buf, 100)).toBeUndefined();
  });
});

describe('NAT forgot the idle flow', () => {
  const nat = { ...open, quietBeforeLastWrite: 6_900, readSinceLastWrite: false, idleThreshold: 5_000 };
  const silent = tcp({ lastDataSent: 2_100, lastAckRecv: 9_000, retransmits: 4 });

  it('user timeout on the first write after the quiet, never acknowledged → intermediary, with the quiet time', () => {
    const d = diagnose({ ...nat, kind: 'keepalive-timeout', code: 'ETIMEDOUT', idleFor: 9_000, tcp: silent });
    expect(d.cause).toBe('intermediary-idle-timeout');
    expect(d.summary).toContain('after 6.9 s of silence');
    expect(d.summary).toContain('4 retransmissions unanswered');
  });

  it('the same on a heartbeat timeout whose ping was the first write', () => {
    const d = diagnose({ ...nat, kind: 'heartbeat-timeout', code: 'ERR_RESOCK_HEARTBEAT_TIMEOUT', heartbeatTimeout: 2000, tcp: silent });
    expect(d.cause).toBe('intermediary-idle-timeout');
  });

  it('not when the peer acknowledged that write: then the flow was known and the path died later', () => {
    const acked = tcp({ lastDataSent: 2_100, lastAckRecv: 2_100 });
    expect(diagnose({ ...nat, kind: 'keepalive-timeout', code: 'ETIMEDOUT', tcp: acked }).cause).toBe('path-dead');
  });

  it('not after a short quiet', () => {
    const d = diagnose({ ...nat, quietBeforeLastWrite: 1_000, kind: 'keepalive-timeout', code: 'ETIMEDOUT', tcp: silent });
    expect(d.cause).toBe('path-dead');
  });

  it('reset on the first write after the quiet, at once → intermediary; with the old wording without TCP_INFO', () => {
    const rst = tcp({ lastDataSent: 1, lastAckRecv: 6_901 });
    expect(diagnose({ ...nat, tcp: rst }).cause).toBe('intermediary-idle-timeout');
    // A user-space proxy that forgot the flow ACKs in its own kernel before it resets: still the intermediary.
    expect(diagnose({ ...nat, tcp: tcp({ lastDataSent: 1, lastAckRecv: 1 }) }).cause).toBe('intermediary-idle-timeout');
    expect(diagnose({ ...nat }).summary).toBe('reset on the first write after 6.9 s of silence.');
    // With a reply read since the write, the peer was there: not the intermediary.
    expect(diagnose({ ...nat, readSinceLastWrite: true, tcp: rst }).cause).toBe('peer-crashed');
  });
});

describe('hung peer vs dead path on a heartbeat timeout', () => {
  const hb = { ...open, kind: 'heartbeat-timeout' as const, code: 'ERR_RESOCK_HEARTBEAT_TIMEOUT', heartbeatTimeout: 1200, idleFor: 2400 };

  it('ping acknowledged by the peer kernel → peer-unresponsive', () => {
    const d = diagnose({ ...hb, tcp: tcp({ lastDataSent: 1200, lastAckRecv: 1200 }) });
    expect(d.cause).toBe('peer-unresponsive');
    expect(d.summary).toContain('acknowledged the ping');
  });

  it('ping never acknowledged → path-dead, with the kernel evidence', () => {
    const d = diagnose({ ...hb, tcp: tcp({ unacked: 1, lastDataSent: 1200, lastAckRecv: 2400, retransmits: 3 }) });
    expect(d.cause).toBe('path-dead');
    expect(d.summary).toContain('never acknowledged');
    expect(d.summary).toContain('last ACK 2.4 s ago');
  });

  it('without kernel evidence it stays peer-unresponsive', () => {
    expect(diagnose(hb).cause).toBe('peer-unresponsive');
  });
});

describe('peer idle timeout', () => {
  const fin = { ...open, kind: 'peer-closed' as const, code: 'ERR_RESOCK_PEER_CLOSED', connectionAge: 2_050, idleFor: 2_050, sinceLastWrite: undefined };

  it('learns a limit from two or more closes that agree, and not from one or from scattered ones', () => {
    expect(learnIdleLimit([2_050])).toBeUndefined();
    expect(learnIdleLimit([2_050, 2_900, 2_100])).toEqual({ limit: 2_050, longest: 2_900, closes: 3 });
    // The newest disagrees with what came before: no limit.
    expect(learnIdleLimit([2_000, 2_000, 9_000])).toBeUndefined();
    // Older scattered closes do not spoil the newest agreeing run.
    expect(learnIdleLimit([60_000, 2_000, 2_100])).toEqual({ limit: 2_000, longest: 2_100, closes: 2 });
    // Closes under half a second are not idle timeouts.
    expect(learnIdleLimit([100, 120])).toBeUndefined();
  });

  it('the history keeps quiet times of FINs only, bounded, across reconnects', () => {
    let closes: readonly number[] | undefined;
    closes = withPeerClose(closes, 'reset', { idleFor: 100, connectionAge: 100 });
    expect(closes).toBeUndefined();
    for (let i = 0; i < 20; i++) closes = withPeerClose(closes, 'peer-closed', { idleFor: 2_000 + i, sinceLastWrite: 5_000 });
    expect(closes).toHaveLength(8);
    expect(closes!.at(-1)).toBe(2_019);
    // Quiet is both ways: a write 300 ms before the FIN makes it 300 ms.
    expect(quietAtEnd({ idleFor: 2_000, sinceLastWrite: 300 })).toBe(300);
  });

  it('third FIN after the same idle → peer-idle-timeout with the count and the limit', () => {
    const d = diagnose({ ...fin, peerIdleCloses: [2_010, 2_990, 2_050] });
    expect(d.cause).toBe('peer-idle-timeout');
    expect(d.summary).toContain('3 times after 2.0 s idle');
    expect(d.advice).toContain('heartbeat.interval below 2.0 s');
  });

  it('the first FIN, or one while busy, is a graceful close', () => {
    expect(diagnose({ ...fin, peerIdleCloses: [2_050] }).cause).toBe('peer-closed-gracefully');
    expect(diagnose({ ...fin, peerIdleCloses: [2_010, 2_050, 10], idleFor: 10 }).cause).toBe('peer-closed-gracefully');
  });

  it('warns when the heartbeat cannot beat the learned limit, not when it can', () => {
    const closes = [2_010, 2_050];
    const none = resolveOptions({ port: 1 });
    const slow = resolveOptions({ port: 1, heartbeat: { ping: 'P', interval: 5_000 } });
    const fast = resolveOptions({ port: 1, heartbeat: { ping: 'P', interval: 1_000 } });
    expect(peerIdleWarning(none, closes)).toMatchObject({ code: 'PEER_IDLE_LIMIT' });
    expect(peerIdleWarning(slow, closes)?.message).toContain('heartbeat.interval is 5.0 s');
    expect(peerIdleWarning(fast, closes)).toBeUndefined();
    expect(peerIdleWarning(none, [2_010])).toBeUndefined();
  });
});

describe('peer host restarted vs peer crashed', () => {
  it('reset after our data went unanswered for many RTTs → peer-host-restarted', () => {
    // As measured in test/kernel: retransmissions count as sends, so lastDataSent is recent; the last ACK is old.
    const d = diagnose({ ...open, idleFor: 3_300, tcp: tcp({ lastDataSent: 0, lastAckRecv: 1_760, retransmits: 3, totalRetrans: 4 }) });
    expect(d.cause).toBe('peer-host-restarted');
    expect(d.summary).toContain('no ACK for 1.8 s through 3 retransmissions');
  });

  it('reset within a round trip of acknowledged traffic → peer-crashed', () => {
    const d = diagnose({ ...open, tcp: tcp({ lastDataSent: 3, lastAckRecv: 3 }) });
    expect(d.cause).toBe('peer-crashed');
    expect(d.summary).toContain('while traffic was flowing');
  });

  it('reset answering our write at once (no retransmission, under one RTO) is not a restart', () => {
    expect(diagnose({ ...open, tcp: tcp({ lastDataSent: 1, lastAckRecv: 400 }) }).cause).toBe('peer-crashed');
  });
});

describe('listener not accepting: full backlog', () => {
  const handshakeReset = { ...open, connectionAge: 2, bytesRead: 0, idleFor: 2, sinceLastWrite: undefined };

  it('reset right after the handshake with nothing read → peer-rejected, never "while traffic was flowing"', () => {
    const d = diagnose({ ...handshakeReset, tcp: tcp({ rtt: 0.2 }) });
    expect(d.cause).toBe('peer-rejected');
    expect(d.summary).toContain('not accepting');
    expect(d.summary).not.toContain('traffic was flowing');
  });

  it('not once something was read, or long after the handshake; and then never "while traffic was flowing" either', () => {
    expect(diagnose({ ...handshakeReset, bytesRead: 10 }).cause).toBe('peer-crashed');
    const later = diagnose({ ...handshakeReset, connectionAge: 5_000, tcp: tcp({ rtt: 0.2 }) });
    expect(later.cause).toBe('peer-crashed');
    expect(later.summary).toContain('before any data was exchanged');
    expect(later.summary).not.toContain('traffic was flowing');
  });

  it('a SYN timeout right after such a drop → peer-unresponsive (listener), not path-dead', () => {
    const syn = { ...open, kind: 'connect-timeout' as const, code: 'ERR_RESOCK_CONNECT_TIMEOUT', phase: 'connect' as const };
    expect(diagnose({ ...syn, earlyDrops: 1 }).cause).toBe('peer-unresponsive');
    expect(diagnose({ ...syn, earlyDrops: 0 }).cause).toBe('path-dead');
    // After a hung peer (its kernel ACKed, its process did not answer) the backlog fills and SYNs are dropped.
    const hung = diagnose({ ...syn, previousCause: 'peer-unresponsive' });
    expect(hung.cause).toBe('peer-unresponsive');
    expect(hung.summary).toContain('listener is not accepting');
    expect(diagnose({ ...syn, previousCause: 'path-dead' }).cause).toBe('path-dead');
  });
});

describe('peer-rejected means right after accepting', () => {
  it('only drops within the accept window count as early', () => {
    expect(droppedRightAfterAccept({ connectionAge: 5 })).toBe(true);
    expect(droppedRightAfterAccept({ connectionAge: ACCEPT_WINDOW })).toBe(true);
    // A peer closing after 2 s idle, still within stableAfter (5 s), is not rejecting.
    expect(droppedRightAfterAccept({ connectionAge: 2_000 })).toBe(false);
  });

  it('two or more early drops in a row → peer-rejected with the count and what was read', () => {
    const d = diagnose({ ...open, kind: 'peer-closed', code: 'ERR_RESOCK_PEER_CLOSED', earlyDrops: 3, connectionAge: 4, bytesRead: 27 });
    expect(d.cause).toBe('peer-rejected');
    expect(d.summary).toContain('3 connections in a row right after accepting');
    expect(d.summary).toContain('27 bytes read');
  });
});

describe('wording that must not mislead', () => {
  it('a reset in the connect phase does not read "while traffic was flowing"', () => {
    const d = diagnose({ ...open, phase: 'connect', connectionAge: undefined, idleFor: undefined });
    expect(d.cause).toBe('peer-rejected');
    expect(d.summary).toContain('before the connection opened');
    expect(d.summary).not.toContain('traffic');
  });

  it("EMFILE is this process's limit, ENFILE the host's", () => {
    const emfile = diagnose({ ...open, kind: 'resource', code: 'EMFILE' });
    const enfile = diagnose({ ...open, kind: 'resource', code: 'ENFILE' });
    expect(emfile.summary).toContain('this process');
    expect(emfile.advice).toContain('ulimit -n');
    expect(enfile.summary).toContain('host');
    expect(enfile.summary).not.toContain('this process ran out');
    expect(enfile.advice).toContain('fs.file-max');
  });
});
