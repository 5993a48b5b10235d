// Test harness for kernel-level faults (FAULTS.md rows 4–11) inside private network namespaces.
//
// Topology of one lab: three namespaces, client ⇄ router ⇄ server, joined by two veth pairs:
//
//   client 10.201.1.1/30 ── 10.201.1.2 router 10.201.2.1 ── 10.201.2.2/30 server
//
// Faults are nft rules in the router's forward chain, so they behave like a real middlebox: no endpoint sees a
// local drop (one in the sender's own output hook is a failed transmit to its TCP, the segment stays "notsent",
// unlike a packet lost on the wire), resets and ICMP errors come from a third party, the server's stack is left
// alone, and ss -K in the client namespace touches only client sockets. MTU 1500 segments like a real link.
// The 10.201.x addresses exist only inside these namespaces, which have no link to the host's network, so
// every lab reuses them.
//
// The vitest worker cannot enter a namespace, so peers run as child processes: `ip netns exec NAME node
// --import tsx script.ts`, speaking JSON lines (test/kernel/fixtures/protocol.ts).
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';

export const CLIENT_HOST = '10.201.1.1';
export const SERVER_HOST = '10.201.2.2';
const ROUTER_CLIENT_SIDE = '10.201.1.2';
const ROUTER_SERVER_SIDE = '10.201.2.1';

const PREFIX = 'resock-';
/** Worker threads share a pid; the thread id keeps their names apart. */
const OWN_PREFIX = `${PREFIX}${process.pid}-${threadId}-`;
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES_DIR = fileURLToPath(new URL('./fixtures/', import.meta.url));
const COMMAND_TIMEOUT_MS = 10_000;
const KILL_WAIT_MS = 5_000;
/** Output kept per child for failure messages; a chatty child must not grow the test process without bound. */
const OUTPUT_LIMIT = 64 * 1024;
const FAULT_TABLE = 'resock_faults';

export type Support = { ok: true } | { ok: false; reason: string };

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
}

export interface ChildEvent {
  readonly event: string;
  /** Date.now() in the child when it wrote the line. */
  readonly t: number;
  readonly [key: string]: unknown;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type EventMatch = string | ((event: ChildEvent) => boolean);

export interface NodeChild {
  /** The node process itself: `ip netns exec` execs, it does not fork (checked against the child's `start` event). */
  readonly pid: number;
  readonly label: string;
  /** Every event so far, in order. */
  readonly events: readonly ChildEvent[];
  readonly exited: Promise<ChildExit>;
  /** stdout and stderr so far (the last 64 KiB of each). */
  output(): string;
  /**
   * The first event not yet returned by an earlier waitFor that matches (an event name or a predicate), whether it
   * arrived before or after the call. Rejects with the child's output on timeout or when the child exits first.
   */
  waitFor<E extends ChildEvent>(match: (event: ChildEvent) => event is E, timeoutMs: number): Promise<E>;
  waitFor(match: EventMatch, timeoutMs: number): Promise<ChildEvent>;
  /** Resolves after `forMs` if no matching event arrived in that time; rejects with the first one otherwise. */
  expectNone(match: EventMatch, forMs: number): Promise<void>;
  /** One JSON line on the child's stdin. */
  send(command: { cmd: string; [key: string]: unknown }): void;
  /** SIGSTOP/SIGCONT resolve once /proc shows the process stopped/running again. */
  signal(signal: 'SIGSTOP' | 'SIGCONT' | 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** SIGKILL (also ends a stopped process) and wait for the exit. */
  kill(): Promise<ChildExit>;
}

export interface Namespace {
  readonly name: string;
  exec(command: string, args?: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** Text is an nft script applied atomically (`nft -f -`); an array is one nft command line. Returns stdout. */
  nft(rules: string | readonly string[]): Promise<string>;
  /** Runs a script (absolute, or relative to test/kernel/fixtures) with `node --import tsx` in this namespace. */
  spawnNode(script: string, args?: readonly string[], env?: Record<string, string>): NodeChild;
}

/** Each fault is one nft rule in the router, matching by the server's port, until `clear()`. */
export interface Faults {
  /** Row 4: the router answers client→server segments with a TCP reset (the server never hears of it). */
  rstOnPort(port: number): Promise<void>;
  /** Row 7: SYNs to the port vanish; established connections are untouched. */
  dropSyn(port: number): Promise<void>;
  /** Row 8: the router answers client→server packets with ICMP host-unreachable (a soft error for TCP). */
  icmpUnreachable(port: number): Promise<void>;
  /** Rows 9–10: every packet of the connection vanishes, both directions. */
  blackhole(port: number): Promise<void>;
  /** Removes every fault rule; connections that survived carry on. */
  clear(): Promise<void>;
  /** Row 5: `ss -K` of the TCP sockets talking to/from the port, in the client (default) or server namespace. Returns how many. */
  ssKill(port: number, side?: 'client' | 'server'): Promise<number>;
  /** The router's current fault rules, for failure messages. */
  rules(): Promise<string>;
}

export interface FaultLab {
  readonly client: Namespace;
  readonly router: Namespace;
  readonly server: Namespace;
  readonly clientHost: string;
  readonly serverHost: string;
  readonly faults: Faults;
  /** Kills every child and deletes the three namespaces. Idempotent. */
  destroy(): Promise<void>;
}

export interface LabOptions {
  /** Destroy the lab when this aborts, e.g. vitest's per-test `signal`, which aborts on a test timeout. */
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------------------------
// Capability checks

let supportCache: Support | undefined;

/** Root, `ip`/`ss`/`nft` present, and a namespace with a veth pair and an nft reject rule can be made. Cached. */
export function kernelFaultSupport(): Support {
  supportCache ??= probeSupport();
  return supportCache;
}

function probeSupport(): Support {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux, this is ${process.platform}` };
  const uid = process.getuid?.();
  if (uid !== 0) return { ok: false, reason: `network namespaces and nft need root, running as uid ${uid}` };
  for (const [tool, args, pkg] of [
    ['ip', ['-V'], 'iproute2'],
    ['ss', ['-V'], 'iproute2'],
    ['nft', ['--version'], 'nftables'],
  ] as const) {
    try {
      execFileSync(tool, args, { stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS });
    } catch (err) {
      return { ok: false, reason: `\`${tool}\` is not usable (apt-get install -y ${pkg}): ${errorText(err)}` };
    }
  }
  const probe = `${OWN_PREFIX}probe`;
  // Everything a lab needs: a namespace, a veth pair, and nft drop/reject rules (nf_tables + nft_reject modules).
  const probeRules = `table inet probe {
    chain forward { type filter hook forward priority filter; policy accept;
      tcp dport 9 reject with tcp reset
      tcp dport 10 reject with icmpx type host-unreachable
      tcp dport 11 tcp flags & (syn | ack) == syn drop
    }
  }`;
  const steps: Array<[string[], string?]> = [
    [['netns', 'add', probe]],
    [['-n', probe, 'link', 'set', 'lo', 'up']],
    [['-n', probe, 'link', 'add', 'name', 'va', 'type', 'veth', 'peer', 'name', 'vb']],
    [['netns', 'exec', probe, 'nft', '-f', '-'], probeRules],
  ];
  try {
    for (const [args, input] of steps) {
      execFileSync('ip', args, { input: input ?? '', stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS });
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `cannot build a test namespace: ${errorText(err)}` };
  } finally {
    try {
      execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS });
    } catch {
      // Never created.
    }
  }
}

let koffiCache: Support | undefined;

/** koffi loads and can bind libc's setsockopt: needed for TCP_USER_TIMEOUT in fixtures. Cached. */
export function koffiSupport(): Support {
  koffiCache ??= (() => {
    try {
      const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(s: string): unknown } };
      koffi.load('libc.so.6').func('int setsockopt(int, int, int, const void *, uint32_t)');
      return { ok: true } as const;
    } catch (err) {
      return { ok: false, reason: `koffi (optional dependency) is not loadable: ${errorText(err)}` } as const;
    }
  })();
  return koffiCache;
}

function errorText(err: unknown): string {
  const e = err as { stderr?: Buffer | string; message?: string };
  // execFileSync leaves stderr null when the command could not be started at all (ENOENT).
  const stderr = e.stderr == null ? '' : String(e.stderr).trim();
  return stderr !== '' ? stderr : String(e.message ?? err);
}

// ---------------------------------------------------------------------------------------------------------------
// Commands

function run(command: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = options.timeoutMs ?? COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'pipe', timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => {}); // a command that exits without reading its input
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else {
        const how = signal === 'SIGKILL' ? `killed after ${timeoutMs} ms` : `exit ${code ?? signal}`;
        reject(new Error(`${command} ${args.join(' ')} failed (${how}): ${stderr.trim()}`));
      }
    });
    child.stdin.end(options.input ?? '');
  });
}

function listNamespacesSync(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  return parseNamespaceList(out);
}

function parseNamespaceList(out: string): string[] {
  // Lines look like "name (id: 3)" or just "name".
  return out
    .split('\n')
    .map((line) => line.trim().split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** All network namespaces on the machine (names). */
export async function listNamespaces(): Promise<string[]> {
  return parseNamespaceList((await run('ip', ['netns', 'list'])).stdout);
}

/** The namespaces this test process created and has not deleted yet. */
export async function ownNamespaces(): Promise<string[]> {
  return (await listNamespaces()).filter((name) => name.startsWith(OWN_PREFIX));
}

// ---------------------------------------------------------------------------------------------------------------
// Cleanup of crashed runs

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills what still runs inside a namespace (stopped processes included) and deletes it. Synchronous for 'exit'. */
function deleteNamespaceSync(name: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
    for (const pid of pids.split(/\s+/).filter((p) => p !== '')) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  } catch {
    // Namespace already gone.
  }
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS });
  } catch {
    // Already gone.
  }
}

/**
 * Deletes `resock-<pid>-…` namespaces whose creating process is dead (a crashed or killed run), with whatever
 * still runs in them. Namespaces of live processes, such as a parallel vitest worker, are left alone.
 * Returns the names deleted.
 */
export function sweepStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const name of listNamespacesSync()) {
    const owner = /^resock-(\d+)-/.exec(name)?.[1];
    if (owner === undefined || pidAlive(Number(owner))) continue;
    deleteNamespaceSync(name);
    removed.push(name);
  }
  return removed;
}

let swept = false;
let exitHookInstalled = false;
const liveNamespaces = new Set<NetNamespace>();
const liveLabs = new Set<FaultLab>();

function onExit(): void {
  for (const ns of liveNamespaces) {
    for (const child of ns.children) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    deleteNamespaceSync(ns.name);
  }
}

/** Destroys every lab this process still holds: an afterAll safety net for tests that timed out mid-way. */
export async function destroyAllLabs(): Promise<void> {
  await Promise.allSettled([...liveLabs].map((lab) => lab.destroy()));
  // Namespaces made outside a lab, or a lab that failed half-way.
  await Promise.allSettled([...liveNamespaces].map((ns) => ns.destroy()));
}

// ---------------------------------------------------------------------------------------------------------------
// Children

interface Waiter {
  predicate: (event: ChildEvent) => boolean;
  description: string;
  resolve: (event: ChildEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

function toPredicate(match: EventMatch): { predicate: (event: ChildEvent) => boolean; description: string } {
  return typeof match === 'string'
    ? { predicate: (event) => event.event === match, description: `event "${match}"` }
    : { predicate: match, description: `an event matching ${match.toString().slice(0, 120)}` };
}

function processState(pid: number): string | undefined {
  try {
    // "pid (comm) S ...": the state follows the last ')', as comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

class ChildProcessHandle implements NodeChild {
  readonly pid: number;
  readonly events: ChildEvent[] = [];
  readonly exited: Promise<ChildExit>;
  private readonly consumed = new Set<number>();
  private waiters: Waiter[] = [];
  private stdout = '';
  private stderr = '';
  private partialLine = '';
  private exit: ChildExit | undefined;
  private readonly stdin: NodeJS.WritableStream;

  constructor(
    readonly label: string,
    namespace: string,
    scriptPath: string,
    args: readonly string[],
    env: Record<string, string>,
  ) {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    // The worker's own loader flags must not leak into a child that brings its own (tsx).
    delete childEnv.NODE_OPTIONS;
    const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, '--import', 'tsx', scriptPath, ...args], {
      cwd: REPO_ROOT, // `--import tsx` resolves from here
      env: childEnv,
      stdio: 'pipe',
    });
    if (child.pid === undefined) throw new Error(`${label}: could not spawn ip netns exec`);
    this.pid = child.pid;
    this.stdin = child.stdin;
    child.stdin.on('error', () => {}); // EPIPE once the child is gone
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-OUTPUT_LIMIT);
    });
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => {
        this.stderr += `\nspawn error: ${err.message}`;
      });
      // 'close' comes after stdout ended, so every line is parsed before waiters are failed.
      child.on('close', (code, signal) => {
        this.exit = { code, signal };
        for (const waiter of this.waiters) {
          clearTimeout(waiter.timer);
          waiter.reject(this.failure(`exited (${this.exitText()}) before ${waiter.description}`));
        }
        this.waiters = [];
        resolve(this.exit);
      });
    });
  }

  output(): string {
    return `--- stdout ---\n${this.stdout}${this.partialLine}\n--- stderr ---\n${this.stderr}`;
  }

  waitFor<E extends ChildEvent>(match: (event: ChildEvent) => event is E, timeoutMs: number): Promise<E>;
  waitFor(match: EventMatch, timeoutMs: number): Promise<ChildEvent>;
  waitFor(match: EventMatch, timeoutMs: number): Promise<ChildEvent> {
    const { predicate, description } = toPredicate(match);
    const index = this.events.findIndex((event, i) => !this.consumed.has(i) && predicate(event));
    const found = this.events[index];
    if (found !== undefined) {
      this.consumed.add(index);
      return Promise.resolve(found);
    }
    if (this.exit !== undefined) return Promise.reject(this.failure(`exited (${this.exitText()}) before ${description}`));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        description,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(this.failure(`timed out after ${timeoutMs} ms waiting for ${description}`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  async expectNone(match: EventMatch, forMs: number): Promise<void> {
    const { predicate, description } = toPredicate(match);
    const from = this.events.length;
    await new Promise((r) => setTimeout(r, forMs));
    const hit = this.events.slice(from).find(predicate);
    if (hit !== undefined) throw this.failure(`expected no ${description} within ${forMs} ms, got ${JSON.stringify(hit)}`);
  }

  send(command: { cmd: string; [key: string]: unknown }): void {
    if (this.exit !== undefined) throw this.failure(`cannot send ${command.cmd}: exited (${this.exitText()})`);
    this.stdin.write(`${JSON.stringify(command)}\n`);
  }

  async signal(signal: 'SIGSTOP' | 'SIGCONT' | 'SIGTERM' | 'SIGKILL'): Promise<void> {
    // Until the child has exec'd node, the pid belongs to `ip netns exec`; its start event proves the exec.
    const start = this.events.find((event) => event.event === 'start');
    if (start === undefined) throw this.failure(`cannot send ${signal} before the child's "start" event`);
    if (start.pid !== this.pid) throw this.failure(`child reports pid ${String(start.pid)}, spawned pid ${this.pid}: not exec'd`);
    process.kill(this.pid, signal);
    if (signal === 'SIGSTOP') await waitUntil(() => processState(this.pid) === 'T', 2_000, `${this.label} is stopped`);
    if (signal === 'SIGCONT') await waitUntil(() => processState(this.pid) !== 'T', 2_000, `${this.label} runs again`);
  }

  async kill(): Promise<ChildExit> {
    if (this.exit !== undefined) return this.exit;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // Exited between the check and the kill.
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.failure(`did not exit within ${KILL_WAIT_MS} ms of SIGKILL`)), KILL_WAIT_MS);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private onStdout(chunk: string): void {
    this.stdout = (this.stdout + chunk).slice(-OUTPUT_LIMIT);
    const lines = (this.partialLine + chunk).split('\n');
    this.partialLine = lines.pop() ?? '';
    for (const line of lines) this.onLine(line);
  }

  private onLine(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return; // Not protocol: stays in output() only.
    }
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as ChildEvent).event !== 'string') return;
    const event = parsed as ChildEvent;
    const index = this.events.push(event) - 1;
    const waiter = this.waiters.find((w) => {
      try {
        return w.predicate(event);
      } catch {
        return false;
      }
    });
    if (waiter === undefined) return;
    this.waiters = this.waiters.filter((w) => w !== waiter);
    this.consumed.add(index);
    clearTimeout(waiter.timer);
    waiter.resolve(event);
  }

  private exitText(): string {
    return this.exit?.signal != null ? `signal ${this.exit.signal}` : `code ${this.exit?.code}`;
  }

  private failure(reason: string): Error {
    return new Error(`${this.label} (pid ${this.pid}) ${reason}\n${this.output()}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Namespaces

class NetNamespace implements Namespace {
  readonly children = new Set<ChildProcessHandle>();
  private destroyed: Promise<void> | undefined;

  constructor(readonly name: string) {}

  exec(command: string, args: readonly string[] = [], options?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, command, ...args], options);
  }

  async nft(rules: string | readonly string[]): Promise<string> {
    const result =
      typeof rules === 'string' ? await this.exec('nft', ['-f', '-'], { input: rules }) : await this.exec('nft', rules);
    return result.stdout;
  }

  spawnNode(script: string, args: readonly string[] = [], env: Record<string, string> = {}): NodeChild {
    if (this.destroyed !== undefined) throw new Error(`namespace ${this.name} is destroyed`);
    const path = isAbsolute(script) ? script : resolvePath(FIXTURES_DIR, script);
    const label = `${script.replace(/^.*\//, '')}@${this.name}`;
    const child = new ChildProcessHandle(label, this.name, path, args, env);
    this.children.add(child);
    return child;
  }

  destroy(): Promise<void> {
    this.destroyed ??= this.teardown();
    return this.destroyed;
  }

  private async teardown(): Promise<void> {
    await Promise.allSettled([...this.children].map((child) => child.kill()));
    // Anything else still inside (a command's leftovers) would keep the namespace alive after `ip netns del`.
    deleteNamespaceSync(this.name);
    liveNamespaces.delete(this);
  }
}

async function addNamespace(name: string): Promise<NetNamespace> {
  await run('ip', ['netns', 'add', name]);
  const ns = new NetNamespace(name);
  liveNamespaces.add(ns);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', onExit);
  }
  try {
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await ns.destroy();
    throw err;
  }
  return ns;
}

let labCounter = 0;

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1..65535, got ${port}`);
  return port;
}

function makeFaults(router: Namespace, client: Namespace, server: Namespace): Faults {
  const addRules = (...rules: string[]): Promise<string> =>
    // One nft script: several rules of one fault land atomically.
    router.nft(rules.map((rule) => `add rule inet ${FAULT_TABLE} forward ${rule}\n`).join(''));
  return {
    async rstOnPort(port) {
      // The router forges the server's RST back to the client on its next segment; the server keeps its socket.
      await addRules(`tcp dport ${checkPort(port)} reject with tcp reset comment "row 4: middlebox RST"`);
    },
    async dropSyn(port) {
      // Only the bare SYN: the client retries it for tcp_syn_retries (2 min+) unless the app times out.
      await addRules(`tcp dport ${checkPort(port)} tcp flags & (syn | ack) == syn drop comment "row 7: SYN black hole"`);
    },
    async icmpUnreachable(port) {
      // TCP takes host-unreachable on an established connection as a soft error and keeps retransmitting.
      await addRules(`tcp dport ${checkPort(port)} reject with icmpx type host-unreachable comment "row 8: ICMP unreachable"`);
    },
    async blackhole(port) {
      // Both directions, so neither data, ACKs nor keepalive probes get through.
      await addRules(
        `tcp dport ${checkPort(port)} drop comment "rows 9-10: black hole, client to server"`,
        `tcp sport ${port} drop comment "rows 9-10: black hole, server to client"`,
      );
    },
    async clear() {
      await router.nft(['flush', 'chain', 'inet', FAULT_TABLE, 'forward']);
    },
    async ssKill(port, side = 'client') {
      // The client side dials the port; the server side owns it. -H: no header, so lines = killed sockets.
      const filter = side === 'client' ? 'dport' : 'sport';
      const ns = side === 'client' ? client : server;
      const { stdout } = await ns.exec('ss', ['-K', '-t', '-n', '-H', filter, '=', `:${checkPort(port)}`]);
      return stdout.split('\n').filter((line) => line.trim() !== '').length;
    },
    async rules() {
      return router.nft(['list', 'table', 'inet', FAULT_TABLE]);
    },
  };
}

/** Builds client ⇄ router ⇄ server (see the top of this file). Sweeps stale namespaces on first use. */
export async function createFaultLab(options: LabOptions = {}): Promise<FaultLab> {
  if (!swept) {
    swept = true;
    sweepStaleNamespaces();
  }
  options.signal?.throwIfAborted();
  const base = `${OWN_PREFIX}${++labCounter}`;
  const settled = await Promise.allSettled((['c', 'r', 's'] as const).map((role) => addNamespace(`${base}-${role}`)));
  const made = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  try {
    const [client, router, server] = made;
    if (made.length !== 3 || client === undefined || router === undefined || server === undefined) {
      const failed = settled.find((result) => result.status === 'rejected');
      throw failed?.reason ?? new Error('namespace creation failed');
    }
    await buildNetwork(client, router, server);
    let destroyed: Promise<void> | undefined;
    const onAbort = (): void => void lab.destroy();
    const lab: FaultLab = {
      client,
      router,
      server,
      clientHost: CLIENT_HOST,
      serverHost: SERVER_HOST,
      faults: makeFaults(router, client, server),
      destroy() {
        destroyed ??= (async () => {
          options.signal?.removeEventListener('abort', onAbort);
          await Promise.allSettled([client.destroy(), router.destroy(), server.destroy()]);
          liveLabs.delete(lab);
        })();
        return destroyed;
      },
    };
    liveLabs.add(lab);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    return lab;
  } catch (err) {
    await Promise.allSettled(made.map((ns) => ns.destroy()));
    throw err;
  }
}

async function buildNetwork(client: NetNamespace, router: NetNamespace, server: NetNamespace): Promise<void> {
  const ip = (ns: Namespace, ...args: string[]): Promise<ExecResult> => run('ip', ['-n', ns.name, ...args]);
  // Created inside the router with the far end moved straight into its namespace: nothing touches the host's.
  await ip(router, 'link', 'add', 'toc', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.name);
  await ip(router, 'link', 'add', 'tos', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', server.name);
  await Promise.all([
    (async () => {
      await ip(client, 'addr', 'add', `${CLIENT_HOST}/30`, 'dev', 'eth0');
      await ip(client, 'link', 'set', 'eth0', 'up');
      await ip(client, 'route', 'add', 'default', 'via', ROUTER_CLIENT_SIDE);
    })(),
    (async () => {
      await ip(server, 'addr', 'add', `${SERVER_HOST}/30`, 'dev', 'eth0');
      await ip(server, 'link', 'set', 'eth0', 'up');
      await ip(server, 'route', 'add', 'default', 'via', ROUTER_SERVER_SIDE);
    })(),
    (async () => {
      await ip(router, 'addr', 'add', `${ROUTER_CLIENT_SIDE}/30`, 'dev', 'toc');
      await ip(router, 'addr', 'add', `${ROUTER_SERVER_SIDE}/30`, 'dev', 'tos');
      await ip(router, 'link', 'set', 'toc', 'up');
      await ip(router, 'link', 'set', 'tos', 'up');
      // Per-namespace sysctl; sh rather than sysctl(8), which slim images lack.
      await router.exec('sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
      await router.nft(
        `table inet ${FAULT_TABLE} {\n  chain forward { type filter hook forward priority filter; policy accept; }\n}\n`,
      );
    })(),
  ]);
}

/** createFaultLab, run `fn`, and destroy the lab however `fn` ends. */
export async function withFaultLab<T>(fn: (lab: FaultLab) => Promise<T>, options: LabOptions = {}): Promise<T> {
  const lab = await createFaultLab(options);
  try {
    return await fn(lab);
  } finally {
    await lab.destroy();
  }
}
