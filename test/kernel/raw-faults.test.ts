// Proves each kernel fault recipe of FAULTS.md (rows 4–11) with bare net sockets, and measures what a client
// sees, before resock is tested against the same faults. Each test has its own client ⇄ router ⇄ server lab,
// so the fault tests run concurrently and the suite takes about as long as its slowest row (keepalive, ~11 s).
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createFaultLab,
  destroyAllLabs,
  pidAlive,
  kernelFaultSupport,
  koffiSupport,
  listNamespaces,
  ownNamespaces,
  sweepStaleNamespaces,
  withFaultLab,
  type ChildEvent,
  type FaultLab,
  type NodeChild,
} from './netns.js';

const support = kernelFaultSupport();
const userTimeout = koffiSupport();
if (!support.ok) console.log(`kernel fault tests skipped: ${support.reason}`);
else if (!userTimeout.ok) console.log(`TCP_USER_TIMEOUT rows skipped: ${userTimeout.reason}`);

/** Child start-up (node + tsx) is ~0.2 s; this leaves room for a loaded CI machine. */
const STARTUP_MS = 10_000;
const spawnedPids: number[] = [];
const measured: Array<[string, string]> = [];

function record(row: string, text: string): void {
  measured.push([row, text]);
  console.log(`${row}: ${text}`);
}


interface ClientConfig {
  keepAliveMs?: number;
  userTimeoutMs?: number;
  connectTimeoutMs?: number;
}

function spawnServer(lab: FaultLab): NodeChild {
  const server = lab.server.spawnNode('raw-server.ts', [JSON.stringify({ host: '0.0.0.0', port: 0 })]);
  spawnedPids.push(server.pid);
  return server;
}

function spawnClient(lab: FaultLab, port: number, config: ClientConfig = {}): NodeChild {
  const client = lab.client.spawnNode('raw-client.ts', [JSON.stringify({ host: lab.serverHost, port, ...config })]);
  spawnedPids.push(client.pid);
  return client;
}

async function listeningPort(server: NodeChild): Promise<number> {
  const listening = await server.waitFor('listening', STARTUP_MS);
  expect(listening.port).toEqual(expect.any(Number));
  return listening.port as number;
}

/** A server, a client connected to it through the router, and the server's port. */
async function connectedPair(lab: FaultLab, config: ClientConfig = {}) {
  const server = spawnServer(lab);
  const port = await listeningPort(server);
  const client = spawnClient(lab, port, config);
  await client.waitFor('connect', STARTUP_MS);
  await server.waitFor('connection', STARTUP_MS);
  if (config.userTimeoutMs !== undefined) {
    const applied = await client.waitFor((e) => e.event === 'sockopt' || e.event === 'sockopt-error', STARTUP_MS);
    expect(applied).toMatchObject({ event: 'sockopt', userTimeoutMs: config.userTimeoutMs });
  }
  return { server, client, port };
}

/** Until `ip netns exec` has moved the process into the namespace (it is only counted there after that). */
async function waitUntilInside(namespace: string, pid: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const pids = spawnSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8', timeout: 5_000 }).stdout;
    if (pids.split(/\s+/).includes(String(pid))) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`pid ${pid} never showed up in namespace ${namespace}`);
}

/** Sockets in SYN-SENT towards the port in the client namespace; polls until one shows up or `withinMs` passes. */
async function synSentCount(lab: FaultLab, port: number, withinMs: number): Promise<number> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const { stdout } = await lab.client.exec('ss', ['-t', '-n', '-H', 'state', 'syn-sent', 'dport', '=', `:${port}`]);
    const count = stdout.split('\n').filter((line) => line.trim() !== '').length;
    if (count > 0 || Date.now() >= deadline) return count;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const isFailure = (e: ChildEvent): boolean => e.event === 'error' || e.event === 'end' || e.event === 'close';

describe.skipIf(!support.ok)('kernel faults on raw sockets, client ⇄ router ⇄ server namespaces', () => {
  beforeAll(() => {
    const removed = sweepStaleNamespaces();
    if (removed.length > 0) console.log(`removed stale namespaces of crashed runs: ${removed.join(', ')}`);
  });

  afterAll(async () => {
    await destroyAllLabs();
    console.log(`measured:\n${measured.map(([row, text]) => `  ${row}: ${text}`).join('\n')}`);
    expect(await ownNamespaces()).toEqual([]);
    expect(spawnedPids.filter(pidAlive)).toEqual([]);
  });

  describe.concurrent('faults', () => {
    // First: the slowest row starts before the concurrency limit queues anything.
    test('row 9: black hole on an idle link, keepalive 1 s (Node: 1 s × 10 probes) → ETIMEDOUT in ~11 s', async ({
      signal,
    }) => {
      const keepAliveMs = 1_000;
      const probes = 10; // libuv's fixed TCP_KEEPCNT, with TCP_KEEPINTVL 1 s
      await withFaultLab(
        async (lab) => {
          const { client, port } = await connectedPair(lab, { keepAliveMs });
          await lab.faults.blackhole(port);
          const faultAt = Date.now();
          const error = await client.waitFor(isFailure, keepAliveMs * (probes + 1) + 8_000);
          const ms = error.t - faultAt;
          record('row 9 black hole, keepalive 1 s', `${error.code} after ${ms} ms`);
          expect(error).toMatchObject({ event: 'error', code: 'ETIMEDOUT' });
          // Idle (≤ 1 s) then 10 unanswered probes 1 s apart; less would mean something else ended it.
          expect(ms).toBeGreaterThanOrEqual(keepAliveMs * probes - 500);
          expect(ms).toBeLessThan(keepAliveMs * (probes + 1) + 4_000);
        },
        { signal },
      );
    });

    test.skipIf(!userTimeout.ok)(
      'row 9: black hole on an idle link, keepalive 1 s + TCP_USER_TIMEOUT 3 s → ETIMEDOUT in ~3 s',
      async ({ signal }) => {
        const keepAliveMs = 1_000;
        const userTimeoutMs = 3_000;
        await withFaultLab(
          async (lab) => {
            const { client, port } = await connectedPair(lab, { keepAliveMs, userTimeoutMs });
            await lab.faults.blackhole(port);
            const faultAt = Date.now();
            const error = await client.waitFor(isFailure, userTimeoutMs + keepAliveMs + 8_000);
            const ms = error.t - faultAt;
            record('row 9 black hole, keepalive 1 s + UTO 3 s', `${error.code} after ${ms} ms`);
            expect(error).toMatchObject({ event: 'error', code: 'ETIMEDOUT' });
            // UTO counts from the last packet received, which may precede the fault by up to one idle period.
            expect(ms).toBeGreaterThanOrEqual(userTimeoutMs - keepAliveMs - 500);
            expect(ms).toBeLessThan(userTimeoutMs + keepAliveMs + 3_000);
          },
          { signal },
        );
      },
    );

    test.skipIf(!userTimeout.ok)(
      'row 10: black hole with unacknowledged data, TCP_USER_TIMEOUT 5 s → ETIMEDOUT in ~5 s',
      async ({ signal }) => {
        const userTimeoutMs = 5_000;
        await withFaultLab(
          async (lab) => {
            const { client, port } = await connectedPair(lab, { userTimeoutMs });
            await lab.faults.blackhole(port);
            const faultAt = Date.now();
            client.send({ cmd: 'write', bytes: 1_000 });
            await client.waitFor('wrote', STARTUP_MS);
            const error = await client.waitFor(isFailure, userTimeoutMs + 8_000);
            const ms = error.t - faultAt;
            record('row 10 black hole, unacked data, UTO 5 s', `${error.code} after ${ms} ms`);
            expect(error).toMatchObject({ event: 'error', code: 'ETIMEDOUT' });
            expect(ms).toBeGreaterThanOrEqual(userTimeoutMs - 500);
            // At most one more retransmission timeout after the user timeout.
            expect(ms).toBeLessThan(userTimeoutMs + 3_000);
          },
          { signal },
        );
      },
    );

    test.skipIf(!userTimeout.ok)(
      'row 8: ICMP host-unreachable on an established link is a soft error: nothing until TCP_USER_TIMEOUT 3 s',
      async ({ signal }) => {
        const userTimeoutMs = 3_000;
        await withFaultLab(
          async (lab) => {
            const { client, port } = await connectedPair(lab, { userTimeoutMs });
            await lab.faults.icmpUnreachable(port);
            const faultAt = Date.now();
            client.send({ cmd: 'write', bytes: 100 });
            await client.waitFor('wrote', STARTUP_MS);
            const error = await client.waitFor(isFailure, userTimeoutMs + 8_000);
            const ms = error.t - faultAt;
            record('row 8 ICMP host-unreachable, UTO 3 s', `${error.code} after ${ms} ms`);
            // The abort reports the last soft error the ICMP left on the socket, not ETIMEDOUT.
            expect(error).toMatchObject({ event: 'error', code: 'EHOSTUNREACH' });
            expect(ms).toBeGreaterThanOrEqual(userTimeoutMs - 500);
            expect(ms).toBeLessThan(userTimeoutMs + 3_000);
          },
          { signal },
        );
      },
    );

    test('row 11: hung peer (SIGSTOP): the kernel still ACKs, a keepalive client sees nothing for 3 s', async ({
      signal,
    }) => {
      const quietMs = 3_000;
      await withFaultLab(
        async (lab) => {
          const { server, client } = await connectedPair(lab, { keepAliveMs: 1_000 });
          // `ip netns exec` must have exec'd node: SIGSTOP to a wrapper would leave the peer running.
          const start = server.events.find((e) => e.event === 'start');
          expect(start?.pid).toBe(server.pid);
          await server.signal('SIGSTOP');
          client.send({ cmd: 'write', bytes: 100 });
          await client.waitFor('wrote', STARTUP_MS);
          await client.expectNone(isFailure, quietMs);
          record('row 11 hung peer, keepalive 1 s', `no error, end or close in ${quietMs} ms`);
          await server.signal('SIGCONT');
          // The bytes waited in the stopped server's receive buffer: proof the peer was hung, not gone.
          await expect(server.waitFor('data', STARTUP_MS)).resolves.toMatchObject({ bytes: 100 });
        },
        { signal },
      );
    });

    test('row 4: middlebox RST → ECONNRESET on the next send, the server hears nothing', async ({ signal }) => {
      await withFaultLab(
        async (lab) => {
          const { server, client, port } = await connectedPair(lab);
          await lab.faults.rstOnPort(port);
          const faultAt = Date.now();
          client.send({ cmd: 'write', bytes: 10 });
          const error = await client.waitFor(isFailure, 5_000);
          const ms = error.t - faultAt;
          record('row 4 middlebox RST', `${error.code} after ${ms} ms`);
          expect(error).toMatchObject({ event: 'error', code: 'ECONNRESET' });
          expect(ms).toBeLessThan(2_000);
          await server.expectNone(isFailure, 300);
        },
        { signal },
      );
    });

    test('row 5: ss -K in the client namespace → ECONNABORTED at once, the peer gets a reset', async ({ signal }) => {
      await withFaultLab(
        async (lab) => {
          const { server, client, port } = await connectedPair(lab);
          const faultAt = Date.now();
          expect(await lab.faults.ssKill(port)).toBe(1);
          const error = await client.waitFor(isFailure, 5_000);
          const ms = error.t - faultAt;
          record('row 5 ss -K', `${error.code} after ${ms} ms`);
          expect(error).toMatchObject({ event: 'error', code: 'ECONNABORTED' });
          expect(ms).toBeLessThan(2_000);
          // The kernel sends an RST when it aborts the socket.
          await expect(server.waitFor('error', 5_000)).resolves.toMatchObject({ code: 'ECONNRESET' });
        },
        { signal },
      );
    });

    test('row 6: listener closed → ECONNREFUSED at once', async ({ signal }) => {
      await withFaultLab(
        async (lab) => {
          const server = spawnServer(lab);
          const port = await listeningPort(server);
          server.send({ cmd: 'close-listener' });
          await server.waitFor('listener-closing', STARTUP_MS);
          const client = spawnClient(lab, port);
          const started = await client.waitFor('start', STARTUP_MS);
          const error = await client.waitFor(isFailure, 5_000);
          const ms = error.t - started.t;
          record('row 6 listener down', `${error.code} after ${ms} ms`);
          expect(error).toMatchObject({ event: 'error', code: 'ECONNREFUSED' });
          expect(ms).toBeLessThan(2_000);
        },
        { signal },
      );
    });

    test('row 7: SYN black hole → no connect; only the app connect timeout (1.5 s) ends it', async ({ signal }) => {
      const connectTimeoutMs = 1_500;
      await withFaultLab(
        async (lab) => {
          const server = spawnServer(lab);
          const port = await listeningPort(server);
          await lab.faults.dropSyn(port);
          const client = spawnClient(lab, port, { connectTimeoutMs });
          const started = await client.waitFor('start', STARTUP_MS);
          // The kernel is retrying the SYN meanwhile (tcp_syn_retries 6: 2 min+).
          expect(await synSentCount(lab, port, connectTimeoutMs / 2)).toBe(1);
          const ended = await client.waitFor((e) => e.event !== 'start', connectTimeoutMs + 5_000);
          const ms = ended.t - started.t;
          record('row 7 SYN black hole', `${ended.event} after ${ms} ms (app timeout ${connectTimeoutMs} ms)`);
          expect(ended.event).toBe('connect-timeout');
          expect(ms).toBeGreaterThanOrEqual(connectTimeoutMs - 100);
          expect(ms).toBeLessThan(connectTimeoutMs + 2_000);
          expect(server.events.some((e) => e.event === 'connection')).toBe(false);
          // Control: with the rule gone the same dial succeeds, so the rule (not the setup) was the fault.
          await lab.faults.clear();
          expect(await lab.faults.rules()).not.toContain('drop');
          await spawnClient(lab, port, { connectTimeoutMs }).waitFor('connect', STARTUP_MS);
        },
        { signal },
      );
    });
  });

  describe('harness', () => {
    test('a failing test body still kills its children and deletes its namespaces', async () => {
      let names: string[] = [];
      let pid = 0;
      const body = withFaultLab(async (lab) => {
        names = [lab.client.name, lab.router.name, lab.server.name];
        const server = spawnServer(lab);
        await server.waitFor('listening', STARTUP_MS);
        pid = server.pid;
        throw new Error('test body failed');
      });
      await expect(body).rejects.toThrow('test body failed');
      expect(names).toHaveLength(3);
      const existing = await listNamespaces();
      expect(names.filter((name) => existing.includes(name))).toEqual([]);
      expect(pidAlive(pid)).toBe(false);
    });

    test('an aborted signal (a vitest timeout) destroys the lab', async () => {
      const controller = new AbortController();
      const lab = await createFaultLab({ signal: controller.signal });
      const server = spawnServer(lab);
      await server.waitFor('listening', STARTUP_MS);
      controller.abort();
      const exit = await server.exited;
      expect(exit.signal).toBe('SIGKILL');
      await lab.destroy(); // the same teardown the abort started
      expect(await listNamespaces()).not.toContain(lab.server.name);
    });

    test('waitFor rejects with the child output on timeout, and at once when the child exits', async () => {
      await withFaultLab(async (lab) => {
        const server = spawnServer(lab);
        await server.waitFor('listening', STARTUP_MS);
        await expect(server.waitFor('never', 200)).rejects.toThrow(/timed out after 200 ms[\s\S]*"event":"listening"/);
        const pending = server.waitFor('never', 60_000);
        const startedAt = Date.now();
        await server.kill();
        await expect(pending).rejects.toThrow(/exited \(signal SIGKILL\) before event "never"/);
        expect(Date.now() - startedAt).toBeLessThan(5_000);
      });
    });

    test('the stale sweep deletes namespaces of dead owners with their processes, and spares live owners', async () => {
      const deadPid = spawnSync('true').pid;
      expect(deadPid).toBeGreaterThan(0);
      expect(pidAlive(deadPid)).toBe(false);
      const stale = `resock-${deadPid}-0-sweeptest`;
      const live = `resock-${process.pid}-sweeptest`;
      try {
        for (const name of [stale, live]) spawnSync('ip', ['netns', 'add', name], { timeout: 5_000 });
        // A leftover from the crashed run, still running inside the stale namespace.
        const leftover = spawn('ip', ['netns', 'exec', stale, 'sleep', '60'], { stdio: 'ignore' });
        const leftoverExit = new Promise((resolve) => leftover.on('exit', (_code, sig) => resolve(sig)));
        await waitUntilInside(stale, leftover.pid ?? -1);
        const removed = sweepStaleNamespaces();
        expect(removed).toContain(stale);
        expect(removed).not.toContain(live);
        await expect(leftoverExit).resolves.toBe('SIGKILL');
        const existing = await listNamespaces();
        expect(existing).not.toContain(stale);
        expect(existing).toContain(live);
      } finally {
        for (const name of [stale, live]) spawnSync('ip', ['netns', 'del', name], { timeout: 5_000, stdio: 'ignore' });
      }
    });
  });
});
