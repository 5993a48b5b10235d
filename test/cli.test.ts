import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeEscapes, parseTarget } from '../src/cli/probe.js';
import { colorEnabled, table } from '../src/cli/render.js';
import { listen, sleep, type TestServer } from './support/net.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// Starting node with tsx takes a second or two on a busy machine; every wait below includes it.
const STARTUP_MS = 10_000;

interface Run {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  exit: Promise<number | null>;
  /** Resolves with the first stdout line (past or future) that passes `match`; rejects after `ms`. */
  line(match: (line: string) => boolean, ms?: number): Promise<string>;
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  let err = '';
  let partial = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    stdout.push(...parts);
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return exit;
  });
  return {
    child,
    stdout,
    stderr: () => err,
    exit,
    line(match, ms = STARTUP_MS) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = stdout.find(match);
          if (found === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching line within ${ms} ms; stdout:\n${stdout.join('\n')}\nstderr:\n${err}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

async function echoServer(): Promise<TestServer> {
  const srv = await listen((s) => s.pipe(s));
  cleanups.push(() => srv.close());
  return srv;
}

function resetAll(srv: TestServer): number {
  const n = srv.sockets.size;
  for (const s of srv.sockets) s.resetAndDestroy();
  return n;
}

describe('arguments', () => {
  it('parses host:port, [ipv6]:port and socket paths', () => {
    expect(parseTarget('127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(parseTarget('db.internal:5432')).toEqual({ host: 'db.internal', port: 5432 });
    expect(parseTarget('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseTarget('[fe80::1%eth0]:22')).toEqual({ host: 'fe80::1%eth0', port: 22 });
    expect(parseTarget('/run/app.sock')).toEqual({ path: '/run/app.sock' });
    expect(parseTarget('./a:b.sock')).toEqual({ path: './a:b.sock' });
    expect(parseTarget('\\\\.\\pipe\\app')).toEqual({ path: '\\\\.\\pipe\\app' });
  });

  it('rejects targets with a message that says what would be right', () => {
    expect(() => parseTarget('localhost')).toThrow(/"localhost" has no port.*\.\/localhost/);
    expect(() => parseTarget('::1:80')).toThrow('an IPv6 address needs brackets: [::1]:80');
    expect(() => parseTarget('[::1]')).toThrow('"[::1]" is not [ipv6]:port, e.g. [::1]:8080');
    expect(() => parseTarget('[nope]:80')).toThrow('"nope" in "[nope]:80" is not an IPv6 address');
    expect(() => parseTarget(':80')).toThrow(/has no host/);
    expect(() => parseTarget('h:0')).toThrow('the port in "h:0" must be an integer in 1..65535, got "0"');
    expect(() => parseTarget('h:65536')).toThrow(/1\.\.65535, got "65536"/);
    expect(() => parseTarget('h:8o')).toThrow(/got "8o"/);
    expect(() => parseTarget('')).toThrow(/empty/);
  });

  it('decodes escapes in a heartbeat ping', () => {
    expect(decodeEscapes('PING\\r\\n')).toEqual(Buffer.from('PING\r\n'));
    expect(decodeEscapes('\\x00\\xffa\\\\b\\t\\0')).toEqual(Buffer.from([0, 0xff, 0x61, 0x5c, 0x62, 0x09, 0]));
    expect(decodeEscapes('ünï')).toEqual(Buffer.from('ünï', 'utf8'));
    expect(() => decodeEscapes('a\\q')).toThrow('unknown escape "\\\\q"');
    expect(() => decodeEscapes('\\x4')).toThrow(/two hex digits/);
    expect(() => decodeEscapes('a\\')).toThrow(/unknown escape/);
    expect(() => decodeEscapes('')).toThrow(/must not be empty/);
  });

  it('colours only a terminal, and never under NO_COLOR', () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({}, {})).toBe(false);
  });

  it('pads table cells before colouring them', () => {
    const lines = table(['a', 'bb'], [['xyz', '1']], (cell, _row, col) => (col === 0 ? `<${cell}>` : cell));
    expect(lines).toEqual(['a    bb', '───  ──', '<xyz>  1']);
  });

  it('exits 2 with the usage on stderr for bad arguments, and nothing on stdout', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /no command given/],
      [['frob'], /unknown command "frob"/],
      [['probe'], /probe needs a target/],
      [['probe', 'localhost'], /has no port/],
      [['probe', '::1:80'], /\[::1\]:80/],
      [['probe', 'h:1', '--bogus'], /Unknown option '--bogus'/],
      [['probe', 'h:1', '--insecure'], /--insecure only applies with --tls/],
      [['probe', 'h:1', '--detect-within', '5s'], /--detect-within must be a whole number of milliseconds, got "5s"/],
      [['probe', 'h:1', '--detect-within', '100'], /--detect-within: detectWithin must be an integer in 1000\.\..*got 100/],
      [['probe', 'h:1', '--heartbeat', 'a\\q'], /--heartbeat: unknown escape/],
      [['demo', 'now'], /demo takes no arguments/],
    ];
    const runs = cases.map(([args]) => cli(args));
    const codes = await Promise.all(runs.map((r) => r.exit));
    cases.forEach(([args, message], i) => {
      const run = runs[i]!;
      expect({ args, code: codes[i] }).toEqual({ args, code: 2 });
      expect(run.stderr()).toMatch(message);
      expect(run.stderr()).toMatch(/Usage:\n {2}resock probe/);
      expect(run.stdout.join('')).toBe('');
    });
  });

  it('prints help on stdout and exits 0', async () => {
    const runs = [cli(['--help']), cli(['help', 'probe']), cli(['probe', '-h']), cli(['demo', '--help'])];
    expect(await Promise.all(runs.map((r) => r.exit))).toEqual([0, 0, 0, 0]);
    expect(runs[0]!.stdout.join('\n')).toMatch(/Commands:\n {2}probe/);
    expect(runs[1]!.stdout.join('\n')).toMatch(/--detect-within <ms>/);
    expect(runs[2]!.stdout.join('\n')).toMatch(/--heartbeat <ping>/);
    expect(runs[3]!.stdout.join('\n')).toMatch(/Exits 0 when every step/);
  });
});

describe('resock probe', () => {
  it('shows a reset with its diagnosis, reconnects, and prints a summary on SIGINT', async () => {
    const srv = await echoServer();
    const run = cli(['probe', `127.0.0.1:${srv.port}`]);
    await run.line((l) => /connected +to 127\.0\.0\.1:\d+/.test(l));
    // Well past the handshake: a reset within a round trip of it is a listener not accepting (peer-rejected).
    await sleep(100);
    expect(resetAll(srv)).toBe(1);
    await run.line((l) => l.includes('failure') && l.includes('reset (ECONNRESET, open) → peer-crashed'));
    await run.line((l) => /reconnected +after/.test(l));
    run.child.kill('SIGINT');
    expect(await run.exit).toBe(0);
    const out = run.stdout.join('\n');
    expect(out).toMatch(/evidence: open [\d.]+ m?s, idle [\d.]+ m?s, .*B in \/ .*B out/);
    expect(out).toMatch(/advice: The peer process crashed/);
    expect(out).toMatch(/reconnecting +attempt \d+ in [\d.]+ m?s/);
    expect(out).toMatch(/summary of 127\.0\.0\.1:\d+ \(stopped by SIGINT\)/);
    expect(out).toMatch(/connects +2 in 2 attempts/);
    expect(out).toMatch(/failures +1: reset ×1/);
    expect(out).toMatch(/connected +[\d.]+ m?s \(\d+\.\d %\)/);
    // stdout is a pipe: no colour codes.
    expect(out).not.toContain('\x1b[');
    expect(run.stderr()).toBe('');
  });

  it('--json prints one parseable object per line, heartbeat round trips included', async () => {
    const srv = await echoServer();
    // detectWithin 3000 → heartbeat after 1.2 s of silence, so one round trip happens within a couple of seconds.
    const run = cli(['probe', `127.0.0.1:${srv.port}`, '--json', '--heartbeat', 'PING\\n', '--detect-within', '3000']);
    await run.line((l) => l.includes('"type":"heartbeat"'));
    resetAll(srv);
    await run.line((l) => l.includes('"type":"connect"') && l.includes('"reconnected":true'));
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    const records = run.stdout.filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
    const types = records.map((r) => r.type);
    expect(types[0]).toBe('start');
    expect(types.at(-1)).toBe('summary');
    expect(types).toEqual(expect.arrayContaining(['connecting', 'connect', 'heartbeat', 'failure', 'reconnecting']));
    for (const r of records) expect(typeof r.time).toBe('string');
    expect(records[0]).toMatchObject({ heartbeat: { ping: 'PING\n', interval: 1200, timeout: 1200 }, detectWithin: 3000 });
    const failure = records.find((r) => r.type === 'failure')!;
    expect(failure).toMatchObject({ kind: 'reset', code: 'ECONNRESET', phase: 'open', diagnosis: { cause: 'peer-crashed' } });
    expect(failure.idleFor).toEqual(expect.any(Number));
    expect(failure.connectionAge).toEqual(expect.any(Number));
    expect(failure).not.toHaveProperty('error');
    expect(records.find((r) => r.type === 'reconnecting')).toMatchObject({ delay: expect.any(Number), kind: 'reset' });
    const rtt = records.find((r) => r.type === 'heartbeat')!.rtt as number;
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(records.at(-1)).toMatchObject({
      stoppedBy: 'SIGTERM',
      connects: 2,
      failures: { reset: 1 },
      lastRtt: expect.any(Number),
      lastFailure: { kind: 'reset', cause: 'peer-crashed' },
    });
    const summary = records.at(-1) as { uptime: number; connectedMs: number; connectedRatio: number };
    expect(summary.connectedMs).toBeLessThanOrEqual(summary.uptime);
    // Connected from the first connect to SIGTERM except for one short reconnect, after a heartbeat round trip (>1.2 s).
    expect(summary.connectedRatio).toBeGreaterThan(0.5);
  });

  it('exits 1 when resock gives up by itself (TLS to a plain TCP server)', async () => {
    const srv = await echoServer();
    const run = cli(['probe', `127.0.0.1:${srv.port}`, '--tls', '--json']);
    expect(await run.exit).toBe(1);
    const records = run.stdout.filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.find((r) => r.type === 'failure')).toMatchObject({ kind: 'tls', retryable: false });
    expect(records.find((r) => r.type === 'close')).toMatchObject({ reason: 'fatal' });
    expect(records.at(-1)).toMatchObject({ type: 'summary', stoppedBy: 'close:fatal', connects: 0 });
  });
});

describe('resock demo', () => {
  it('--json walks every fault, each step as expected, and exits 0', async () => {
    const run = cli(['demo', '--json']);
    const code = await run.exit;
    const records = run.stdout.filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = records.filter((r) => r.type === 'step');
    const failed = steps.filter((s) => s.passed !== true);
    expect(failed).toEqual([]);
    expect(steps.map((s) => s.step)).toEqual([
      'reset',
      'peer crash',
      'restart',
      'idle reset',
      'hung peer',
      'black hole',
      'queue overflow',
    ]);
    for (const s of steps) expect(s).toMatchObject({ recovered: true, detectionMs: expect.any(Number) });
    expect(records.at(-1)).toMatchObject({ type: 'summary', passed: true, steps: 7, passedSteps: 7 });
    expect(code).toBe(0);
    expect(run.stderr()).toBe('');
  });
});
