// Benchmark worker processes and the JSON-lines protocol they speak: one event object per stdout line, one command
// object per stdin line. Servers and the memory-measured clients run in their own processes so that neither their
// CPU nor their heap lands in the numbers of the process being measured.
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(BENCH_DIR, '..');

export interface Message {
  event: string;
  [key: string]: unknown;
}

export interface Worker {
  readonly pid: number;
  send(cmd: string, fields?: Record<string, unknown>): void;
  /** The next unread event named `event`; rejects on an 'error' event, on exit, or after `timeoutMs`. */
  next(event: string, timeoutMs: number): Promise<Message>;
  /** Ends the worker (stdin closed, then SIGKILL if it lingers) and resolves once it has exited. */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** Open files the worker needs: its shell raises `ulimit -n` as far as the hard limit allows. */
  files?: number;
  nodeArgs?: readonly string[];
  /** false for a script already compiled to JavaScript (see build.ts). Default true: TypeScript through tsx. */
  tsx?: boolean;
}

const live = new Set<() => void>();
// A crashed benchmark must not leave 10,000 connections' worth of workers behind.
process.on('exit', () => {
  for (const kill of live) kill();
});

/** Runs `script` (relative to bench/, or absolute) with node; `config` reaches it as JSON in argv[2]. */
export function spawnWorker(script: string, config: unknown, opts: SpawnOptions = {}): Worker {
  const loader = opts.tsx === false ? [] : ['--import', 'tsx'];
  const node = [process.execPath, ...(opts.nodeArgs ?? []), ...loader, resolve(BENCH_DIR, script), JSON.stringify(config)];
  const files = opts.files ?? 0;
  // `ulimit -n` can only be raised from inside the new process; exec keeps the pid so signals reach node itself.
  const raise = `ulimit -n ${files} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  // tsx's own loader flags must not stack on the ones the worker brings.
  delete env.NODE_OPTIONS;
  const child = spawn('/bin/sh', ['-c', files > 0 ? raise : 'exec "$@"', 'sh', ...node], {
    cwd: REPO_ROOT, // `--import tsx` resolves from here
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${script}`);
  const label = `${script}[${child.pid}]`;
  const inbox: Message[] = [];
  let waiter: (() => void) | undefined;
  let stderr = '';
  let exited = false;
  const exit = new Promise<void>((done) => {
    // 'close', not 'exit': it comes after stdout has ended, so every line the worker wrote has been read.
    child.once('close', (code, signal) => {
      exited = true;
      live.delete(kill);
      if (code !== 0 && signal === null) stderr += `\n(exit code ${code})`;
      waiter?.();
      done();
    });
  });
  const kill = (): void => {
    child.kill('SIGKILL');
  };
  live.add(kill);
  child.stdin.on('error', () => {}); // EPIPE once the worker is gone
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      inbox.push(JSON.parse(line) as Message);
    } catch {
      stderr = (stderr + `\nunparsable line: ${line}`).slice(-4000);
    }
    waiter?.();
  });

  return {
    pid: child.pid,
    send(cmd, fields = {}) {
      child.stdin.write(`${JSON.stringify({ cmd, ...fields })}\n`);
    },
    async next(event, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const i = inbox.findIndex((m) => m.event === event || m.event === 'error');
        if (i >= 0) {
          const [m] = inbox.splice(i, 1) as [Message];
          if (m.event === 'error') throw new Error(`${label} failed: ${String(m.message)}\n${stderr}`);
          return m;
        }
        if (exited) throw new Error(`${label} exited before '${event}'\n${stderr}`);
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`${label}: no '${event}' within ${timeoutMs} ms\n${stderr}`);
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, left);
          waiter = () => {
            clearTimeout(timer);
            waiter = undefined;
            wake();
          };
        });
      }
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(kill, 5000);
      await exit;
      clearTimeout(timer);
    },
  };
}

// ---- the worker's side ------------------------------------------------------------------------------------------------

export interface Command {
  cmd: string;
  [key: string]: unknown;
}

export function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

export function readConfig<T>(): T {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('worker needs its JSON config as the first argument');
  return JSON.parse(raw) as T;
}

/**
 * Calls `handler` per command line. The worker exits when stdin closes: the benchmark stopped it, or died. A throwing or
 * rejecting handler is reported as an 'error' event, which fails the parent's next wait.
 */
export function onCommand(handler: (command: Command) => void | Promise<void>): void {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    Promise.resolve()
      .then(() => handler(JSON.parse(line) as Command))
      .catch((err: unknown) => {
        emit('error', { message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      });
  });
  lines.on('close', () => process.exit(0));
}

/** Reports an uncaught failure as an 'error' event before dying, so the parent sees why. */
export function reportCrashes(): void {
  const report = (err: unknown): void => {
    emit('error', { message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  };
  process.on('uncaughtException', report);
  process.on('unhandledRejection', report);
}
