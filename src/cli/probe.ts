// resock probe: holds one resilient connection to a service and prints what happens to it, event by event, with
// resock's classification and diagnosis; on SIGINT/SIGTERM a summary. For the engineer whose service logs
// "connection reset by peer" and who wants to see the path from this host.
import * as net from 'node:net';
import { ResilientSocket, type Endpoint, type Failure, type FailureKind, type ResilientSocketOptions } from '../index.js';
import {
  clockTime,
  describeEndpoint,
  evidenceText,
  failureFields,
  failureHeadline,
  formatBytes,
  formatCounts,
  formatDuration,
  type Output,
} from './render.js';

export interface ProbeOptions {
  endpoint: Endpoint;
  tls: boolean;
  /** Skip certificate verification (tls only). */
  insecure: boolean;
  detectWithin: number | undefined;
  /** Bytes sent as a heartbeat ping; any inbound byte counts as the reply. */
  heartbeat: Buffer | undefined;
}

/**
 * `host:port`, `[v6]:port`, or an IPC path (anything with a `/` or `\`). Throws an Error whose message says what is
 * wrong with `target` and what would be right.
 */
export function parseTarget(target: string): Endpoint {
  if (target.length === 0) throw new Error('the target is empty: give host:port, [ipv6]:port or a socket path');
  if (target.startsWith('[')) {
    const m = /^\[([^\]]+)\]:([^:]*)$/.exec(target);
    if (m === null) {
      const hint = target.endsWith(']') ? `, e.g. ${target}:8080` : '';
      throw new Error(`${JSON.stringify(target)} is not [ipv6]:port${hint}`);
    }
    const host = m[1] as string;
    if (net.isIPv6(host) === false) throw new Error(`${JSON.stringify(host)} in ${JSON.stringify(target)} is not an IPv6 address`);
    return { host, port: parsePort(m[2] as string, target) };
  }
  if (target.includes('/') || target.includes('\\')) return { path: target };
  const colon = target.lastIndexOf(':');
  if (colon < 0) {
    throw new Error(
      `${JSON.stringify(target)} has no port: give host:port, [ipv6]:port, or a socket path with a slash (./${target})`,
    );
  }
  const host = target.slice(0, colon);
  const port = target.slice(colon + 1);
  if (host.includes(':')) throw new Error(`an IPv6 address needs brackets: [${host}]:${port}`);
  if (host.length === 0) throw new Error(`${JSON.stringify(target)} has no host: give host:port, e.g. 127.0.0.1${target}`);
  return { host, port: parsePort(port, target) };
}

function parsePort(port: string, target: string): number {
  const n = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    throw new Error(`the port in ${JSON.stringify(target)} must be an integer in 1..65535, got ${JSON.stringify(port)}`);
  }
  return n;
}

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', '0': '\0', '\\': '\\' };

/** A ping typed on a command line: `\r\n`, `\t`, `\0`, `\\` and `\xHH` are decoded, everything else is UTF-8. */
export function decodeEscapes(text: string): Buffer {
  const parts: Buffer[] = [];
  let plain = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c !== '\\') {
      plain += c;
      continue;
    }
    const next = text[i + 1];
    if (next === 'x') {
      const hex = text.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`\\x needs two hex digits, got ${JSON.stringify(`\\x${hex}`)}`);
      parts.push(Buffer.from(plain, 'utf8'), Buffer.from([parseInt(hex, 16)]));
      plain = '';
      i += 3;
      continue;
    }
    const decoded = next === undefined ? undefined : ESCAPES[next];
    if (decoded === undefined) {
      throw new Error(`unknown escape ${JSON.stringify(`\\${next ?? ''}`)} (known: \\n \\r \\t \\0 \\\\ \\xHH)`);
    }
    plain += decoded;
    i += 1;
  }
  parts.push(Buffer.from(plain, 'utf8'));
  const bytes = Buffer.concat(parts);
  if (bytes.length === 0) throw new Error('the heartbeat ping must not be empty');
  return bytes;
}

export function probeSocketOptions(o: ProbeOptions): ResilientSocketOptions {
  return {
    ...o.endpoint,
    tls: o.tls ? (o.insecure ? { rejectUnauthorized: false } : true) : false,
    ...(o.detectWithin === undefined ? {} : { detectWithin: o.detectWithin }),
    heartbeat: o.heartbeat === undefined ? false : { ping: o.heartbeat },
    // 5 s: one watching client cannot storm anything, and a service coming back should show up within seconds.
    reconnect: { maxDelay: 5000 },
    // The probe never writes; pings are not queued.
    offlineQueue: false,
  };
}

export interface Probe {
  /** Resolves with the exit code: 0 after a signal, 1 when the socket gave up by itself (a fatal failure). */
  readonly done: Promise<number>;
  /** Prints the summary and closes, as on SIGINT. */
  stop(reason: string): void;
}

interface Tally {
  startedAt: number;
  openSince: number | undefined;
  connectedMs: number;
  longestOutage: number;
  /** When the connection was last lost (or the probe started); undefined while connected. */
  downSince: number | undefined;
  lastCause: string | undefined;
}

/**
 * Starts probing and prints the timeline to `out`. Throws synchronously (ERR_RESOCK_INVALID_OPTION) when resock
 * rejects the options, before anything is printed. Listens for SIGINT and SIGTERM until done.
 */
export function startProbe(o: ProbeOptions, out: Output): Probe {
  const sock = new ResilientSocket(probeSocketOptions(o));
  const { style } = out;
  const startedAt = performance.now();
  const tally: Tally = { startedAt, openSince: undefined, connectedMs: 0, longestOutage: 0, downSince: startedAt, lastCause: undefined };
  const target = describeEndpoint(o.endpoint);
  const elapsed = (): number => Math.round(performance.now() - tally.startedAt);
  const line = (label: string, text: string, paint: (s: string) => string = (s) => s): void =>
    out.text(`${style.dim(clockTime())}  ${paint(label.padEnd(12))}  ${text}`);
  const more = (text: string): void => out.text(`${' '.repeat(12 + 2 + 12 + 2)}${text}`);

  printHeader(o, sock, target, out);

  sock.on('connecting', ({ attempt, endpoint }) => {
    out.record('connecting', { elapsed: elapsed(), attempt, endpoint });
    // Later attempts of a run are announced by their 'reconnecting' line already.
    if (attempt === 1) line('connecting', style.dim(`attempt ${attempt} to ${describeEndpoint(endpoint)}`), style.dim);
  });
  sock.on('connect', ({ attempt, endpoint, reconnected, downtime }) => {
    tally.openSince = performance.now();
    tally.downSince = undefined;
    if (reconnected) tally.longestOutage = Math.max(tally.longestOutage, downtime);
    const { keepAlive } = sock.stats();
    out.record('connect', { elapsed: elapsed(), attempt, endpoint, reconnected, downtime: Math.round(downtime), keepAliveApplied: keepAlive.applied });
    const local = sock.socket?.localPort === undefined ? '' : style.dim(` from local port ${sock.socket.localPort}`);
    line(
      reconnected ? 'reconnected' : 'connected',
      reconnected ? `after ${formatDuration(downtime)} down${local}` : `to ${describeEndpoint(endpoint)}${local}`,
      style.green,
    );
    if (!reconnected && keepAlive.applied !== false) {
      const missing = Object.entries(keepAlive.applied).filter(([, ok]) => !ok).map(([k]) => k);
      if (missing.length > 0) more(style.magenta(`keepalive not applied: ${missing.join(', ')} (kernel defaults stay)`));
    }
  });
  sock.on('disconnect', () => {
    const now = performance.now();
    if (tally.openSince !== undefined) tally.connectedMs += now - tally.openSince;
    tally.openSince = undefined;
    tally.downSince = now;
  });
  sock.on('failure', (f: Failure) => {
    out.record('failure', { elapsed: elapsed(), ...failureFields(f) });
    line('failure', failureHeadline(f, style), style.red);
    const evidence = evidenceText(f);
    if (evidence !== undefined) more(style.dim(`evidence: ${evidence}`));
    // A long outage repeats the same diagnosis on every attempt: its advice once is enough.
    if (f.diagnosis.cause !== tally.lastCause) more(style.dim(`advice: ${f.diagnosis.advice}`));
    tally.lastCause = f.diagnosis.cause;
  });
  sock.on('reconnecting', ({ attempt, delay, failure }) => {
    out.record('reconnecting', { elapsed: elapsed(), attempt, delay: Math.round(delay), kind: failure.kind });
    line('reconnecting', style.dim(`attempt ${attempt} in ${formatDuration(delay)}`), style.dim);
  });
  sock.on('heartbeat', ({ rtt }) => {
    out.record('heartbeat', { elapsed: elapsed(), rtt: round1(rtt) });
    line('heartbeat', `rtt ${formatDuration(rtt)}`, style.blue);
  });
  sock.on('warning', ({ code, message }) => {
    out.record('warning', { elapsed: elapsed(), code, message });
    line('warning', `${code}: ${message}`, style.magenta);
  });

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });
  let finished = false;
  /** `how`: what stopped the probe, as JSON prints it; the text says it in words. */
  const finish = (how: string, code: number): void => {
    if (finished) return;
    finished = true;
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    printSummary(sock, tally, target, how, out);
    sock.off('close', onClose);
    sock.destroy();
    resolveDone(code);
  };
  const onSigint = (): void => finish('SIGINT', 0);
  const onSigterm = (): void => finish('SIGTERM', 0);
  const onClose = ({ reason, failure }: { reason: string; failure?: Failure }): void => {
    out.record('close', { elapsed: elapsed(), reason, ...(failure ? { kind: failure.kind, cause: failure.diagnosis.cause } : {}) });
    line('closed', `${reason}${failure ? `: ${failure.kind} is not retryable, resock gave up` : ''}`, style.red);
    finish(`close:${reason}`, 1);
  };
  sock.on('close', onClose);
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  sock.connect();
  return { done, stop: (reason) => finish(reason, 0) };
}

function printHeader(o: ProbeOptions, sock: ResilientSocket, target: string, out: Output): void {
  const { heartbeat, keepAlive, detectWithin, connectTimeout } = sock.options;
  const transport = 'path' in o.endpoint ? 'ipc' : 'tcp';
  out.record('start', {
    target,
    endpoint: o.endpoint,
    transport,
    tls: o.tls,
    insecure: o.insecure,
    detectWithin: detectWithin ?? null,
    connectTimeout,
    heartbeat: heartbeat ? { ping: heartbeat.ping().toString('utf8'), interval: heartbeat.interval, timeout: heartbeat.timeout } : false,
    // resock does not apply keepalive to IPC paths.
    keepAlive: 'path' in o.endpoint ? false : keepAlive,
  });
  const { style } = out;
  out.text(style.bold(`resock probe ${target}`) + style.dim(` (${transport}${o.tls ? (o.insecure ? ', tls without verification' : ', tls') : ''})`));
  out.text(
    style.dim(
      heartbeat
        ? `  heartbeat ${JSON.stringify(heartbeat.ping().toString('utf8'))} after ${formatDuration(heartbeat.interval)} of silence, ` +
            `reply (any byte) within ${formatDuration(heartbeat.timeout)}`
        : '  heartbeat off (--heartbeat <ping> to find a hung peer)',
    ),
  );
  if (keepAlive && !('path' in o.endpoint)) {
    out.text(
      style.dim(
        `  keepalive after ${formatDuration(keepAlive.idle)} idle, ${keepAlive.count} probe${keepAlive.count === 1 ? '' : 's'} ${formatDuration(keepAlive.interval)} apart, ` +
          `user timeout ${formatDuration(keepAlive.userTimeout)}`,
      ),
    );
  }
  out.text(style.dim('  Ctrl-C for a summary'));
  out.text();
}

function printSummary(sock: ResilientSocket, tally: Tally, target: string, how: string, out: Output): void {
  const now = performance.now();
  const uptime = now - tally.startedAt;
  const connectedMs = tally.connectedMs + (tally.openSince === undefined ? 0 : now - tally.openSince);
  const stats = sock.stats();
  const ratio = uptime > 0 ? connectedMs / uptime : 0;
  const failures = Object.values(stats.failures).reduce((a, b) => a + (b ?? 0), 0);
  const last = stats.lastFailure;
  const ongoing = tally.downSince === undefined ? 0 : now - tally.downSince;
  const longestOutage = Math.max(tally.longestOutage, ongoing);
  out.record('summary', {
    target,
    stoppedBy: how,
    uptime: Math.round(uptime),
    connectedMs: Math.round(connectedMs),
    connectedRatio: Math.round(ratio * 10_000) / 10_000,
    connects: stats.connects,
    attempts: stats.attempts,
    failures: stats.failures,
    longestOutage: Math.round(longestOutage),
    // Not connected when stopped: how long it had been down by then.
    downFor: Math.round(ongoing),
    lastRtt: stats.rtt === undefined ? null : round1(stats.rtt),
    lastFailure: last ? { kind: last.kind, code: last.code, cause: last.diagnosis.cause, at: new Date(last.at).toISOString() } : null,
    bytesRead: stats.bytesRead,
    bytesWritten: stats.bytesWritten,
  });
  const { style } = out;
  const rows: [string, string][] = [
    ['uptime', formatDuration(uptime)],
    ['connected', `${formatDuration(connectedMs)} (${(ratio * 100).toFixed(1)} %)`],
    ['connects', `${stats.connects} in ${stats.attempts} attempts`],
    ['failures', failures === 0 ? 'none' : `${failures}: ${formatCounts(stats.failures as Record<FailureKind, number>)}`],
    ['longest outage', longestOutage > 0 ? `${formatDuration(longestOutage)}${ongoing > 0 && ongoing >= longestOutage ? ' (still down)' : ''}` : '-'],
    ['last rtt', stats.rtt === undefined ? '-' : formatDuration(stats.rtt)],
    ['last failure', last ? `${last.kind} → ${last.diagnosis.cause} at ${clockTime(last.at)}` : '-'],
    ['bytes', `${formatBytes(stats.bytesRead)} in, ${formatBytes(stats.bytesWritten)} out`],
  ];
  out.text();
  const stopped = how.startsWith('close:') ? `resock closed the socket: ${how.slice('close:'.length)}` : `stopped by ${how}`;
  out.text(style.bold(`summary of ${target}`) + style.dim(` (${stopped})`));
  for (const [k, v] of rows) out.text(`  ${k.padEnd(15)} ${v}`);
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
