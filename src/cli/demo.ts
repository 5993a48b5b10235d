// resock demo: a line server and a fault proxy in this process, one ResilientSocket riding through seven faults, and
// for each what resock saw, how it diagnosed it, how fast, and whether it recovered. Every step checks its own
// outcome, so the demo doubles as an end-to-end check (exit 1 when a step misbehaved).
import * as net from 'node:net';
import { connect, lines, type Failure, type ResilientSocket, type ResilientSocketOptions } from '../index.js';
import { createFaultProxy, type FaultProxy, type ProxyConnection } from '../testing/index.js';
import {
  evidenceText,
  failureFields,
  failureHeadline,
  formatBytes,
  formatDuration,
  table,
  writesText,
  type Output,
} from './render.js';

const HOST = '127.0.0.1';
// Fast enough to finish in seconds, slow enough that a loaded CI machine does not fake a timeout.
const HEARTBEAT = { interval: 300, timeout: 500 };
const RECONNECT = { minDelay: 50, maxDelay: 400, stableAfter: 250 };
const QUEUE_WRITES = 3;
/** How long the server stays down when it crashes or restarts. */
const DOWN_MS = 500;
/** Any single wait for an event; far above what each takes here (a few ms to ~1 s). */
const WAIT_MS = 3000;
/** The whole demo; beyond it the remaining steps fail and the demo ends. */
const DEADLINE_MS = 45_000;
const BATCH_BYTES = 512 * 1024;

const noop = (): void => {};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The service under test: one request per line; PING → PONG, short lines echoed, long lines acknowledged by size. */
class LineServer {
  port = 0;
  readonly sockets = new Set<net.Socket>();
  /** Runs before the normal reply; returns true when it handled the line itself. */
  onLine: ((socket: net.Socket, line: string) => boolean) | undefined;
  #server: net.Server | undefined;

  get listening(): boolean {
    return this.#server !== undefined;
  }

  async start(): Promise<void> {
    const server = net.createServer({ noDelay: true }, (s) => this.#accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', noop);
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
  }

  /** Closes the listener at once (new connections are refused); open connections are left to the caller. */
  stopListening(): void {
    this.#server?.close();
    this.#server = undefined;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  #accept(s: net.Socket): void {
    this.sockets.add(s);
    s.on('error', noop);
    s.on('close', () => this.sockets.delete(s));
    let held: Buffer = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      let data = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      for (let i = data.indexOf(10); i >= 0 && !s.destroyed; i = data.indexOf(10)) {
        this.#reply(s, data.subarray(0, i));
        data = data.subarray(i + 1);
      }
      held = data;
    });
  }

  #reply(s: net.Socket, line: Buffer): void {
    if (line.length > 200) {
      s.write(`ACK ${line.length} bytes\n`);
      return;
    }
    const text = line.toString('utf8');
    if (this.onLine?.(s, text) === true || s.destroyed) return;
    s.write(text === 'PING' ? 'PONG\n' : `ECHO ${text}\n`);
  }
}

interface Seen {
  client: string;
  failure: Failure;
  at: number;
}

/** What one step observed, filled by the event listeners while it runs. */
class StepRun {
  /** When the step broke something; detection times count from here. */
  faultAt = performance.now();
  readonly failures: Seen[] = [];
  readonly connects: { client: string; at: number; downtime: number }[] = [];
  readonly messages: string[] = [];
  readonly checks: { what: string; ok: boolean }[] = [];
  readonly notes: string[] = [];
  /** Runs inside the 'failure' listener, before resock schedules its reconnect. */
  onFailure: ((seen: Seen) => void) | undefined;
  readonly #advised = new Set<string>();

  check(what: string, ok: boolean): boolean {
    this.checks.push({ what, ok });
    return ok;
  }

  firstAdvice(cause: string): boolean {
    if (this.#advised.has(cause)) return false;
    this.#advised.add(cause);
    return true;
  }

  failuresOf(client: string): Seen[] {
    return this.failures.filter((s) => s.client === client);
  }
}

interface StepResult {
  index: number;
  step: string;
  title: string;
  passed: boolean;
  saw: string;
  diagnosis: string;
  detectionMs: number | undefined;
  recovered: boolean;
  recoveryMs: number | undefined;
  checks: { what: string; ok: boolean }[];
}

interface Step {
  name: string;
  title: string;
  /** The client whose failures the table reports. */
  client?: string;
  run(lab: Lab, run: StepRun): Promise<void>;
}

class StepTimeout extends Error {}

/** The server, the proxy in front of it, the main client, and the printing of everything they do. */
class Lab {
  readonly t0 = performance.now();
  readonly deadline = this.t0 + DEADLINE_MS;
  current: StepRun | undefined;
  lastConnect = new Map<string, number>();
  sock!: ResilientSocket;

  constructor(
    readonly out: Output,
    readonly server: LineServer,
    readonly proxy: FaultProxy,
  ) {}

  /** Every client dials the proxy, so the demo can also break the path. */
  client(name: string, options: Partial<ResilientSocketOptions>): ResilientSocket {
    const sock = connect({
      host: HOST,
      port: this.proxy.port,
      framing: lines(),
      connectTimeout: 2000,
      reconnect: RECONNECT,
      // A user-space proxy ACKs everything itself: kernel keepalive can never see these faults, only a heartbeat can.
      keepAlive: false,
      ...options,
    });
    this.#watch(sock, name);
    return sock;
  }

  /** Resolves once `pred` holds; throws StepTimeout after `ms` or past the demo's deadline. */
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const end = Math.min(performance.now() + ms, this.deadline);
    while (!pred()) {
      if (performance.now() >= end) throw new StepTimeout(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  /** Waits until the main client has been open long enough to count as stable, so one step's drops do not add up with the next's. */
  async settle(): Promise<void> {
    await this.until(() => this.sock.state === 'open', WAIT_MS, 'the main client to be connected');
    const since = performance.now() - (this.lastConnect.get('main') ?? 0);
    const rest = RECONNECT.stableAfter + 100 - since;
    if (rest > 0) await sleep(rest);
  }

  /** The server's end of `sock`'s current connection, found through the proxy by port numbers. */
  serverSide(sock: ResilientSocket): net.Socket | undefined {
    const link = this.proxyLink(sock);
    const port = link?.upstream.localPort;
    return port === undefined ? undefined : [...this.server.sockets].find((s) => s.remotePort === port);
  }

  proxyLink(sock: ResilientSocket): ProxyConnection | undefined {
    const port = sock.socket?.localPort;
    return port === undefined ? undefined : this.proxy.connections.find((c) => c.client.remotePort === port);
  }

  /** Back to a working service after a step that went wrong, so the next step starts clean. */
  async restore(): Promise<void> {
    this.server.onLine = undefined;
    for (const s of this.server.sockets) if (s.isPaused()) s.destroy();
    if (!this.server.listening) await this.server.start();
    await this.proxy.heal();
  }

  stamp(): string {
    return this.out.style.dim(`${((performance.now() - this.t0) / 1000).toFixed(2).padStart(6)}s`);
  }

  line(client: string, text: string): void {
    this.out.text(`${this.stamp()}  ${this.out.style.dim(client.padEnd(6))} ${text}`);
  }

  more(text: string): void {
    this.out.text(`${' '.repeat(15)} ${text}`);
  }

  record(client: string, event: string, fields: Record<string, unknown>): void {
    this.out.record(event, { step: this.currentName, client, elapsed: Math.round(performance.now() - this.t0), ...fields });
  }

  currentName: string | undefined;

  #watch(sock: ResilientSocket, client: string): void {
    const { style } = this.out;
    sock.on('connecting', ({ attempt }) => this.record(client, 'connecting', { attempt }));
    sock.on('connect', ({ attempt, reconnected, downtime }) => {
      const at = performance.now();
      this.lastConnect.set(client, at);
      this.current?.connects.push({ client, at, downtime });
      this.record(client, 'connect', { attempt, reconnected, downtime: Math.round(downtime) });
      this.line(client, style.green(reconnected ? `reconnected after ${formatDuration(downtime)} down` : 'connected'));
    });
    sock.on('failure', (failure) => {
      const seen = { client, failure, at: performance.now() };
      const run = this.current;
      const last = run?.failuresOf(client).at(-1)?.failure;
      run?.failures.push(seen);
      this.record(client, 'failure', failureFields(failure));
      if (last?.kind === failure.kind && last.diagnosis.cause === failure.diagnosis.cause && failure.phase !== 'open') {
        // A retry meeting the same closed door: the diagnosis was printed a line or two above.
        this.line(client, `${style.red('failure')} ${failure.kind} again ${style.dim(`(${failure.code})`)}`);
        run?.onFailure?.(seen);
        return;
      }
      this.line(client, `${style.red('failure')} ${failureHeadline(failure, style)}`);
      const evidence = evidenceText(failure);
      if (evidence !== undefined) this.more(style.dim(`evidence: ${evidence}`));
      const writes = writesText(failure);
      if (writes !== undefined) this.more(style.dim(`writes: ${writes}`));
      if (run === undefined || run.firstAdvice(failure.diagnosis.cause)) this.more(style.dim(`advice: ${failure.diagnosis.advice}`));
      run?.onFailure?.(seen);
    });
    sock.on('reconnecting', ({ attempt, delay }) => {
      this.record(client, 'reconnecting', { attempt, delay: Math.round(delay) });
      this.line(client, style.dim(`reconnecting: attempt ${attempt} in ${formatDuration(delay)}`));
    });
    sock.on('message', (frame) => {
      const text = frame.toString('utf8');
      this.current?.messages.push(text);
      this.record(client, 'message', { text });
      this.line(client, style.dim(`message ${JSON.stringify(text)}`));
    });
    sock.on('warning', ({ code, message }) => {
      this.record(client, 'warning', { code, message });
      this.line(client, style.magenta(`warning ${code}: ${message}`));
    });
    sock.on('close', ({ reason }) => this.record(client, 'close', { reason }));
  }
}

// ---- the faults ---------------------------------------------------------------------------------------------------

/** Waits for the first failure of `client` in this step, then for its reconnect. */
async function failThenRecover(lab: Lab, run: StepRun, client = 'main'): Promise<void> {
  await lab.until(() => run.failuresOf(client).length > 0, WAIT_MS, `a failure of the ${client} client`);
  const failedAt = (run.failuresOf(client)[0] as Seen).at;
  await lab.until(() => run.connects.some((c) => c.client === client && c.at > failedAt), WAIT_MS + DOWN_MS, 'the reconnect');
}

function expectFirst(run: StepRun, kinds: string[], causes: string[], client = 'main'): void {
  const first = run.failuresOf(client)[0]?.failure;
  run.check(`first failure is ${kinds.join(' or ')}`, first !== undefined && kinds.includes(first.kind));
  run.check(`diagnosed as ${causes.join(' or ')}`, first !== undefined && causes.includes(first.diagnosis.cause));
}

/** Takes the server down (listener and proxy refuse) and brings it back DOWN_MS later, on the same port. */
async function outage(lab: Lab, run: StepRun, endConnections: (s: net.Socket) => void): Promise<void> {
  lab.proxy.refuse();
  lab.server.stopListening();
  run.faultAt = performance.now();
  for (const s of lab.server.sockets) endConnections(s);
  await sleep(DOWN_MS);
  await lab.server.start();
  await lab.proxy.heal();
  lab.line('server', lab.out.style.green(`back, listening again after ${formatDuration(performance.now() - run.faultAt)}`));
}

const STEPS: Step[] = [
  {
    name: 'reset',
    title: 'the server aborts the connection (RST) while a request is in flight',
    async run(lab, run) {
      lab.server.onLine = (s, line) => {
        if (line !== 'req-reset') return false;
        s.resetAndDestroy();
        return true;
      };
      run.faultAt = performance.now();
      lab.sock.write('req-reset');
      await failThenRecover(lab, run);
      expectFirst(run, ['reset'], ['peer-crashed']);
    },
  },
  {
    name: 'peer crash',
    title: `the server process dies while a ${formatBytes(BATCH_BYTES)} batch is arriving; back ${formatDuration(DOWN_MS)} later`,
    async run(lab, run) {
      const s = lab.serverSide(lab.sock);
      if (!run.check('found the server side of the connection', s !== undefined)) return;
      // The dying process stops reading: the batch piles up unread in its kernel, so the kernel answers the close with RST.
      s?.pause();
      lab.sock.write('x'.repeat(BATCH_BYTES));
      await sleep(150);
      await outage(lab, run, (socket) => socket.destroy());
      await failThenRecover(lab, run);
      expectFirst(run, ['reset', 'broken-pipe'], ['peer-crashed', 'write-after-reset']);
      const writes = run.failuresOf('main')[0]?.failure.writes;
      const atRisk = writes === undefined ? 0 : writes.unconfirmedBytes + writes.requeuedBytes;
      run.check('the batch is accounted as unconfirmed or requeued, never as delivered', atRisk >= BATCH_BYTES + 1);
      if (writes !== undefined && writes.requeuedBytes > 0) {
        const ack = `ACK ${BATCH_BYTES} bytes`;
        await lab.until(() => run.messages.includes(ack), WAIT_MS, 'the requeued batch to be acknowledged');
        run.notes.push(`${formatBytes(writes.requeuedBytes)} never left the process: resent whole after the reconnect`);
      }
      if (writes !== undefined && writes.unconfirmedBytes > 0) {
        run.notes.push(
          `${formatBytes(writes.unconfirmedBytes)} reached the kernel after the last heartbeat reply: they may or may not have ` +
            'arrived, so resock reports them instead of resending (a resend could duplicate them)',
        );
      }
    },
  },
  {
    name: 'restart',
    title: `the server restarts (FIN, then refused for ${formatDuration(DOWN_MS)}, then back)`,
    async run(lab, run) {
      await outage(lab, run, (s) => s.end());
      await failThenRecover(lab, run);
      expectFirst(run, ['peer-closed'], ['peer-closed-gracefully']);
      run.check(
        'refused while down, diagnosed peer-restarting',
        run.failures.some((f) => f.failure.kind === 'refused' && f.failure.diagnosis.cause === 'peer-restarting'),
      );
    },
  },
  {
    name: 'idle reset',
    title: 'a NAT forgets an idle flow and resets the next write (a second client, without heartbeats)',
    client: 'idle',
    async run(lab, run) {
      const idleThreshold = 500;
      const quiet = lab.client('idle', { heartbeat: false, diagnose: { idleThreshold } });
      try {
        await lab.until(() => quiet.state === 'open', WAIT_MS, 'the idle client to connect');
        await sleep(idleThreshold + 200);
        const link = lab.proxyLink(quiet);
        if (!run.check('found the idle flow in the proxy', link !== undefined) || link === undefined) return;
        // What a middlebox that dropped its state does: the next segment of the flow is answered with RST.
        link.client.prependOnceListener('data', () => lab.proxy.reset(link));
        lab.line('proxy', lab.out.style.dim(`forgot the flow after ${formatDuration(idleThreshold + 200)} of silence`));
        run.faultAt = performance.now();
        quiet.write('hello after the quiet');
        await failThenRecover(lab, run, 'idle');
        expectFirst(run, ['reset'], ['intermediary-idle-timeout'], 'idle');
      } finally {
        quiet.destroy();
      }
    },
  },
  {
    name: 'hung peer',
    title: 'the server hangs (its kernel still ACKs, nothing answers): only the heartbeat can tell',
    async run(lab, run) {
      const s = lab.serverSide(lab.sock);
      if (!run.check('found the server side of the connection', s !== undefined)) return;
      s?.pause();
      run.faultAt = performance.now();
      // The watchdog that kills the stuck handler once the client has given up on it.
      run.onFailure = () => s?.destroy();
      await failThenRecover(lab, run);
      expectFirst(run, ['heartbeat-timeout'], ['peer-unresponsive']);
      const { interval, timeout } = HEARTBEAT;
      // H + T is the design bound; one more T covers a timer re-armed after a stall, 200 ms covers scheduling.
      const bound = interval + 2 * timeout + 200;
      const first = run.failuresOf('main')[0];
      run.check(`detected within ${bound} ms`, first !== undefined && first.at - run.faultAt <= bound);
    },
  },
  {
    name: 'black hole',
    title: 'the path turns into a black hole while a write is in flight',
    async run(lab, run) {
      const order = 'order-42';
      lab.proxy.blackhole();
      run.faultAt = performance.now();
      lab.sock.write(order);
      // The path comes back as soon as resock has noticed, so the reconnect goes through.
      run.onFailure = () => void lab.proxy.heal();
      await failThenRecover(lab, run);
      expectFirst(run, ['heartbeat-timeout'], ['peer-unresponsive']);
      const writes = run.failuresOf('main')[0]?.failure.writes;
      run.check(
        'the write into the hole is reported unconfirmed, not delivered',
        writes !== undefined && writes.unconfirmedBytes >= order.length + 1,
      );
    },
  },
  {
    name: 'queue overflow',
    title: `the server is down while the app writes 5 messages; the offline queue holds ${QUEUE_WRITES}`,
    async run(lab, run) {
      const rejected: string[] = [];
      const down = outage(lab, run, (s) => s.end());
      await lab.until(() => lab.sock.state !== 'open', WAIT_MS, 'the connection to drop');
      const names = ['queued-1', 'queued-2', 'queued-3', 'queued-4', 'queued-5'];
      for (const name of names) {
        lab.sock.write(name, (err) => {
          if (!err) return;
          const code = (err as { code?: unknown }).code;
          rejected.push(`${name}:${String(code)}`);
          lab.line('main', lab.out.style.magenta(`write ${name} rejected: ${String(code)}`));
        });
      }
      const held = lab.sock.stats().queuedWrites;
      lab.line('main', lab.out.style.dim(`offline queue holds ${held} writes`));
      run.check(`the queue holds ${QUEUE_WRITES} writes`, held === QUEUE_WRITES);
      await down;
      await failThenRecover(lab, run);
      const kept = names.slice(0, QUEUE_WRITES).map((n) => `ECHO ${n}`);
      await lab.until(() => kept.every((m) => run.messages.includes(m)), WAIT_MS, 'the queued writes to be echoed');
      const overflow = names.slice(QUEUE_WRITES).map((n) => `${n}:ERR_RESOCK_QUEUE_FULL`);
      run.check('the writes beyond the limit are rejected with ERR_RESOCK_QUEUE_FULL', sameSet(rejected, overflow));
      const echoed = run.messages.filter((m) => m.startsWith('ECHO queued-'));
      run.check('the queued writes arrive once, in order', echoed.join() === kept.join());
      run.notes.push(`${rejected.length} writes rejected (ERR_RESOCK_QUEUE_FULL), ${echoed.length} flushed in order`);
    },
  },
];

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

// ---- running and reporting -----------------------------------------------------------------------------------------

/** Runs the demo, printing to `out`; resolves with 0 when every step behaved as expected, else 1. */
export async function runDemo(out: Output): Promise<number> {
  const server = new LineServer();
  await server.start();
  const proxy = await createFaultProxy({ target: { host: HOST, port: server.port } });
  const lab = new Lab(out, server, proxy);
  const results: StepResult[] = [];
  try {
    intro(lab);
    lab.sock = lab.client('main', {
      heartbeat: { ping: 'PING', ...HEARTBEAT, isPong: (f) => f.length === 4 && f.toString() === 'PONG' },
      offlineQueue: { maxWrites: QUEUE_WRITES },
    });
    for (const [i, step] of STEPS.entries()) results.push(await runStep(lab, step, i));
  } finally {
    lab.sock?.destroy();
    await proxy.close();
    await server.close();
  }
  const passed = results.filter((r) => r.passed).length;
  const elapsed = performance.now() - lab.t0;
  out.record('summary', {
    passed: passed === STEPS.length,
    steps: STEPS.length,
    passedSteps: passed,
    failedSteps: results.filter((r) => !r.passed).map((r) => r.step),
    elapsedMs: Math.round(elapsed),
  });
  report(out, results, elapsed);
  return passed === STEPS.length ? 0 : 1;
}

function intro(lab: Lab): void {
  const { out, server, proxy } = lab;
  out.record('start', {
    server: { host: HOST, port: server.port },
    proxy: { host: HOST, port: proxy.port },
    heartbeat: HEARTBEAT,
    reconnect: RECONNECT,
    offlineQueue: { maxWrites: QUEUE_WRITES },
    steps: STEPS.map((s) => s.name),
  });
  const { style } = out;
  out.text(style.bold('resock demo'));
  out.text(
    style.dim(
      `  a line server on ${HOST}:${server.port} behind a fault proxy on ${HOST}:${proxy.port}; the main client sends a ` +
        `heartbeat after ${HEARTBEAT.interval} ms of silence (reply within ${HEARTBEAT.timeout} ms), reconnects with ` +
        `${RECONNECT.minDelay}–${RECONNECT.maxDelay} ms of jittered backoff and queues up to ${QUEUE_WRITES} writes while offline`,
    ),
  );
}

async function runStep(lab: Lab, step: Step, index: number): Promise<StepResult> {
  const { out } = lab;
  const { style } = out;
  const client = step.client ?? 'main';
  out.text();
  out.text(style.bold(`▶ ${index + 1}/${STEPS.length} ${step.name}: ${step.title}`));
  lab.currentName = step.name;
  out.record('step-start', { step: step.name, index: index + 1, title: step.title });
  const run = new StepRun();
  try {
    if (performance.now() >= lab.deadline) throw new StepTimeout('the demo ran out of time before this step');
    await lab.settle();
    lab.current = run;
    await step.run(lab, run);
  } catch (err) {
    run.check(err instanceof StepTimeout ? err.message : `the step threw: ${(err as Error).stack ?? String(err)}`, false);
  } finally {
    lab.current = undefined;
    run.onFailure = undefined;
  }
  const result = summarise(step, index, run, client);
  if (!result.passed) {
    await lab.restore().catch((err: unknown) => run.notes.push(`restoring the service failed: ${(err as Error).message}`));
  }
  for (const note of run.notes) out.text(`  ${style.dim(note)}`);
  for (const c of run.checks) if (!c.ok) out.text(`  ${style.red(`✗ ${c.what}`)}`);
  const timing = [
    result.detectionMs === undefined ? undefined : `detected in ${formatDuration(result.detectionMs)}`,
    result.recoveryMs === undefined ? undefined : `recovered in ${formatDuration(result.recoveryMs)}`,
  ].filter((s) => s !== undefined);
  out.text(`  ${result.passed ? style.green('✓ as expected') : style.red('✗ not as expected')}${timing.length ? `: ${timing.join(', ')}` : ''}`);
  out.record('step', { ...result });
  return result;
}

function summarise(step: Step, index: number, run: StepRun, client: string): StepResult {
  const seen = run.failuresOf(client);
  const first = seen[0];
  const kinds = compress(seen.map((s) => s.failure.kind));
  const causes = [...new Set(seen.map((s) => s.failure.diagnosis.cause))];
  const reconnect = first === undefined ? undefined : run.connects.find((c) => c.client === client && c.at > first.at);
  const recovered = reconnect !== undefined;
  return {
    index: index + 1,
    step: step.name,
    title: step.title,
    passed: run.checks.length > 0 && run.checks.every((c) => c.ok) && recovered,
    saw: seen.length === 0 ? 'nothing' : kinds,
    diagnosis: causes.length === 0 ? '-' : causes.join(', '),
    detectionMs: first === undefined ? undefined : round1(first.at - run.faultAt),
    recovered,
    recoveryMs: reconnect === undefined || first === undefined ? undefined : round1(reconnect.at - first.at),
    checks: run.checks,
  };
}

/** `refused, refused, refused` → `refused ×3`, keeping the order of first appearance. */
function compress(kinds: string[]): string {
  const counts = new Map<string, number>();
  for (const k of kinds) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts].map(([k, n]) => (n === 1 ? k : `${k} ×${n}`)).join(', ');
}

function report(out: Output, results: StepResult[], elapsed: number): void {
  const { style } = out;
  const rows = results.map((r) => [
    String(r.index),
    r.step,
    r.saw,
    r.diagnosis,
    r.detectionMs === undefined ? '-' : formatDuration(r.detectionMs),
    r.recovered ? `yes, ${formatDuration(r.recoveryMs ?? 0)}` : 'no',
    r.passed ? 'ok' : 'FAILED',
  ]);
  const headers = ['#', 'fault', 'what resock saw', 'diagnosis', 'detected in', 'recovered', 'check'];
  out.text();
  out.text(style.bold('summary'));
  for (const l of table(headers, rows, (cell, row, col) => {
    if (col === 6) return results[row]?.passed ? style.green(cell) : style.red(cell);
    if (col === 3) return style.yellow(cell);
    return cell;
  })) {
    out.text(`  ${l}`);
  }
  const passed = results.filter((r) => r.passed).length;
  out.text();
  const verdict = `${passed}/${results.length} steps behaved as expected in ${formatDuration(elapsed)}`;
  out.text(passed === results.length ? style.green(verdict) : style.red(verdict));
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
