// Turns a classified failure and the evidence around it into a likely cause and what to change.
// Pure: every input is data, so each rule is testable without a socket.
import type { Diagnosis, DiagnosisCause, FailureKind, FailurePhase } from './types.js';

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
  /** Connections in a row, this one included, that were lost before they became stable. */
  earlyDrops: number;
  heartbeatTimeout?: number;
  message?: string;
}

/** Seconds with one decimal under a minute, whole seconds above; milliseconds under a second. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 1000)} s`;
}

function make(cause: DiagnosisCause, summary: string, advice: string): Diagnosis {
  return { cause, summary, advice };
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
      return make(
        'local-resource-exhaustion',
        `this host ran out of a local resource (${ctx.code}).`,
        ctx.code === 'EADDRNOTAVAIL' || ctx.code === 'EADDRINUSE'
          ? 'Ephemeral ports are exhausted: reuse connections, widen net.ipv4.ip_local_port_range, or shorten TIME_WAIT churn.'
          : 'Raise the file descriptor limit (ulimit -n) or find the descriptor leak; ENOBUFS/ENOMEM mean kernel memory pressure.',
      );
    case 'heartbeat-timeout':
      return make(
        'peer-unresponsive',
        `no reply to a heartbeat within ${formatDuration(ctx.heartbeatTimeout ?? 0)} after ${formatDuration(ctx.idleFor ?? 0)} without inbound data.`,
        'The peer process is hung, overloaded or behind a silent black hole; check its event loop and GC pauses, or raise heartbeat.timeout if it is merely slow.',
      );
    case 'keepalive-timeout':
      return make(
        'path-dead',
        `the kernel gave up on the connection (${ctx.code}) after ${formatDuration(ctx.idleFor ?? 0)} without inbound data.`,
        'The host vanished or a middlebox drops the flow; keepalive/TCP_USER_TIMEOUT detected it. Lower detectWithin to detect it sooner.',
      );
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
      return make(
        ctx.everConnected ? 'path-dead' : 'peer-down',
        `no answer to the connection attempt within ${formatDuration(ctx.connectTimeout)}.`,
        'The host is down or a firewall silently drops the SYN; check the address, routes and security groups.',
      );
    case 'unreachable':
      if (ctx.phase === 'open') {
        // TCP_USER_TIMEOUT expiry reports the last ICMP error seen instead of ETIMEDOUT.
        return make(
          'path-dead',
          `the path to the peer died (${ctx.code}) ${formatDuration(ctx.idleFor ?? 0)} after the last inbound byte.`,
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
    case 'peer-closed':
      if (ctx.earlyDrops >= 2) return rejected(ctx);
      return make(
        'peer-closed-gracefully',
        `the peer closed the connection (FIN) after ${formatDuration(ctx.connectionAge ?? 0)}.`,
        'The peer shut down or closed an idle connection on purpose; if this repeats at a fixed idle time, send heartbeats more often than its idle limit.',
      );
    case 'handshake':
      return make(
        'peer-rejected',
        `the handshake (onConnect) failed${ctx.message ? `: ${ctx.message}` : ''}.`,
        'Check credentials and protocol version; the peer accepted TCP but refused the session.',
      );
    case 'reset':
    case 'broken-pipe': {
      if (ctx.code === 'ECONNABORTED') {
        // Linux reports ECONNABORTED only for an abort on this host, never for a RST from the peer.
        return make(
          'local-abort',
          'the connection was aborted on this host (ECONNABORTED), not by the peer.',
          'Something local killed the socket: an administrator (ss -K), a local firewall or conntrack flush, or the kernel under memory pressure.',
        );
      }
      if (ctx.earlyDrops >= 2) return rejected(ctx);
      const quiet = ctx.quietBeforeLastWrite;
      if (quiet !== undefined && quiet >= ctx.idleThreshold && ctx.readSinceLastWrite === false) {
        return make(
          'intermediary-idle-timeout',
          `${ctx.kind === 'reset' ? 'reset' : 'broken pipe'} on the first write after ${formatDuration(quiet)} of silence.`,
          `A NAT, firewall or load balancer forgot the idle flow. Send heartbeats or set keepalive shorter than ${formatDuration(quiet)} (detectWithin does both).`,
        );
      }
      if (ctx.kind === 'broken-pipe') {
        return make(
          'write-after-reset',
          `a write failed (${ctx.code}): the peer had already closed or reset the connection.`,
          'The peer went away while this side was still writing; resock requeues what was not sent. Check why the peer closed.',
        );
      }
      return make(
        'peer-crashed',
        `reset by the peer (${ctx.code}) while traffic was flowing, ${formatDuration(ctx.idleFor ?? 0)} after the last inbound byte.`,
        'The peer process crashed, was killed (OOM?) or closed the socket with unread data; check its logs and restarts.',
      );
    }
    case 'unknown':
      return make('unknown', `unclassified failure (${ctx.code}).`, 'Look at failure.error for the original error.');
  }
}

function rejected(ctx: DiagnosisContext): Diagnosis {
  return make(
    'peer-rejected',
    `the peer dropped ${ctx.earlyDrops} connections in a row right after accepting them (last: ${ctx.code} after ${formatDuration(ctx.connectionAge ?? 0)}).`,
    'The peer accepts and then refuses the session: overload shedding, a connection limit, an auth or TLS policy, or a protocol mismatch.',
  );
}
