// Formatting shared by the resock commands: colours, durations, byte counts, failures, tables and JSON lines.
// Text is for a person at a terminal; --json prints one object per line for jq and log pipelines.
import type { Endpoint, Failure } from '../index.js';

/** ANSI colours only for a terminal, and never when NO_COLOR is set to a non-empty value (https://no-color.org). */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  blue(s: string): string;
  magenta(s: string): string;
}

export function createStyle(color: boolean): Style {
  const paint =
    (open: number) =>
    (s: string): string =>
      color ? `\x1b[${open}m${s}\x1b[0m` : s;
  return { bold: paint(1), dim: paint(2), red: paint(31), green: paint(32), yellow: paint(33), blue: paint(34), magenta: paint(35) };
}

/** Where a command prints: text lines or JSON lines, never both. */
export interface Output {
  readonly json: boolean;
  readonly style: Style;
  /** A line for a person; ignored in JSON mode. */
  text(line?: string): void;
  /** One JSON object on its own line; ignored in text mode. */
  record(type: string, fields: Record<string, unknown>): void;
}

export function createOutput(json: boolean, stream: NodeJS.WriteStream = process.stdout): Output {
  const style = createStyle(!json && colorEnabled(stream));
  return {
    json,
    style,
    text(line = '') {
      if (!json) stream.write(`${line}\n`);
    },
    record(type, fields) {
      if (json) stream.write(`${JSON.stringify({ type, time: new Date().toISOString(), ...fields })}\n`);
    },
  };
}

/** `12:34:56.789`, local time: what an on-call engineer lines up with the server's own logs. */
export function clockTime(at: number = Date.now()): string {
  const d = new Date(at);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** Milliseconds under a second, seconds with one decimal under a minute, then minutes and hours. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const [value, unit] = n < 1024 * 1024 ? [n / 1024, 'KiB'] : [n / (1024 * 1024), 'MiB'];
  return `${value.toFixed(1).replace(/\.0$/, '')} ${unit}`;
}

/** `host:port`, `[v6]:port` or the socket path. */
export function describeEndpoint(endpoint: Endpoint): string {
  if ('path' in endpoint) return endpoint.path;
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/** `reset ×2, refused ×1` from a count per kind, in the order given. */
export function formatCounts(counts: Readonly<Record<string, number | undefined>>): string {
  const parts = Object.entries(counts)
    .filter((e): e is [string, number] => e[1] !== undefined && e[1] > 0)
    .map(([k, n]) => `${k} ×${n}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** A Failure without its Error object (which does not serialise), times rounded: what --json prints. */
export function failureFields(f: Failure): Record<string, unknown> {
  const { error: _error, at, ...rest } = f;
  return { ...rest, at: new Date(at).toISOString() };
}

/** The evidence of a failure on an open connection, in one line: age, idle time, bytes each way. */
export function evidenceText(f: Failure): string | undefined {
  if (f.connectionAge === undefined) return undefined;
  const parts = [`open ${formatDuration(f.connectionAge)}`];
  if (f.idleFor !== undefined) parts.push(`idle ${formatDuration(f.idleFor)}`);
  if (f.sinceLastWrite !== undefined) parts.push(`last write ${formatDuration(f.sinceLastWrite)} before`);
  parts.push(`${formatBytes(f.bytesRead)} in / ${formatBytes(f.bytesWritten)} out`);
  return parts.join(', ');
}

/** What became of the writes of the lost connection, or undefined when there were none. */
export function writesText(f: Failure): string | undefined {
  const w = f.writes;
  if (w === undefined || w.confirmedBytes + w.unconfirmedBytes + w.requeuedBytes === 0) return undefined;
  return (
    `${formatBytes(w.confirmedBytes)} confirmed by a heartbeat, ${formatBytes(w.unconfirmedBytes)} unconfirmed (may be lost), ` +
    `${formatBytes(w.requeuedBytes)} requeued (never sent, resent on reconnect)`
  );
}

/** `reset (ECONNRESET, open) → peer-crashed: reset by the peer …`, coloured. */
export function failureHeadline(f: Failure, style: Style): string {
  return `${style.red(f.kind)} ${style.dim(`(${f.code}, ${f.phase})`)} → ${style.yellow(f.diagnosis.cause)}: ${f.diagnosis.summary}`;
}

/**
 * Rows padded to their widest cell. Cells are plain text; `paint` colours a cell after padding, so escape codes never
 * count toward the width.
 */
export function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  paint: (cell: string, row: number, col: number) => string = (c) => c,
): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[], row: number): string =>
    cells
      .map((c, i) => {
        const padded = i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0);
        return row < 0 ? padded : paint(padded, row, i);
      })
      .join('  ')
      .trimEnd();
  return [line(headers, -1), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map((r, i) => line(r, i))];
}
