// Proves that a ResilientSocket notices each kernel fault of FAULTS.md within the bound detect.ts promises for its
// options, classifies it and diagnoses it, then reconnects once the fault is gone. The fault recipes themselves are
// proven on bare sockets in raw-faults.test.ts. Each test has its own client ⇄ router ⇄ server lab and they run
// concurrently, so the suite takes about as long as its slowest scenarios.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ResilientSocketOptions, WriteAccount } from '../../src/index.js';
import {
  destroyAllLabs,
  pidAlive,
  kernelFaultSupport,
  koffiSupport,
  ownNamespaces,
  sweepStaleNamespaces,
  withFaultLab,
  type ChildEvent,
  type FaultLab,
  type NodeChild,
} from './netns.js';
import {
  boundsFor,
  CONNECT_TIMEOUT,
  FAST_RECONNECT,
  isConnect,
  isReconnect,
  PING,
  PONG,
  ResockLab,
  SLACK_MS,
  STARTUP_MS,
  type ClientOptions,
  type ConnectEvent,
} from './resock-lab.js';

const support = kernelFaultSupport();
const sockopt = koffiSupport();
if (!support.ok) console.log(`resock kernel fault tests skipped: ${support.reason}`);
else if (!sockopt.ok) console.log(`resock TCP_USER_TIMEOUT scenarios skipped: ${sockopt.reason}`);


interface FailureEvent extends ChildEvent {
  readonly event: 'failure';
  readonly kind: string;
  readonly code: string;
  readonly phase: string;
  readonly attempt: number;
  readonly cause: string;
  readonly idleFor: number | null;
  readonly queuedBytes: number;
  readonly writes: WriteAccount | null;
  /** The fixture's own count of user bytes accepted on the connection that failed. */
  readonly accepted: number | null;
}


const isFailure = (e: ChildEvent): e is FailureEvent => e.event === 'failure';

const resockLab = new ResockLab();
const spawnedPids = resockLab.pids;
const rows: Array<{ scenario: string; outcome: string; cause: string; measured: number; bound: string }> = [];

function record(scenario: string, failure: FailureEvent, measured: number, bound: number | string): void {
  const row = {
    scenario,
    outcome: `${failure.kind} (${failure.code}, ${failure.phase})`,
    cause: failure.cause,
    measured,
    bound: typeof bound === 'number' ? `${bound} + ${SLACK_MS}` : bound,
  };
  rows.push(row);
  console.log(`${scenario}: ${row.outcome}, ${row.cause}, ${measured} ms (bound ${row.bound} ms)`);
}








/** Kernel-timeout scenarios mean nothing unless every keepalive setting reached the kernel. */
function expectKeepAliveApplied(connected: ConnectEvent): void {
  expect(connected.keepAlive.applied).toEqual({ idle: true, interval: true, count: true, userTimeout: true });
}

/** With the fault gone, the socket must come back by itself: within one dial, one backoff delay and the slack. */
async function expectReconnect(lab: FaultLab, client: NodeChild): Promise<ConnectEvent> {
  await lab.faults.clear();
  return client.waitFor(isReconnect, CONNECT_TIMEOUT + FAST_RECONNECT.maxDelay + STARTUP_MS);
}

describe.skipIf(!support.ok)('resock under kernel faults, client ⇄ router ⇄ server namespaces', () => {
  beforeAll(() => {
    const removed = sweepStaleNamespaces();
    if (removed.length > 0) console.log(`removed stale namespaces of crashed runs: ${removed.join(', ')}`);
  });

  afterAll(async () => {
    await destroyAllLabs();
    if (rows.length > 0) {
      const lines = rows.map((r) => `| ${r.scenario} | ${r.outcome} | ${r.cause} | ${r.measured} | ${r.bound} |`);
      console.log(['| scenario | failure | diagnosis | measured ms | bound ms |', '|---|---|---|---:|---:|', ...lines].join('\n'));
    }
    expect(await ownNamespaces()).toEqual([]);
    expect(spawnedPids.filter(pidAlive)).toEqual([]);
  });

  describe.concurrent('faults', () => {
    // The slowest scenarios first, so they start before the concurrency limit queues anything.
    test.skipIf(!sockopt.ok)(
      'black hole with unacknowledged data: TCP_USER_TIMEOUT → keepalive-timeout, and the write account adds up',
      async ({ signal }) => {
        // A heartbeat that answers before the fault (so some bytes are confirmed) but whose timeout is far beyond the
        // kernel's: the user timeout must be what ends the connection.
        const options: ClientOptions = {
          detectWithin: 4_000,
          heartbeat: { ping: PING, interval: 500, timeout: 20_000 },
          connectTimeout: CONNECT_TIMEOUT,
          reconnect: FAST_RECONNECT,
        };
        const bound = boundsFor(options).bounds.unackedBlackHole;
        const confirmed = 1_000;
        const chunk = 64 * 1024;
        await withFaultLab(
          async (lab) => {
            const { server, client, port, connected } = await resockLab.connectedPair(lab, options);
            expectKeepAliveApplied(connected);
            client.send({ cmd: 'write', bytes: confirmed });
            const done = await client.waitFor('write-done', STARTUP_MS);
            expect(done.error).toBeNull();
            await server.waitFor((e) => e.event === 'data' && e.payload === confirmed, STARTUP_MS);
            // A reply to a ping sent after the write: it confirms the write's bytes.
            await client.waitFor((e) => e.event === 'heartbeat' && e.t - Math.ceil(e.rtt as number) > done.t, STARTUP_MS);

            const faultAt = Date.now();
            await lab.faults.blackhole(port);
            // More than the kernel's send buffer takes without ACKs, so part of it never leaves the process.
            client.send({ cmd: 'write', bytes: chunk, times: 40, every: 50 });
            const failure = await client.waitFor(isFailure, bound + SLACK_MS + STARTUP_MS);
            const ms = failure.t - faultAt;
            record('black hole, unacked data (D 4000, UTO 3000)', failure, ms, bound);
            expect(failure).toMatchObject({ kind: 'keepalive-timeout', code: 'ETIMEDOUT', phase: 'open', cause: 'path-dead' });
            expect(ms).toBeLessThanOrEqual(bound + SLACK_MS);

            const writes = failure.writes;
            expect(writes).not.toBeNull();
            const account = writes as WriteAccount;
            console.log(`write account: ${JSON.stringify(account)}, accepted ${failure.accepted}`);
            expect(account.confirmedBytes + account.unconfirmedBytes + account.requeuedBytes).toBe(failure.accepted);
            expect(account.confirmedBytes).toBe(confirmed);
            expect(account.requeuedBytes).toBeGreaterThan(0);
            // Requeued bytes wait in the offline queue, and nothing else does.
            expect(failure.queuedBytes).toBe(account.requeuedBytes);

            // Back on a new connection, the requeued bytes arrive, exactly once.
            const again = await expectReconnect(lab, client);
            const delivered = await server.waitFor(
              (e) => e.event === 'data' && e.remotePort === again.localPort && (e.payload as number) >= account.requeuedBytes,
              STARTUP_MS,
            );
            expect(delivered.payload).toBe(account.requeuedBytes);
            await server.expectNone((e) => e.event === 'data' && e.remotePort === again.localPort, 300);
          },
          { signal },
        );
      },
    );

    test.skipIf(!sockopt.ok)(
      'idle black hole, detectWithin with derived keepalive and no heartbeat → keepalive-timeout, path-dead',
      async ({ signal }) => {
        const options: ClientOptions = { detectWithin: 3_000, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
        const { bounds } = boundsFor(options);
        // Only keepalive can see it: no heartbeat unless one is asked for.
        expect(bounds.hungPeer).toBe(Infinity);
        const bound = bounds.idleBlackHole;
        await withFaultLab(
          async (lab) => {
            const { client, port, connected } = await resockLab.connectedPair(lab, options);
            expectKeepAliveApplied(connected);
            const faultAt = Date.now();
            await lab.faults.blackhole(port);
            const failure = await client.waitFor(isFailure, bound + SLACK_MS + STARTUP_MS);
            const ms = failure.t - faultAt;
            record('idle black hole (D 3000, no heartbeat)', failure, ms, bound);
            expect(failure).toMatchObject({ kind: 'keepalive-timeout', code: 'ETIMEDOUT', phase: 'open', cause: 'path-dead' });
            expect(ms).toBeLessThanOrEqual(bound + SLACK_MS);
            // Nothing was ever read: the whole life of the connection, the fault included, was inbound silence.
            expect(failure.idleFor).toBeGreaterThanOrEqual(ms - 100);
            await expectReconnect(lab, client);
          },
          { signal },
        );
      },
    );

    test('hung peer (SIGSTOP) with a heartbeat → heartbeat-timeout, peer-unresponsive; reconnects after SIGCONT', async ({
      signal,
    }) => {
      const options: ClientOptions = {
        detectWithin: 3_000,
        heartbeat: { ping: PING },
        connectTimeout: CONNECT_TIMEOUT,
        reconnect: FAST_RECONNECT,
      };
      const bound = boundsFor(options).bounds.hungPeer;
      await withFaultLab(
        async (lab) => {
          const { server, client } = await resockLab.connectedPair(lab, options);
          // The ping/pong works before the fault, so silence after it is the fault's doing.
          await client.waitFor('heartbeat', STARTUP_MS);
          const faultAt = Date.now();
          await server.signal('SIGSTOP');
          const failure = await client.waitFor(isFailure, bound + SLACK_MS + STARTUP_MS);
          const ms = failure.t - faultAt;
          record('hung peer, SIGSTOP (D 3000, heartbeat)', failure, ms, bound);
          expect(failure).toMatchObject({
            kind: 'heartbeat-timeout',
            code: 'ERR_RESOCK_HEARTBEAT_TIMEOUT',
            phase: 'open',
            cause: 'peer-unresponsive',
          });
          expect(ms).toBeLessThanOrEqual(bound + SLACK_MS);
          await server.signal('SIGCONT');
          // The stopped server's kernel may have completed a handshake already; a reply proves the peer is back.
          const again = await client.waitFor(isReconnect, STARTUP_MS);
          await client.waitFor((e) => e.event === 'heartbeat' && e.t >= again.t, STARTUP_MS);
        },
        { signal },
      );
    });

    test('SYN black hole with connectTimeout 1000 → connect-timeout per attempt, retries keep going with backoff', async ({
      signal,
    }) => {
      const attempts = 3;
      const reconnect = { minDelay: 200, maxDelay: 800, factor: 2, jitter: 'none' } as const;
      const options: ClientOptions = { connectTimeout: CONNECT_TIMEOUT, reconnect };
      await withFaultLab(
        async (lab) => {
          const server = resockLab.spawnServer(lab);
          const port = await resockLab.listeningPort(server);
          await lab.faults.dropSyn(port);
          const client = resockLab.spawnClient(lab, port, options);
          let connecting = await client.waitFor((e) => e.event === 'connecting' && e.attempt === 1, STARTUP_MS);
          for (let attempt = 1; attempt <= attempts; attempt++) {
            const failure = await client.waitFor(isFailure, CONNECT_TIMEOUT + SLACK_MS + STARTUP_MS);
            const ms = failure.t - connecting.t;
            record(`SYN black hole, attempt ${attempt}`, failure, ms, CONNECT_TIMEOUT);
            expect(failure).toMatchObject({
              kind: 'connect-timeout',
              code: 'ERR_RESOCK_CONNECT_TIMEOUT',
              phase: 'connect',
              attempt,
              cause: 'peer-down',
            });
            expect(ms).toBeGreaterThanOrEqual(CONNECT_TIMEOUT - 50);
            expect(ms).toBeLessThanOrEqual(CONNECT_TIMEOUT + SLACK_MS);
            // No jitter: the delays double from minDelay, and the next dial waits them out.
            const delay = reconnect.minDelay * reconnect.factor ** (attempt - 1);
            const retry = await client.waitFor('reconnecting', STARTUP_MS);
            expect(retry).toMatchObject({ attempt: attempt + 1, delay, kind: 'connect-timeout' });
            if (attempt === attempts) {
              expect(server.events.some((e) => e.event === 'connection')).toBe(false);
              // Gone before the next dial: it must go through.
              await lab.faults.clear();
            }
            connecting = await client.waitFor((e) => e.event === 'connecting' && e.attempt === attempt + 1, delay + STARTUP_MS);
            expect(connecting.t - failure.t).toBeGreaterThanOrEqual(delay - 50);
          }
          const connected = await client.waitFor(isConnect, CONNECT_TIMEOUT + SLACK_MS + STARTUP_MS);
          expect(connected).toMatchObject({ attempt: attempts + 1, reconnected: false });
        },
        { signal },
      );
    });

    test.skipIf(!sockopt.ok)(
      'ICMP host-unreachable on an open link, TCP_USER_TIMEOUT → unreachable (EHOSTUNREACH), path-dead',
      async ({ signal }) => {
        const options: ClientOptions = { detectWithin: 3_000, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
        // Unacked data meets the ICMP errors: the user timeout ends it, reporting the last soft error.
        const bound = boundsFor(options).bounds.unackedBlackHole;
        await withFaultLab(
          async (lab) => {
            const { client, port, connected } = await resockLab.connectedPair(lab, options);
            expectKeepAliveApplied(connected);
            const faultAt = Date.now();
            await lab.faults.icmpUnreachable(port);
            client.send({ cmd: 'write', bytes: 100 });
            const failure = await client.waitFor(isFailure, bound + SLACK_MS + STARTUP_MS);
            const ms = failure.t - faultAt;
            record('ICMP host-unreachable, open (D 3000, UTO 2000)', failure, ms, bound);
            expect(failure).toMatchObject({ kind: 'unreachable', code: 'EHOSTUNREACH', phase: 'open', cause: 'path-dead' });
            expect(ms).toBeLessThanOrEqual(bound + SLACK_MS);
            await expectReconnect(lab, client);
          },
          { signal },
        );
      },
    );

    test('middlebox RST after a quiet spell → reset on the next write, blamed on an intermediary', async ({ signal }) => {
      const idleThreshold = 500;
      const options: ClientOptions = { diagnose: { idleThreshold }, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      await withFaultLab(
        async (lab) => {
          const { server, client, port } = await resockLab.connectedPair(lab, options);
          await new Promise((resolve) => setTimeout(resolve, idleThreshold + 200));
          await lab.faults.rstOnPort(port);
          client.send({ cmd: 'write', bytes: 10 });
          const wrote = await client.waitFor('wrote', STARTUP_MS);
          const failure = await client.waitFor(isFailure, SLACK_MS + STARTUP_MS);
          const ms = failure.t - wrote.t;
          record('middlebox RST, next write', failure, ms, 'immediate + 1500');
          expect(failure).toMatchObject({
            kind: 'reset',
            code: 'ECONNRESET',
            phase: 'open',
            cause: 'intermediary-idle-timeout',
          });
          expect(ms).toBeLessThanOrEqual(SLACK_MS);
          // The router forged the reset: the server's socket never heard of it.
          expect(server.events.some((e) => e.event === 'error' || e.event === 'close')).toBe(false);
          await expectReconnect(lab, client);
        },
        { signal },
      );
    });

    test('ss -K in the client namespace → reset (ECONNABORTED), then reconnects', async ({ signal }) => {
      const options: ClientOptions = { connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      await withFaultLab(
        async (lab) => {
          const { client, port } = await resockLab.connectedPair(lab, options);
          const faultAt = Date.now();
          expect(await lab.faults.ssKill(port)).toBe(1);
          const failure = await client.waitFor(isFailure, SLACK_MS + STARTUP_MS);
          const ms = failure.t - faultAt;
          record('ss -K', failure, ms, 'immediate + 1500');
          // Linux reports ECONNABORTED only for an abort on this host: the diagnosis must not blame the peer.
          expect(failure).toMatchObject({ kind: 'reset', code: 'ECONNABORTED', phase: 'open', cause: 'local-abort' });
          expect(ms).toBeLessThanOrEqual(SLACK_MS);
          await expectReconnect(lab, client);
        },
        { signal },
      );
    });

    test('listener down (server killed) → peer-closed, then refused while it is down; reconnects when it is back', async ({
      signal,
    }) => {
      const options: ClientOptions = { connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      await withFaultLab(
        async (lab) => {
          const { server, client, port } = await resockLab.connectedPair(lab, options);
          const faultAt = Date.now();
          await server.kill();
          // The dying process's kernel closes its sockets with a FIN.
          const closed = await client.waitFor(isFailure, SLACK_MS + STARTUP_MS);
          expect(closed).toMatchObject({ kind: 'peer-closed', phase: 'open', cause: 'peer-closed-gracefully' });
          const refused = await client.waitFor(isFailure, FAST_RECONNECT.maxDelay + SLACK_MS + STARTUP_MS);
          const ms = refused.t - faultAt;
          record('listener down, reconnect attempt', refused, ms, `backoff ≤ ${FAST_RECONNECT.maxDelay} + 1500`);
          // It was up before: a refusal now means a restart in progress, not a wrong address.
          expect(refused).toMatchObject({ kind: 'refused', code: 'ECONNREFUSED', phase: 'connect', cause: 'peer-restarting' });
          expect(ms).toBeLessThanOrEqual(FAST_RECONNECT.maxDelay + SLACK_MS);

          // A client that never got through: nothing listens there at all.
          const newcomer = resockLab.spawnClient(lab, port, { ...options, reconnect: false });
          await expect(newcomer.waitFor(isFailure, SLACK_MS + STARTUP_MS)).resolves.toMatchObject({
            kind: 'refused',
            phase: 'connect',
            cause: 'peer-down',
          });

          await resockLab.listeningPort(resockLab.spawnServer(lab, port));
          await client.waitFor(isReconnect, FAST_RECONNECT.maxDelay + SLACK_MS + STARTUP_MS);
        },
        { signal },
      );
    });
  });
});
