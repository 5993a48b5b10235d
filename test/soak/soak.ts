// Chaos soak: many ResilientSockets write numbered frames through a fault proxy to a counting server while faults come
// and go; at the end every message must be accounted for exactly, nothing may arrive twice or out of order, and no
// handle, timer or memory may be left behind. One seeded RNG drives the schedule, so a failing seed can be replayed
// (the network timing itself cannot be, so a replay reproduces the schedule, not every interleaving).
import { createRequire } from 'node:module';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ResilientSocket, lengthPrefixed, type Failure, type FailureKind } from '../../src/index.js';
import { createFaultProxy, type FaultProxy } from '../../src/testing/index.js';
import { activeResources, settleResources } from '../support/net.js';

export type FaultKind = 'reset' | 'blackhole' | 'latency' | 'slice' | 'refuse' | 'restart';
export const FAULT_KINDS: readonly FaultKind[] = ['reset', 'blackhole', 'latency', 'slice', 'refuse', 'restart'];

export interface SoakProfile {
  name: string;
  clients: number;
  durationMs: number;
  /** Each client writes one message this often. */
  writeEveryMs: number;
  /** Random padding per message, 0..maxPadding bytes, so frames of many sizes cross the faults. */
  maxPadding: number;
  /**
   * Now and then a client writes a burst of large frames (about once per burstEveryMs): more than a black-holed path
   * absorbs once socket buffers are shrunk (see shrinkBuffer), so bytes are still in Node when the connection dies and
   * resock must requeue them.
   */
  burstEveryMs: number;
  burstFrames: readonly [number, number];
  /** Quiet time between two fault episodes, and how long one lasts (ms, uniform in [min, max]). */
  faultGapMs: readonly [number, number];
  faultLengthMs: readonly [number, number];
  faults: readonly FaultKind[];
  heartbeat: { interval: number; timeout: number };
  /** After healing: how long queues may take to flush and every client to be open again. */
  settleMs: number;
  /** RSS growth from start to end, in bytes, that counts as a leak. */
  rssBound: number;
  seed: number;
}

/** ~10 s in CI: enough episodes of every fault kind to cross the interesting windows a few times. */
export function ciProfile(seed: number): SoakProfile {
  return {
    name: 'ci',
    clients: 20,
    durationMs: 8000,
    writeEveryMs: 40,
    maxPadding: 48,
    burstEveryMs: 1000,
    burstFrames: [8, 32],
    faultGapMs: [150, 450],
    faultLengthMs: [200, 700],
    faults: FAULT_KINDS,
    heartbeat: { interval: 250, timeout: 300 },
    settleMs: 6000,
    rssBound: 100 * 1024 * 1024,
    seed,
  };
}

export function longProfile(seed: number): SoakProfile {
  return {
    ...ciProfile(seed),
    name: 'long',
    clients: 100,
    durationMs: 60_000,
    writeEveryMs: 50,
    faultGapMs: [200, 1500],
    faultLengthMs: [200, 1500],
    settleMs: 15_000,
    rssBound: 200 * 1024 * 1024,
  };
}

/** SOAK_SEED when set (decimal), else a fresh one: always printed so a failure can be replayed. */
export function seedFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SOAK_SEED;
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 2 ** 31);
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new RangeError(`SOAK_SEED must be an integer in 0..2^32-1, got ${raw}`);
  return seed;
}

export interface Rng {
  next(): number;
  /** Integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

/** mulberry32: tiny, fast, and good enough to schedule faults. */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return { next, int, pick: (items) => items[int(0, items.length - 1)]!, chance: (p) => next() < p };
}

// ---- wire format ------------------------------------------------------------------------------------------------------

const MSG = 0x4d; // 'M' + u32 client + u32 seq + padding
const PING = Buffer.from('P');
const PONG = Buffer.from('Q');
const MSG_HEADER = 9;
const PREFIX = 4;
const MAX_FRAME = 4096;

const isPong = (frame: Buffer): boolean => frame.length === 1 && frame[0] === PONG[0];

function message(client: number, seq: number, padding: number): Buffer {
  const b = Buffer.alloc(MSG_HEADER + padding, 0x2e);
  b[0] = MSG;
  b.writeUInt32BE(client, 1);
  b.writeUInt32BE(seq, 5);
  return b;
}

function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(PREFIX + payload.length);
  out.writeUInt32BE(payload.length, 0);
  payload.copy(out, PREFIX);
  return out;
}

// ---- the counting server ----------------------------------------------------------------------------------------------

/** What the server saw from one client, in arrival order; `conns` says on which server-side connection. */
interface Receipts {
  seqs: number[];
  conns: number[];
}

/**
 * Decodes length-prefixed frames with its own few lines (not resock's decoder, which is under test), answers ping frames
 * with pong frames and records every message. restart() drops every connection and listens again on the same port.
 */
class CountingServer {
  readonly receipts = new Map<number, Receipts>();
  readonly errors: string[] = [];
  port = 0;
  accepted = 0;
  restarts = 0;
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();

  async start(port = 0): Promise<void> {
    const server = net.createServer((s) => this.#accept(s));
    server.on('error', (err) => this.errors.push(`server: ${String(err)}`));
    // Re-listening right after close can meet EADDRINUSE for a moment; bounded retries.
    for (let i = 0; ; i++) {
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
          });
        });
        break;
      } catch (err) {
        if (i >= 50) throw err;
        await sleep(20);
      }
    }
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
  }

  /** Closes the listener and every connection; resolves once the listener is gone. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async restart(downMs: number): Promise<void> {
    this.restarts++;
    await this.stop();
    await sleep(downMs);
    await this.start(this.port);
  }

  #accept(socket: net.Socket): void {
    const conn = ++this.accepted;
    this.#sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.#sockets.delete(socket));
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let pos = 0;
      while (pending.length - pos >= PREFIX) {
        const length = pending.readUInt32BE(pos);
        if (length > MAX_FRAME) {
          this.errors.push(`connection ${conn}: frame of ${length} bytes`);
          socket.destroy();
          return;
        }
        if (pending.length - pos < PREFIX + length) break;
        this.#frame(socket, conn, pending.subarray(pos + PREFIX, pos + PREFIX + length));
        pos += PREFIX + length;
      }
      pending = pending.subarray(pos);
    });
  }

  #frame(socket: net.Socket, conn: number, payload: Buffer): void {
    if (payload.length === 1 && payload[0] === PING[0]) {
      socket.write(frame(PONG));
      return;
    }
    if (payload.length < MSG_HEADER || payload[0] !== MSG) {
      this.errors.push(`connection ${conn}: unexpected frame ${payload.subarray(0, 16).toString('hex')}`);
      return;
    }
    const client = payload.readUInt32BE(1);
    let r = this.receipts.get(client);
    if (r === undefined) this.receipts.set(client, (r = { seqs: [], conns: [] }));
    r.seqs.push(payload.readUInt32BE(5));
    r.conns.push(conn);
  }
}

// ---- one client and its model of where every message is -------------------------------------------------------------

interface Msg {
  seq: number;
  /** Bytes on the wire (prefix included): what resock counts in WriteAccount. */
  size: number;
  cbCalls: number;
  cbError: string | undefined;
  /** In this model's copy of the offline queue right now. */
  inQueue: boolean;
  /** Where write() put it: straight onto the open connection, into the offline queue, or nowhere (then its callback says why). */
  placed: 'conn' | 'queue' | 'refused';
  confirmed: boolean;
  unconfirmed: boolean;
  requeued: number;
}

interface ConnModel {
  id: number;
  msgs: Msg[];
}

class SoakClient {
  readonly sock: ResilientSocket;
  readonly msgs: Msg[] = [];
  readonly violations: string[] = [];
  readonly closes: string[] = [];
  nextDue: number;
  connects = 0;
  #queue: Msg[] = [];
  #current: ConnModel | undefined;
  #connIds = 0;

  constructor(
    readonly id: number,
    port: number,
    profile: SoakProfile,
    firstDue: number,
    readonly onFailure: (f: Failure) => void,
    readonly onWarning: (code: string) => void,
  ) {
    this.nextDue = firstDue;
    this.sock = new ResilientSocket({
      host: '127.0.0.1',
      port,
      framing: lengthPrefixed({ maxLength: MAX_FRAME }),
      heartbeat: { ...profile.heartbeat, ping: PING, isPong },
      connectTimeout: 1000,
      // Before the queue is flushed into the connection, so a flush can meet backpressure too.
      onConnect: (socket) => shrinkBuffer(socket, SO_SNDBUF),
      reconnect: { minDelay: 20, maxDelay: 400, stableAfter: 300 },
      offlineQueue: { maxBytes: 8 * 1024 * 1024 },
    });
    this.sock.on('connect', () => this.#connected());
    this.sock.on('disconnect', (f) => this.#disconnected(f));
    this.sock.on('failure', (f) => this.onFailure(f));
    this.sock.on('warning', (w) => this.onWarning(w.code));
    this.sock.on('message', (m) => this.violations.push(`client ${this.id}: unexpected message ${m.toString('hex')}`));
    this.sock.on('close', (info) => this.closes.push(info.reason));
  }

  write(padding: number): void {
    const seq = this.msgs.length;
    const payload = message(this.id, seq, padding);
    const msg: Msg = {
      seq,
      size: PREFIX + payload.length,
      cbCalls: 0,
      cbError: undefined,
      inQueue: false,
      placed: 'refused',
      confirmed: false,
      unconfirmed: false,
      requeued: 0,
    };
    this.msgs.push(msg);
    const before = this.sock.stats().queuedWrites;
    this.sock.write(payload, (err) => this.#settled(msg, err));
    const after = this.sock.stats().queuedWrites;
    if (after === before + 1) {
      msg.placed = 'queue';
      msg.inQueue = true;
      this.#queue.push(msg);
    } else if (after === before && this.#current !== undefined && this.sock.state === 'open') {
      msg.placed = 'conn';
      this.#current.msgs.push(msg);
    }
    // Otherwise the queue refused it: its callback must carry the code.
  }

  #settled(msg: Msg, err: Error | null | undefined): void {
    msg.cbCalls++;
    if (err == null) return;
    msg.cbError = (err as { code?: unknown }).code === undefined ? 'NO_CODE' : String((err as { code?: unknown }).code);
    if (msg.cbError === 'NO_CODE') this.violations.push(`client ${this.id} seq ${msg.seq}: write error without a code: ${err.message}`);
    if (msg.inQueue) {
      msg.inQueue = false;
      this.#queue = this.#queue.filter((m) => m !== msg);
    }
  }

  #connected(): void {
    this.connects++;
    // resock flushed its whole queue into the new connection before announcing it.
    const conn: ConnModel = { id: ++this.#connIds, msgs: this.#queue };
    for (const m of conn.msgs) m.inQueue = false;
    this.#queue = [];
    this.#current = conn;
    const left = this.sock.stats().queuedWrites;
    if (left !== 0) this.violations.push(`client ${this.id}: ${left} writes still queued when 'connect' was emitted`);
  }

  /** Maps the WriteAccount of a lost connection onto the messages handed to it, oldest first. */
  #disconnected(f: Failure): void {
    const conn = this.#current;
    this.#current = undefined;
    if (conn === undefined) {
      this.violations.push(`client ${this.id}: 'disconnect' (${f.kind}) without an open connection`);
      return;
    }
    const w = f.writes;
    if (w === undefined) {
      this.violations.push(`client ${this.id} conn ${conn.id}: 'disconnect' (${f.kind}) without a write account`);
      return;
    }
    const total = conn.msgs.reduce((n, m) => n + m.size, 0);
    const where = `client ${this.id} conn ${conn.id} (${f.kind})`;
    if (total !== w.confirmedBytes + w.unconfirmedBytes + w.requeuedBytes) {
      this.violations.push(`${where}: ${total} bytes handed over, resock accounts ${JSON.stringify(w)}`);
    }
    const unconfirmedEnd = w.confirmedBytes + w.unconfirmedBytes;
    const requeued: Msg[] = [];
    let offset = 0;
    for (const m of conn.msgs) {
      const start = offset;
      offset += m.size;
      if (offset <= w.confirmedBytes) m.confirmed = true;
      else if (start >= w.confirmedBytes && offset <= unconfirmedEnd) m.unconfirmed = true;
      else if (start >= unconfirmedEnd) requeued.push(m);
      else this.violations.push(`${where}: seq ${m.seq} (bytes ${start}..${offset}) straddles an account boundary ${JSON.stringify(w)}`);
    }
    for (const m of requeued) {
      m.requeued++;
      m.inQueue = true;
      if (m.cbCalls > 0) this.violations.push(`${where}: seq ${m.seq} requeued after its callback ran (${m.cbError ?? 'ok'})`);
    }
    // Requeued writes go back to the head of the queue, before anything written since the loss.
    this.#queue = requeued.concat(this.#queue);
  }

  get queuedModel(): number {
    return this.#queue.length;
  }
}

// ---- the run ----------------------------------------------------------------------------------------------------------

export interface SoakReport {
  profile: SoakProfile;
  elapsedMs: number;
  messages: {
    written: number;
    received: number;
    confirmed: number;
    unconfirmed: number;
    unconfirmedLost: number;
    rejected: number;
    requeued: number;
    duplicates: number;
    /** Still in an offline queue when close() was called (rejected by it with ERR_RESOCK_CLOSED). */
    queuedAtClose: number;
  };
  rejectedByCode: Record<string, number>;
  failures: Partial<Record<FailureKind, number>>;
  faults: Partial<Record<FaultKind, number>>;
  connects: number;
  reconnects: number;
  serverAccepted: number;
  warnings: Record<string, number>;
  processWarnings: string[];
  rss: { before: number; peak: number; after: number };
  /** heapUsed after a full GC, at the start and once everything is closed and the bookkeeping dropped. */
  heap: { before: number; after: number };
  leakedResources: string[];
  /** Why socket buffers could not be shrunk (then requeues are rare), or undefined when they were. */
  buffersNotShrunk: string | undefined;
  /** The first few of each shape; violationCount counts them all. */
  violations: string[];
  violationCount: number;
}

interface Ctx {
  profile: SoakProfile;
  rng: Rng;
  proxy: FaultProxy;
  server: CountingServer;
  faults: Partial<Record<FaultKind, number>>;
  stop: AbortSignal;
}

const MAX_VIOLATIONS_PER_KIND = 20;
const TICK_MS = 10;
// Closed sockets must not stay reachable: after GC the heap returns to within this of where it started.
const HEAP_BOUND = 16 * 1024 * 1024;

export async function runSoak(profile: SoakProfile, log: (line: string) => void = () => {}): Promise<SoakReport> {
  const t0 = performance.now();
  // Separate streams: how often the writer ticker runs depends on timing, and must not shift the fault schedule.
  const rng = createRng(profile.seed);
  const writerRng = createRng(profile.seed ^ 0x9e3779b9);
  const violations: string[] = [];
  const processWarnings: string[] = [];
  const onProcessWarning = (w: Error): void => {
    processWarnings.push(`${w.name}: ${w.message}`);
  };
  process.on('warning', onProcessWarning);
  const baseline = activeResources();
  collectGarbage();
  const rssBefore = process.memoryUsage.rss();
  const heapBefore = process.memoryUsage().heapUsed;
  let rssPeak = rssBefore;

  const server = new CountingServer();
  let proxy: FaultProxy | undefined;
  const clients: SoakClient[] = [];
  let ticker: NodeJS.Timeout | undefined;
  let sampler: NodeJS.Timeout | undefined;
  const stopFaults = new AbortController();
  // Whatever went wrong, nothing of the run may outlive it.
  const teardown = async (): Promise<void> => {
    stopFaults.abort();
    clearInterval(ticker);
    clearInterval(sampler);
    process.off('warning', onProcessWarning);
    for (const c of clients) c.sock.destroy();
    await proxy?.close();
    await server.stop();
  };
  try {
    await server.start();
    proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: server.port } });
    proxy.on('connection', (conn) => shrinkBuffer(conn.client, SO_RCVBUF));
    return await drive(proxy, stopFaults.signal);
  } catch (err) {
    await teardown();
    throw err;
  }

  async function drive(proxy: FaultProxy, stop: AbortSignal): Promise<SoakReport> {
    const failures: Partial<Record<FailureKind, number>> = {};
    const warnings: Record<string, number> = {};
    for (let i = 0; i < profile.clients; i++) {
      const c = new SoakClient(
        i,
        proxy.port,
        profile,
        t0 + writerRng.int(0, profile.writeEveryMs),
        (f) => (failures[f.kind] = (failures[f.kind] ?? 0) + 1),
        (code) => (warnings[code] = (warnings[code] ?? 0) + 1),
      );
      clients.push(c);
      c.sock.connect();
    }

    const ctx: Ctx = { profile, rng, proxy, server, faults: {}, stop };
    const writeUntil = t0 + profile.durationMs;
    // One ticker for every writer; each tick writes what is due, at most a few per client, so a late tick cannot burst.
    ticker = setInterval(() => {
      const t = performance.now();
      if (t >= writeUntil) return;
      for (const c of clients) {
        for (let n = 0; n < 4 && c.nextDue <= t; n++) {
          c.write(writerRng.int(0, profile.maxPadding));
          c.nextDue += profile.writeEveryMs;
        }
        if (c.nextDue <= t) c.nextDue = t + profile.writeEveryMs;
        if (writerRng.chance(TICK_MS / profile.burstEveryMs)) {
          const frames = writerRng.int(...profile.burstFrames);
          for (let n = 0; n < frames; n++) c.write(writerRng.int(MAX_FRAME / 2, MAX_FRAME - MSG_HEADER));
        }
      }
    }, TICK_MS);
    sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    }, 250);
    const faultsDone = faultLoop(ctx, writeUntil, log);

    await sleep(Math.max(0, writeUntil - performance.now()));
    clearInterval(ticker);
    stopFaults.abort();
    await faultsDone;
    await proxy.heal();
    log(`writers stopped; healed; waiting up to ${profile.settleMs} ms for queues to flush`);

    // Settle: every client open again, nothing queued, every write's callback run.
    const settleBy = performance.now() + profile.settleMs;
    const unsettled = (): SoakClient[] =>
      clients.filter((c) => c.sock.state !== 'open' || c.sock.stats().queuedWrites > 0 || c.msgs.some((m) => m.cbCalls === 0));
    while (unsettled().length > 0 && performance.now() < settleBy) await sleep(25);
    for (const c of unsettled()) {
      const pending = c.msgs.filter((m) => m.cbCalls === 0).length;
      violations.push(
        `client ${c.id} not settled ${profile.settleMs} ms after heal: state ${c.sock.state}, ` +
          `${c.sock.stats().queuedWrites} queued, ${pending} callbacks pending`,
      );
    }

    log(`settled after ${Math.round(performance.now() - settleBy + profile.settleMs)} ms`);
    const queuedAtClose = clients.reduce((n, c) => n + c.sock.stats().queuedWrites, 0);
    const closing = await Promise.allSettled(clients.map((c) => withTimeout(c.sock.close(), 5000, `client ${c.id} close()`)));
    for (const r of closing) if (r.status === 'rejected') violations.push(String(r.reason));
    // After a clean close this only stops the proxy, the server and the timers.
    await teardown();
    log(`closed; ${Math.round(performance.now() - t0)} ms since start`);
    const leakedResources = await settleResources(baseline, 3000);

    const report: SoakReport = {
      profile,
      elapsedMs: Math.round(performance.now() - t0),
      messages: { written: 0, received: 0, confirmed: 0, unconfirmed: 0, unconfirmedLost: 0, rejected: 0, requeued: 0, duplicates: 0, queuedAtClose },
      rejectedByCode: {},
      failures,
      faults: ctx.faults,
      connects: 0,
      reconnects: 0,
      serverAccepted: server.accepted,
      warnings,
      processWarnings,
      rss: { before: rssBefore, peak: rssPeak, after: 0 },
      heap: { before: heapBefore, after: 0 },
      leakedResources,
      buffersNotShrunk: sockopt().reason,
      violations,
      violationCount: 0,
    };
    for (const c of clients) account(c, server.receipts.get(c.id) ?? { seqs: [], conns: [] }, report);
    for (const e of server.errors) violations.push(`server: ${e}`);
    // The bookkeeping above grows with the messages; once it is dropped, what stays is what resock (or Node) kept.
    clients.length = 0;
    server.receipts.clear();
    collectGarbage();
    const rssAfter = process.memoryUsage.rss();
    report.rss.after = rssAfter;
    report.rss.peak = Math.max(rssPeak, rssAfter);
    report.heap.after = process.memoryUsage().heapUsed;
    if (report.heap.after - heapBefore > HEAP_BOUND) {
      violations.push(`heap after GC grew by ${mib(report.heap.after - heapBefore)} once every socket was closed (bound ${mib(HEAP_BOUND)})`);
    }
    if (leakedResources.length > 0) violations.push(`resources left after close: ${leakedResources.join(', ')}`);
    if (rssAfter - rssBefore > profile.rssBound) {
      violations.push(`RSS grew by ${mib(rssAfter - rssBefore)} (bound ${mib(profile.rssBound)})`);
    }
    for (const w of processWarnings) if (w.startsWith('MaxListenersExceededWarning')) violations.push(`process warning: ${w}`);
    report.violationCount = violations.length;
    report.violations = capPerKind(violations);
    return report;
  }
}

/** Checks one client's messages against what the server received and accumulates the counters. */
function account(c: SoakClient, r: Receipts, report: SoakReport): void {
  const v = report.violations;
  v.push(...c.violations);
  const m = report.messages;
  m.written += c.msgs.length;
  report.connects += c.connects;
  report.reconnects += Math.max(0, c.connects - 1);
  if (c.closes.length !== 1 || c.closes[0] !== 'closed') v.push(`client ${c.id}: close events ${JSON.stringify(c.closes)}`);
  if (c.sock.state !== 'closed') v.push(`client ${c.id}: state ${c.sock.state} after close()`);

  const counts = new Map<number, number>();
  for (const seq of r.seqs) counts.set(seq, (counts.get(seq) ?? 0) + 1);
  for (const seq of counts.keys()) {
    if (seq >= c.msgs.length) v.push(`client ${c.id}: server received seq ${seq}, never written`);
  }
  for (const msg of c.msgs) {
    const got = counts.get(msg.seq) ?? 0;
    const at = `client ${c.id} seq ${msg.seq}`;
    const fate = `(placed ${msg.placed}, requeued ${msg.requeued}×, confirmed ${msg.confirmed}, unconfirmed ${msg.unconfirmed}, callback ${msg.cbCalls}× ${msg.cbError ?? 'ok'})`;
    if (got > 0) m.received++;
    if (msg.confirmed) m.confirmed++;
    if (msg.unconfirmed) m.unconfirmed++;
    if (msg.requeued > 0) m.requeued++;
    if (msg.cbCalls !== 1) v.push(`${at}: write callback ran ${msg.cbCalls} times ${fate}`);
    if (got > 1) {
      m.duplicates++;
      v.push(`${at}: received ${got} times ${fate}`);
    }
    if (msg.confirmed && got === 0) v.push(`${at}: confirmed by a heartbeat reply but never received ${fate}`);
    if (msg.cbError?.startsWith('ERR_RESOCK_') && got > 0) v.push(`${at}: rejected with ${msg.cbError} yet received ${fate}`);
    if (msg.cbError !== undefined && !msg.cbError.startsWith('ERR_RESOCK_') && !msg.unconfirmed) {
      v.push(`${at}: write failed with ${msg.cbError} but resock neither requeued it nor reported it unconfirmed ${fate}`);
    }
    if (msg.placed === 'refused' && msg.cbError === undefined) v.push(`${at}: neither queued nor sent, yet no error ${fate}`);
    if (got === 0) {
      if (msg.unconfirmed) m.unconfirmedLost++;
      else if (msg.cbError !== undefined) {
        m.rejected++;
        report.rejectedByCode[msg.cbError] = (report.rejectedByCode[msg.cbError] ?? 0) + 1;
      } else v.push(`${at}: lost: not received, not reported unconfirmed, not rejected ${fate}`);
    }
  }
  checkOrder(c, r, v);
}

/**
 * TCP keeps order within a connection, and resock's requeue keeps it across connections. The only messages allowed to
 * arrive late are unconfirmed ones: a black-holed connection the client gave up on may still deliver them once healed.
 */
function checkOrder(c: SoakClient, r: Receipts, v: string[]): void {
  const lastPerConn = new Map<number, number>();
  let last = -1;
  for (let i = 0; i < r.seqs.length; i++) {
    const seq = r.seqs[i]!;
    const conn = r.conns[i]!;
    const prev = lastPerConn.get(conn) ?? -1;
    if (seq <= prev) v.push(`client ${c.id}: seq ${seq} after ${prev} on server connection ${conn}`);
    lastPerConn.set(conn, seq);
    if (c.msgs[seq]?.unconfirmed === true) continue;
    if (seq <= last) v.push(`client ${c.id}: seq ${seq} arrived after seq ${last} (server connection ${conn})`);
    last = Math.max(last, seq);
  }
}

// ---- faults -----------------------------------------------------------------------------------------------------------

async function faultLoop(ctx: Ctx, until: number, log: (line: string) => void): Promise<void> {
  const { profile, rng, proxy, server, stop } = ctx;
  const maxEpisodes = Math.ceil(profile.durationMs / Math.max(1, profile.faultGapMs[0])) + 1;
  for (let episode = 0; episode < maxEpisodes; episode++) {
    await pause(rng.int(...profile.faultGapMs), until, stop);
    if (stop.aborted || performance.now() >= until) return;
    // A fixed number of draws per episode keeps the schedule replayable; which connections are open when it starts
    // depends on timing, so the subset is drawn from a stream of its own.
    const kind = rng.pick(profile.faults);
    const length = rng.int(...profile.faultLengthMs);
    const everyone = rng.chance(0.5);
    const p1 = rng.next();
    const p2 = rng.next();
    const episodeRng = createRng(rng.int(0, 2 ** 32 - 1));
    ctx.faults[kind] = (ctx.faults[kind] ?? 0) + 1;
    const scope = everyone ? undefined : proxy.connections.filter(() => episodeRng.chance(0.4));
    log(`${Math.round(performance.now())} fault ${kind} ${length} ms on ${scope === undefined ? 'all' : `${scope.length}`} connections`);
    switch (kind) {
      case 'reset':
        for (const conn of scope ?? proxy.connections) proxy.reset(conn);
        break;
      case 'blackhole':
        if (scope === undefined) proxy.blackhole();
        else for (const conn of scope) proxy.blackhole(conn);
        break;
      case 'latency': {
        const ms = 5 + Math.floor(p1 * 115);
        const jitter = Math.floor((p2 * ms) / 2);
        if (scope === undefined) proxy.latency(ms, jitter);
        else for (const conn of scope) proxy.latency(ms, jitter, conn);
        break;
      }
      case 'slice': {
        const size = 1 + Math.floor(p1 * 16);
        const delay = Math.floor(p2 * 9);
        if (scope === undefined) proxy.slice(size, delay);
        else for (const conn of scope) proxy.slice(size, delay, conn);
        break;
      }
      case 'refuse':
        proxy.refuse();
        for (const conn of proxy.connections) if (episodeRng.chance(0.5)) proxy.reset(conn);
        break;
      case 'restart':
        // The peer process goes away with its listener and comes back on the same port.
        await server.restart(length);
        continue;
    }
    if (kind !== 'reset') {
      await pause(length, until, stop);
      await proxy.heal();
    }
  }
}

/** Sleeps `ms`, cut short by the end of the run. */
async function pause(ms: number, until: number, stop: AbortSignal): Promise<void> {
  const left = Math.min(ms, until - performance.now());
  if (left <= 0 || stop.aborted) return;
  await sleep(left, undefined, { signal: stop }).catch(() => undefined);
}

// ---- reporting --------------------------------------------------------------------------------------------------------

export function formatReport(r: SoakReport): string {
  const p = r.profile;
  const m = r.messages;
  const kv = (o: Record<string, number | undefined>): string =>
    Object.entries(o)
      .filter(([, n]) => n !== undefined && n > 0)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => `${k} ${n}`)
      .join(', ') || '-';
  const rows: Array<[string, string]> = [
    ['profile', `${p.name}: ${p.clients} clients × ${p.durationMs / 1000} s, a write every ${p.writeEveryMs} ms, seed ${p.seed}`],
    ['elapsed', `${(r.elapsedMs / 1000).toFixed(1)} s`],
    ['written', String(m.written)],
    ['received', String(m.received)],
    ['confirmed / unconfirmed', `${m.confirmed} / ${m.unconfirmed}`],
    ['unconfirmed-lost', String(m.unconfirmedLost)],
    ['rejected', `${m.rejected} (${kv(r.rejectedByCode)})`],
    ['queued at close', String(m.queuedAtClose)],
    ['requeued (at least once)', String(m.requeued)],
    ['duplicates', String(m.duplicates)],
    ['faults injected', kv(r.faults)],
    ['failures by kind', kv(r.failures)],
    ['connects / reconnects', `${r.connects} / ${r.reconnects} (server accepted ${r.serverAccepted})`],
    ['resock warnings', kv(r.warnings)],
    ['process warnings', String(r.processWarnings.length)],
    ['RSS before / peak / after', `${mib(r.rss.before)} / ${mib(r.rss.peak)} / ${mib(r.rss.after)}`],
    ['heap before / after (GC)', `${mib(r.heap.before)} / ${mib(r.heap.after)}`],
    ['leaked resources', r.leakedResources.join(', ') || 'none'],
    ['socket buffers', r.buffersNotShrunk === undefined ? `shrunk to ${SMALL_BUFFER} bytes` : `not shrunk: ${r.buffersNotShrunk}`],
    ['violations', String(r.violationCount)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, val]) => `${k.padEnd(width)}  ${val}`);
  if (r.violations.length > 0) lines.push('', ...r.violations.map((x) => `  ✗ ${x}`));
  return lines.join('\n');
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// Same message shape, different numbers: keep the first few of each so one systematic bug does not flood the report.
function capPerKind(violations: string[]): string[] {
  const seen = new Map<string, number>();
  const out: string[] = [];
  for (const line of violations) {
    const shape = line.replace(/\d+/g, '#');
    const n = (seen.get(shape) ?? 0) + 1;
    seen.set(shape, n);
    if (n <= MAX_VIOLATIONS_PER_KIND) out.push(line);
  }
  for (const [shape, n] of seen) if (n > MAX_VIOLATIONS_PER_KIND) out.push(`… and ${n - MAX_VIOLATIONS_PER_KIND} more like: ${shape}`);
  return out;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- small socket buffers ---------------------------------------------------------------------------------------------

// Loopback autotunes buffers up to tcp_rmem/tcp_wmem max (tens of MiB): a black hole would swallow every burst and
// nothing would ever wait in Node. Setting SO_SNDBUF / SO_RCVBUF (which also stops autotuning) keeps ~40 KiB in flight.
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SMALL_BUFFER = 4096;

type SetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number) => number;
let setsockopt: { fn?: SetSockOpt; reason?: string } | undefined;

function sockopt(): { fn?: SetSockOpt; reason?: string } {
  if (setsockopt !== undefined) return setsockopt;
  try {
    // koffi is an optional dependency of resock; without it the soak still runs, with fewer requeues.
    const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(signature: string): unknown } };
    setsockopt = { fn: koffi.load('libc.so.6').func('int setsockopt(int, int, int, const void *, uint32_t)') as SetSockOpt };
  } catch (err) {
    setsockopt = { reason: `koffi unavailable (${(err as Error).message.split('\n')[0]})` };
  }
  return setsockopt;
}

function shrinkBuffer(socket: net.Socket, option: number): void {
  const fn = sockopt().fn;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (fn === undefined || typeof fd !== 'number' || fd < 0) return;
  fn(fd, SOL_SOCKET, option, Buffer.from(new Uint32Array([SMALL_BUFFER]).buffer), 4);
}

let gc: (() => void) | undefined;
/** A full GC before reading RSS, so garbage is not mistaken for growth (exposed at runtime when node was not started with it). */
function collectGarbage(): void {
  if (gc === undefined) {
    const global = globalThis as { gc?: () => void };
    if (typeof global.gc === 'function') gc = global.gc;
    else {
      v8.setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    }
  }
  gc();
}
