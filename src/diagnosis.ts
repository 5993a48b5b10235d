// Turns a classified failure and the evidence around it into a likely cause and what to change.
// Pure: every input is data, so each rule is testable without a socket.
import type { Diagnosis, DiagnosisCause, FailureKind, FailurePhase, TcpInfo } from './types.js';

export interface DiagnosisContext {
  kind: FailureKind;
  code: string;
  phase: FailurePhase;
  idleThreshold: number;
  connectTimeout: number;
  /** ms since the last inbound byte (since open when nothing arrived). */
  idleFor?: number;
  /** ms of silence in both directions just before the last outbound write. */
  quietBeforeLastWrite?: number;
  /** Whether anything arrived after the last outbound write. */
  readSinceLastWrite?: boolean;
  connectionAge?: number;
  /** This socket has been open at least once before this failure. */
  everConnected: boolean;
  /** Kind of the failure just before this one, when the socket has not been stable since. */
  previousKind?: FailureKind;
  /** What the failure just before this one was diagnosed as, when the socket has not been stable since. */
  previousCause?: DiagnosisCause;
  /** Connections in a row, this one included, that were lost within ACCEPT_WINDOW of opening. */
  earlyDrops: number;
  heartbeatTimeout?: number;
  message?: string;
  /** ms since the last outbound write. */
  sinceLastWrite?: number;
  /** Bytes read on the connection that failed. */
  bytesRead?: number;
  /** The kernel's TCP_INFO, read before the descriptor closed. */
  tcp?: TcpInfo;
  /**
   * Quiet time (ms, both directions) at each FIN from the peer so far, oldest first, across reconnects, this
   * failure's own included when it is one: what the peer's idle limit is learned from.
   */
  peerIdleCloses?: readonly number[];
}

/**
 * A connection lost within this long of opening was dropped "right after accepting": a listener shedding load, with a
 * full accept queue or refusing the session answers within a few round trips, while a peer that closes idle
 * connections or crashes under traffic does so later. One second covers a few round trips of any terrestrial path.
 */
export const ACCEPT_WINDOW = 1000;

/** Closes quieter than this are not idle-timeout closes: no idle limit is that short in practice. */
const MIN_IDLE_CLOSE = 500;
/**
 * Idle closes agree when the longest is at most 1.5× the shortest + 250 ms: servers check idleness on a coarse timer
 * (redis compares whole seconds, so `timeout 2` closes after 2–3 s), so one limit still spreads its closes.
 */
const IDLE_SPREAD_FACTOR = 1.5;
const IDLE_SPREAD_MS = 250;
/** Idle closes kept and looked at, newest first. */
export const IDLE_CLOSES_KEPT = 8;

export interface IdleLimit {
  /** The shortest idle time after which the peer closed: heartbeats must come more often than this. */
  limit: number;
  longest: number;
  /** Consecutive closes, the newest included, that agree on it. */
  closes: number;
}

/**
 * The peer's idle limit, if the newest closes (at least two) agree on one; undefined otherwise. Pure, so stats() and
 * the diagnosis read the same answer from the same history.
 */
export function learnIdleLimit(closes: readonly number[] | undefined): IdleLimit | undefined {
  if (closes === undefined) return undefined;
  let min = Infinity;
  let max = -Infinity;
  let count = 0;
  for (let i = closes.length - 1; i >= 0 && count < IDLE_CLOSES_KEPT; i--) {
    const q = closes[i]!;
    if (q < MIN_IDLE_CLOSE) break;
    const lo = Math.min(min, q);
    const hi = Math.max(max, q);
    if (hi > lo * IDLE_SPREAD_FACTOR + IDLE_SPREAD_MS) break;
    min = lo;
    max = hi;
    count++;
  }
  return count >= 2 ? { limit: min, longest: max, closes: count } : undefined;
}

/** Quiet time in both directions at the end of a connection: since the last byte either way (or since open). */
export function quietAtEnd(e: { idleFor?: number; sinceLastWrite?: number; connectionAge?: number }): number | undefined {
  const idle = e.idleFor;
  if (idle === undefined) return undefined;
  const written = e.sinceLastWrite ?? e.connectionAge;
  return written === undefined ? idle : Math.min(idle, written);
}

/**
 * Whether the kernel says the last data we sent was never acknowledged: still unacked, or no ACK arrived since it was
 * sent (both ages come from the same kernel clock, so they compare directly). Linux empties the retransmit queue on a
 * reset or a timeout, so `unacked` alone reads 0 afterwards; the time of the last ACK survives.
 */
export function lastSendUnanswered(tcp: TcpInfo): boolean {
  return tcp.unacked > 0 || tcp.lastAckRecv > tcp.lastDataSent;
}

/**
 * Whether our data went unanswered for many round trips: unacknowledged, and either the retransmission timer fired
 * (≥ 200 ms on Linux, far more than a few RTTs on a LAN) or it was sent longer ago than the RTO. Linux counts a
 * retransmission as a send in tcpi_last_data_sent, so the time without an ACK is what measures the silence.
 */
export function unansweredForLong(tcp: TcpInfo): boolean {
  return lastSendUnanswered(tcp) && (tcp.retransmits > 0 || tcp.lastDataSent > Math.max(tcp.rto, 4 * tcp.rtt));
}

/** Seconds with one decimal under a minute, whole seconds above; milliseconds under a second. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 1000)} s`;
}

function formatRtt(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : formatDuration(ms);
}

/** The kernel's evidence in words: "last ACK 3.2 s ago, 4 retransmissions unanswered, RTT 0.3 ms". */
function tcpWords(tcp: TcpInfo): string {
  const parts = [`last ACK ${formatDuration(tcp.lastAckRecv)} ago`];
  if (tcp.retransmits > 0) parts.push(`${tcp.retransmits} retransmission${tcp.retransmits === 1 ? '' : 's'} unanswered`);
  else if (tcp.totalRetrans > 0) parts.push(`${tcp.totalRetrans} retransmitted in all`);
  if (tcp.probes > 0) parts.push(`${tcp.probes} probe${tcp.probes === 1 ? '' : 's'} unanswered`);
  parts.push(`RTT ${formatRtt(tcp.rtt)}`);
  return parts.join(', ');
}

/** " (kernel: …)" or nothing: appended to a summary where TCP_INFO was read. */
function kernelSays(tcp: TcpInfo | undefined): string {
  return tcp === undefined ? '' : ` (kernel: ${tcpWords(tcp)})`;
}

function make(cause: DiagnosisCause, summary: string, advice: string): Diagnosis {
  return { cause, summary, advice };
}

/**
 * The first write after a long quiet both ways, answered by nothing: a middlebox that forgot the flow. With TCP_INFO
 * "nothing" means not even an ACK; without it, no inbound byte. Returns the quiet time, or undefined.
 */
function forgottenFlow(ctx: DiagnosisContext): number | undefined {
  const quiet = ctx.quietBeforeLastWrite;
  if (quiet === undefined || quiet < ctx.idleThreshold || ctx.readSinceLastWrite !== false) return undefined;
  // For a timeout, an ACK of that write means the flow was still known when it was written: the path died later.
  // Not for a reset: a user-space proxy or load balancer that dropped the flow ACKs in its own kernel, then resets.
  const timedOut = ctx.kind !== 'reset' && ctx.kind !== 'broken-pipe';
  if (timedOut && ctx.tcp !== undefined && !lastSendUnanswered(ctx.tcp)) return undefined;
  return quiet;
}

function intermediary(what: string, quiet: number, tcp: TcpInfo | undefined): Diagnosis {
  return make(
    'intermediary-idle-timeout',
    `${what} after ${formatDuration(quiet)} of silence${kernelSays(tcp)}.`,
    `A NAT, firewall or load balancer forgot the idle flow. Send heartbeats or set keepalive shorter than ${formatDuration(quiet)} (detectWithin does both).`,
  );
}

/**
 * A single reset counts as "right after the handshake" within about a round trip of it: a full accept queue with
 * tcp_abort_on_overflow answers the handshake's last ACK with RST one round trip later, before the peer's process ever
 * saw the connection. 5 ms covers this process's event loop noticing both on loopback; 4 RTTs a real path. Any later
 * reset of a connection nothing was sent on is worded as such (see reset()), never as "while traffic was flowing".
 */
const HANDSHAKE_RESET_FLOOR = 5;
const HANDSHAKE_RESET_RTTS = 4;

/** Nothing read, and reset within a few round trips of opening. */
function resetOnHandshake(ctx: DiagnosisContext): boolean {
  if (ctx.bytesRead !== 0 || ctx.connectionAge === undefined) return false;
  const rtt = ctx.tcp?.rtt ?? 0;
  return ctx.connectionAge <= Math.max(HANDSHAKE_RESET_FLOOR, HANDSHAKE_RESET_RTTS * rtt);
}

export function diagnose(ctx: DiagnosisContext): Diagnosis {
  switch (ctx.kind) {
    case 'aborted':
      return make('local-abort', 'closed by this process (abort signal or close()).', 'Nothing to fix: the application asked for it.');
    case 'dns':
      return make(
        'dns-failure',
        `the host name did not resolve (${ctx.code}).`,
        'Check the host name and the resolver; EAI_AGAIN is usually a transient resolver outage.',
      );
    case 'tls':
      return make(
        'tls-misconfigured',
        `the TLS handshake failed (${ctx.code}).`,
        'Check the CA bundle (tls.ca), the server name (tls.servername) and the certificate dates; a retry will not fix this.',
      );
    case 'resource':
      return resource(ctx.code);
    case 'heartbeat-timeout': {
      const waited = `no reply to a heartbeat within ${formatDuration(ctx.heartbeatTimeout ?? 0)} after ${formatDuration(ctx.idleFor ?? 0)} without inbound data`;
      const quiet = forgottenFlow(ctx);
      if (quiet !== undefined) return intermediary(`${waited}: the ping was the first write`, quiet, ctx.tcp);
      const tcp = ctx.tcp;
      if (tcp !== undefined && lastSendUnanswered(tcp)) {
        // The peer's kernel acknowledges whatever reaches it, hung process or not: no ACK means nothing reached it.
        return make(
          'path-dead',
          `${waited}; the peer's kernel never acknowledged the ping (kernel: ${tcpWords(tcp)}).`,
          'Nothing reaches the peer host: it vanished, or a firewall or route black-holes the flow. resock reconnects when the path is back.',
        );
      }
      if (tcp !== undefined) {
        return make(
          'peer-unresponsive',
          `${waited}; the peer's kernel acknowledged the ping, its process never answered (kernel: ${tcpWords(tcp)}).`,
          'The peer process is hung, stopped or overloaded (event loop, GC pauses, a deadlock); check it, or raise heartbeat.timeout if it is merely slow.',
        );
      }
      return make(
        'peer-unresponsive',
        `${waited}.`,
        'The peer process is hung, overloaded or behind a silent black hole; check its event loop and GC pauses, or raise heartbeat.timeout if it is merely slow.',
      );
    }
    case 'keepalive-timeout': {
      const quiet = forgottenFlow(ctx);
      if (quiet !== undefined) return intermediary(`the kernel gave up (${ctx.code}) on the first write`, quiet, ctx.tcp);
      return make(
        'path-dead',
        `the kernel gave up on the connection (${ctx.code}) after ${formatDuration(ctx.idleFor ?? 0)} without inbound data${kernelSays(ctx.tcp)}.`,
        'The host vanished or a middlebox drops the flow; keepalive/TCP_USER_TIMEOUT detected it. Lower detectWithin to detect it sooner.',
      );
    }
    case 'protocol':
      return make(
        'protocol-violation',
        `the peer sent data the framing could not accept (${ctx.code}).`,
        'Check that both sides use the same framing and limits; raise framing maxLength if the frames are legitimate.',
      );
    case 'connect-timeout':
      if (ctx.phase === 'handshake' || ctx.code === 'ERR_RESOCK_HANDSHAKE_TIMEOUT') {
        return make(
          'peer-unresponsive',
          `the peer accepted the connection but the ${ctx.phase === 'handshake' ? 'onConnect' : 'TLS'} handshake did not finish within ${formatDuration(ctx.connectTimeout)}.`,
          'The peer is overloaded or hung; check it, or raise connectTimeout if its handshake is slow.',
        );
      }
      if (ctx.earlyDrops >= 1 || ctx.previousCause === 'peer-unresponsive' || ctx.previousCause === 'peer-rejected') {
        // The path carried a handshake moments ago, to a peer whose kernel answered while its process did not (or
        // that dropped the connection at once): its listener is not accepting, and a full accept queue drops SYNs.
        const before =
          ctx.earlyDrops >= 1 || ctx.previousCause === 'peer-rejected'
            ? 'the peer dropped a connection it had just accepted'
            : "the peer's kernel answered while its process did not";
        return make(
          'peer-unresponsive',
          `no answer to the connection attempt within ${formatDuration(ctx.connectTimeout)}, right after ${before}: its listener is not accepting (full backlog).`,
          'The peer process stopped calling accept() (hung, overloaded) and its listen backlog is full; check it, and its backlog (somaxconn).',
        );
      }
      return make(
        ctx.everConnected ? 'path-dead' : 'peer-down',
        `no answer to the connection attempt within ${formatDuration(ctx.connectTimeout)}.`,
        'The host is down or a firewall silently drops the SYN; check the address, routes and security groups.',
      );
    case 'unreachable':
      if (ctx.phase === 'open') {
        const quiet = forgottenFlow(ctx);
        if (quiet !== undefined) return intermediary(`the path died (${ctx.code}) on the first write`, quiet, ctx.tcp);
        // TCP_USER_TIMEOUT expiry reports the last ICMP error seen instead of ETIMEDOUT.
        return make(
          'path-dead',
          `the path to the peer died (${ctx.code}) ${formatDuration(ctx.idleFor ?? 0)} after the last inbound byte${kernelSays(ctx.tcp)}.`,
          'A router or firewall reports the host unreachable: the host vanished or its route went away. resock reconnects when the path is back.',
        );
      }
    // falls through
    case 'refused': {
      const restarting =
        ctx.kind === 'refused' &&
        (ctx.everConnected || ctx.previousKind === 'reset' || ctx.previousKind === 'peer-closed');
      if (restarting) {
        return make(
          'peer-restarting',
          `the peer refused the connection (${ctx.code}) after having been up: it is restarting or its listener is down.`,
          'Usually transient: resock keeps retrying with backoff. If it lasts, check the service is running and listening.',
        );
      }
      return make(
        'peer-down',
        ctx.kind === 'refused'
          ? `nothing listens at the endpoint (${ctx.code}).`
          : `the endpoint is unreachable (${ctx.code}).`,
        ctx.kind === 'refused'
          ? 'Check that the service is running and the host/port or path is right.'
          : 'Check routes, the address and any firewall returning ICMP unreachable.',
      );
    }
    case 'peer-closed': {
      if (ctx.earlyDrops >= 2) return rejected(ctx);
      const idle = learnIdleLimit(ctx.peerIdleCloses);
      const quiet = quietAtEnd(ctx);
      if (idle !== undefined && quiet !== undefined && quiet >= idle.limit) {
        const range = idle.longest - idle.limit >= 100 ? ` (up to ${formatDuration(idle.longest)})` : '';
        return make(
          'peer-idle-timeout',
          `the peer closed idle connections (FIN) ${idle.closes} times after ${formatDuration(idle.limit)} idle${range}.`,
          `The peer (or a proxy in front of it) closes connections idle for about ${formatDuration(idle.limit)}: send heartbeats more often than that (heartbeat.interval below ${formatDuration(idle.limit)}), or raise its idle timeout.`,
        );
      }
      return make(
        'peer-closed-gracefully',
        `the peer closed the connection (FIN) after ${formatDuration(ctx.connectionAge ?? 0)}${quiet === undefined ? '' : `, ${formatDuration(quiet)} idle`}.`,
        'The peer shut down or closed an idle connection on purpose; if this repeats at a fixed idle time, send heartbeats more often than its idle limit.',
      );
    }
    case 'handshake':
      return make(
        'peer-rejected',
        `the handshake (onConnect) failed${ctx.message ? `: ${ctx.message}` : ''}.`,
        'Check credentials and protocol version; the peer accepted TCP but refused the session.',
      );
    case 'reset':
    case 'broken-pipe':
      return reset(ctx);
    case 'unknown':
      return make('unknown', `unclassified failure (${ctx.code}).`, 'Look at failure.error for the original error.');
  }
}

function reset(ctx: DiagnosisContext): Diagnosis {
  const what = ctx.kind === 'reset' ? 'reset' : 'broken pipe';
  if (ctx.code === 'ECONNABORTED') {
    // Linux reports ECONNABORTED only for an abort on this host, never for a RST from the peer.
    return make(
      'local-abort',
      'the connection was aborted on this host (ECONNABORTED), not by the peer.',
      'Something local killed the socket: an administrator (ss -K), a local firewall or conntrack flush, or the kernel under memory pressure.',
    );
  }
  if (ctx.phase !== 'open') {
    // TCP was up (a refusal would be ECONNREFUSED) but no traffic flowed yet: the peer turned the session down.
    return make(
      'peer-rejected',
      `${what} (${ctx.code}) during the ${ctx.phase === 'handshake' ? 'onConnect handshake' : 'connection attempt'}, before the connection opened.`,
      'The peer accepts TCP and then drops it: a full accept queue (tcp_abort_on_overflow), a connection limit, a TLS or protocol policy; check the peer.',
    );
  }
  if (ctx.earlyDrops >= 2) return rejected(ctx);
  const quiet = forgottenFlow(ctx);
  if (resetOnHandshake(ctx) && quiet === undefined) {
    return make(
      'peer-rejected',
      `${what} (${ctx.code}) ${formatDuration(ctx.connectionAge ?? 0)} after the handshake, before anything was read: the listener is not accepting${kernelSays(ctx.tcp)}.`,
      'The peer completes handshakes it cannot take (full accept queue with tcp_abort_on_overflow, a connection limit, load shedding); check that its process accepts connections.',
    );
  }
  const tcp = ctx.tcp;
  if (ctx.kind === 'reset' && tcp !== undefined && unansweredForLong(tcp)) {
    // A crashed process's kernel answers at once (within a round trip) with a reset; a host that lost every
    // connection's state answers nothing while it is down, and a reset to the first retransmission once it is back.
    return make(
      'peer-host-restarted',
      `reset (${ctx.code}) after our data went unanswered: no ACK for ${formatDuration(tcp.lastAckRecv)}${tcp.retransmits > 0 ? ` through ${tcp.retransmits} retransmission${tcp.retransmits === 1 ? '' : 's'}` : ''}, RTT ${formatRtt(tcp.rtt)}: the peer host lost its TCP state.`,
      'The peer host rebooted, failed over or lost its connection table (a stateful firewall or NAT restarted in front of it); resock reconnects, check the host and its uptime.',
    );
  }
  if (quiet !== undefined) {
    // The wording the intermediary rule had without TCP_INFO: "reset on the first write after 312 s of silence."
    return intermediary(`${what} on the first write`, quiet, tcp);
  }
  if (ctx.kind === 'broken-pipe') {
    return make(
      'write-after-reset',
      `a write failed (${ctx.code}): the peer had already closed or reset the connection.`,
      'The peer went away while this side was still writing; resock requeues what was not sent. Check why the peer closed.',
    );
  }
  const when =
    ctx.bytesRead === 0 && ctx.sinceLastWrite === undefined
      ? `${formatDuration(ctx.connectionAge ?? 0)} after the connection opened, before any data was exchanged`
      : `while traffic was flowing, ${formatDuration(ctx.idleFor ?? 0)} after the last inbound byte`;
  return make(
    'peer-crashed',
    `reset by the peer (${ctx.code}) ${when}${kernelSays(tcp)}.`,
    'The peer process crashed, was killed (OOM?) or closed the socket with unread data; check its logs and restarts.',
  );
}

function resource(code: string): Diagnosis {
  switch (code) {
    case 'EMFILE':
      return make(
        'local-resource-exhaustion',
        'this process ran out of file descriptors (EMFILE): its own limit, ulimit -n / RLIMIT_NOFILE.',
        'Raise this process\'s descriptor limit (ulimit -n, LimitNOFILE in systemd) or find the descriptor leak.',
      );
    case 'ENFILE':
      return make(
        'local-resource-exhaustion',
        'the host ran out of file descriptors (ENFILE): the system-wide table, not this process\'s limit.',
        'Raise fs.file-max on the host or find the process that holds the descriptors.',
      );
    case 'EADDRNOTAVAIL':
    case 'EADDRINUSE':
      return make(
        'local-resource-exhaustion',
        `this host ran out of ephemeral ports (${code}).`,
        'Ephemeral ports are exhausted: reuse connections, widen net.ipv4.ip_local_port_range, or shorten TIME_WAIT churn.',
      );
    default:
      return make(
        'local-resource-exhaustion',
        `this host ran out of a local resource (${code}).`,
        'ENOBUFS/ENOMEM mean kernel memory pressure: check socket buffer usage and the host\'s memory.',
      );
  }
}

function rejected(ctx: DiagnosisContext): Diagnosis {
  return make(
    'peer-rejected',
    `the peer dropped ${ctx.earlyDrops} connections in a row right after accepting them (last: ${ctx.code} after ${formatDuration(ctx.connectionAge ?? 0)}, ${ctx.bytesRead ?? 0} bytes read).`,
    'The peer accepts and then refuses the session: overload shedding, a connection limit, an auth or TLS policy, or a protocol mismatch.',
  );
}
