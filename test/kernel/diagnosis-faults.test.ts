// Real faults whose diagnosis needs the kernel's evidence (failure.tcp, TCP_INFO) or the socket's history: a hung
// peer vs a black hole under a heartbeat, a peer that closes idle connections (a real redis-server --timeout 2), a
// server host that loses its TCP state and comes back, a NAT router whose conntrack forgets an idle flow (dropping or
// resetting its next segment). Each asserts the cause, the evidence in the summary, a detection time within a bound
// derived from the configuration, and recovery. Recipes and measured kernel numbers: test/kernel/README.md.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ResilientSocketOptions, TcpInfo } from '../../src/index.js';
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
// TCP_INFO comes through koffi: without it these diagnoses cannot rest on kernel evidence, which is what is tested.
const ready = support.ok && sockopt.ok;
if (!support.ok) console.log(`diagnosis fault tests skipped: ${support.reason}`);
else if (!sockopt.ok) console.log(`diagnosis fault tests skipped (no TCP_INFO): ${sockopt.reason}`);

function hasCommand(command: string, args: string[]): { ok: true } | { ok: false; reason: string } {
  try {
    execFileSync(command, args, { stdio: 'pipe', timeout: 10_000 });
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `\`${command}\` is not usable (apt-get install -y ${command === 'haproxy' ? 'haproxy' : 'redis-server'}): ${(err as Error).message}` };
  }
}
const redis = hasCommand('redis-server', ['--version']);
if (ready && !redis.ok) console.log(`redis idle-timeout scenario skipped: ${redis.reason}`);
const haproxy = hasCommand('haproxy', ['-v']);
if (ready && !haproxy.ok) console.log(`haproxy idle-timeout scenario skipped: ${haproxy.reason}`);

/** Linux's smallest retransmission timeout: the first retransmission of a LAN path comes this long after the send. */
const RTO_MIN = 200;

interface FailureEvent extends ChildEvent {
  readonly event: 'failure';
  readonly kind: string;
  readonly code: string;
  readonly phase: string;
  readonly cause: string;
  readonly summary: string;
  readonly idleFor: number | null;
  readonly connectionAge: number | null;
  readonly tcp: TcpInfo | null;
}


const isFailure = (e: ChildEvent): e is FailureEvent => e.event === 'failure';

const resockLab = new ResockLab();
const spawnedPids = resockLab.pids;
const rows: string[] = [];

function record(scenario: string, failure: FailureEvent, measured: number, bound: number): void {
  const tcp = failure.tcp;
  const kernel =
    tcp === null
      ? 'no tcp'
      : `lastDataSent ${tcp.lastDataSent}, lastAckRecv ${tcp.lastAckRecv}, retransmits ${tcp.retransmits}, unacked ${tcp.unacked}, totalRetrans ${tcp.totalRetrans}, rtt ${tcp.rtt}, rto ${tcp.rto}, state ${tcp.state}`;
  const row = `| ${scenario} | ${failure.kind} (${failure.code}) | ${failure.cause} | ${measured} | ${bound} + ${SLACK_MS} | ${kernel} |`;
  rows.push(row);
  console.log(`${scenario}: ${failure.cause}, ${measured} ms (bound ${bound} + ${SLACK_MS}); ${failure.summary}; ${kernel}`);
}








const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!ready)('diagnosis from kernel evidence, client ⇄ router ⇄ server namespaces', () => {
  beforeAll(() => {
    sweepStaleNamespaces();
  });

  afterAll(async () => {
    await destroyAllLabs();
    if (rows.length > 0) {
      console.log(['| scenario | failure | diagnosis | measured ms | bound ms | kernel |', '|---|---|---|---:|---:|---|', ...rows].join('\n'));
    }
    expect(await ownNamespaces()).toEqual([]);
    expect(spawnedPids.filter(pidAlive)).toEqual([]);
  });

  describe.concurrent('faults', () => {
    test('hung peer (SIGSTOP), detectWithin 2000 with a heartbeat: found within 0.8·D, ping ACKed → peer-unresponsive', async ({
      signal,
    }) => {
      const options: ClientOptions = { detectWithin: 2_000, heartbeat: { ping: PING }, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      const { bounds } = boundsFor(options);
      // detectWithin's promise: H + T = 0.8·D, within D.
      expect(bounds.hungPeer).toBeLessThanOrEqual(2_000);
      await withFaultLab(
        async (lab) => {
          const { server, client } = await resockLab.connectedPair(lab, options);
          await client.waitFor('heartbeat', STARTUP_MS);
          const faultAt = Date.now();
          await server.signal('SIGSTOP');
          const failure = await client.waitFor(isFailure, bounds.hungPeer + SLACK_MS + STARTUP_MS);
          const ms = failure.t - faultAt;
          record('hung peer, SIGSTOP (D 2000, heartbeat)', failure, ms, bounds.hungPeer);
          expect(failure).toMatchObject({ kind: 'heartbeat-timeout', phase: 'open', cause: 'peer-unresponsive' });
          expect(failure.summary).toContain("the peer's kernel acknowledged the ping");
          // The evidence itself: an ACK came after the ping left.
          expect(failure.tcp).not.toBeNull();
          expect(failure.tcp!.lastAckRecv).toBeLessThanOrEqual(failure.tcp!.lastDataSent);
          expect(ms).toBeLessThanOrEqual(bounds.hungPeer + SLACK_MS);
          await server.signal('SIGCONT');
          const again = await client.waitFor(isReconnect, STARTUP_MS);
          await client.waitFor((e) => e.event === 'heartbeat' && e.t >= again.t, STARTUP_MS);
        },
        { signal },
      );
    });

    test('black hole under a heartbeat (keepalive off): ping never ACKed → heartbeat-timeout, path-dead', async ({ signal }) => {
      // Keepalive off so the heartbeat, not TCP_USER_TIMEOUT, is what notices: the same failure kind as a hung peer,
      // told apart only by the kernel's evidence.
      const options: ClientOptions = {
        detectWithin: 2_000,
        heartbeat: { ping: PING },
        keepAlive: false,
        connectTimeout: CONNECT_TIMEOUT,
        reconnect: FAST_RECONNECT,
      };
      const { bounds } = boundsFor(options);
      await withFaultLab(
        async (lab) => {
          const { client, port } = await resockLab.connectedPair(lab, options);
          await client.waitFor('heartbeat', STARTUP_MS);
          const faultAt = Date.now();
          await lab.faults.blackhole(port);
          const failure = await client.waitFor(isFailure, bounds.idleBlackHole + SLACK_MS + STARTUP_MS);
          const ms = failure.t - faultAt;
          record('black hole, heartbeat (D 2000, keepalive off)', failure, ms, bounds.idleBlackHole);
          expect(failure).toMatchObject({ kind: 'heartbeat-timeout', phase: 'open', cause: 'path-dead' });
          expect(failure.summary).toContain('never acknowledged the ping');
          expect(failure.tcp).not.toBeNull();
          expect(failure.tcp!.unacked > 0 || failure.tcp!.lastAckRecv > failure.tcp!.lastDataSent).toBe(true);
          expect(ms).toBeLessThanOrEqual(bounds.idleBlackHole + SLACK_MS);
          await lab.faults.clear();
          await client.waitFor(isReconnect, CONNECT_TIMEOUT + FAST_RECONNECT.maxDelay + STARTUP_MS);
        },
        { signal },
      );
    });

    test('server host loses its TCP state (sockets killed behind a black hole) and returns → peer-host-restarted', async ({
      signal,
    }) => {
      // No heartbeat, and a user timeout far beyond the outage: the reset from the returned host must be what ends it.
      const options: ClientOptions = { detectWithin: 10_000, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      const { resolved } = boundsFor(options);
      const outage = 1_500;
      expect(resolved.keepAlive && resolved.keepAlive.userTimeout).toBeGreaterThan(outage * 2 + RTO_MIN + SLACK_MS);
      await withFaultLab(
        async (lab) => {
          const { client, port } = await resockLab.connectedPair(lab, options);
          // The host goes away: nothing passes, and its kernel forgets the connection (ss -K's RST dies in the router).
          await lab.faults.blackhole(port);
          expect(await lab.faults.ssKill(port, 'server')).toBe(1);
          client.send({ cmd: 'write', bytes: 10 });
          await client.waitFor('wrote', STARTUP_MS);
          await sleep(outage);
          // The host is back, without the connection: its listener's kernel answers the next retransmission with RST.
          const backAt = Date.now();
          await lab.faults.clear();
          // Retransmissions back off exponentially from RTO_MIN, so the next one comes within outage + RTO_MIN.
          const bound = outage + RTO_MIN;
          const failure = await client.waitFor(isFailure, bound + SLACK_MS + STARTUP_MS);
          const ms = failure.t - backAt;
          record('host lost TCP state, back after 1.5 s', failure, ms, bound);
          expect(failure).toMatchObject({ kind: 'reset', code: 'ECONNRESET', phase: 'open', cause: 'peer-host-restarted' });
          expect(failure.summary).toMatch(/data went unanswered: no ACK for [\d.]+ s through \d+ retransmissions?/);
          expect(failure.tcp).not.toBeNull();
          // No ACK since before the outage; the retransmission timer fired (and Linux keeps the count past the reset).
          expect(failure.tcp!.lastAckRecv).toBeGreaterThanOrEqual(outage - 100);
          expect(failure.tcp!.retransmits).toBeGreaterThan(0);
          expect(ms).toBeLessThanOrEqual(bound + SLACK_MS);
          await client.waitFor(isReconnect, FAST_RECONNECT.maxDelay + SLACK_MS + STARTUP_MS);
        },
        { signal },
      );
    });

    test('peer crash under traffic (server process killed with unread data) stays peer-crashed', async ({ signal }) => {
      const options: ClientOptions = { detectWithin: 10_000, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      await withFaultLab(
        async (lab) => {
          const { server, client } = await resockLab.connectedPair(lab, options);
          // Stopped first, so what the client writes stays unread in its kernel; killing it then closes with RST.
          client.send({ cmd: 'write', bytes: 100 });
          await server.waitFor('data', STARTUP_MS);
          await server.signal('SIGSTOP');
          client.send({ cmd: 'write', bytes: 100 });
          await client.waitFor((e) => e.event === 'write-done', STARTUP_MS);
          await sleep(100);
          const faultAt = Date.now();
          await server.kill();
          const failure = await client.waitFor(isFailure, SLACK_MS + STARTUP_MS);
          const ms = failure.t - faultAt;
          record('peer killed with unread data', failure, ms, 0);
          expect(failure).toMatchObject({ kind: 'reset', phase: 'open', cause: 'peer-crashed' });
          expect(failure.tcp).not.toBeNull();
          // Its kernel had acknowledged everything: a crash, not a host that went silent.
          expect(failure.tcp!.lastAckRecv).toBeLessThanOrEqual(failure.tcp!.lastDataSent);
          expect(ms).toBeLessThanOrEqual(SLACK_MS);
        },
        { signal },
      );
    });

    for (const variant of ['drop', 'reset'] as const) {
      test(`NAT router whose conntrack forgets an idle flow (${variant}s the next segment) → intermediary-idle-timeout`, async ({
        signal,
      }) => {
        const conntrackTimeout = 2; // s, nf_conntrack_tcp_timeout_established in the router namespace
        const quiet = (conntrackTimeout + 1.5) * 1000;
        const idleThreshold = 1_000;
        // No probe during the quiet (idle 30 s): one would refresh the NAT entry. The user timeout ends a dropped write.
        const keepAlive = { idle: 30_000, interval: 1_000, count: 1, userTimeout: 2_000 };
        const options: ClientOptions = { keepAlive, diagnose: { idleThreshold }, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
        const { bounds } = boundsFor(options);
        await withFaultLab(
          async (lab) => {
            await natRouter(lab, conntrackTimeout, variant);
            const { client, server } = await resockLab.connectedPair(lab, options);
            // The server sees the router's address, not the client's: the flow really is translated.
            const seen = await lab.server.exec('ss', ['-t', '-n', '-H', 'state', 'established']);
            expect(seen.stdout).toContain('10.201.2.1:');
            expect(seen.stdout).not.toContain(`${lab.clientHost}:`);
            await sleep(quiet);
            const conntrack = await lab.router.exec('sh', ['-c', 'cat /proc/sys/net/netfilter/nf_conntrack_count']);
            client.send({ cmd: 'write', bytes: 10 });
            const wrote = await client.waitFor('wrote', STARTUP_MS);
            const bound = variant === 'drop' ? bounds.unackedBlackHole : 0;
            const failure = await client.waitFor(isFailure, bound + SLACK_MS + STARTUP_MS);
            const ms = failure.t - wrote.t;
            record(`NAT forgot idle flow (${variant}), conntrack ${conntrackTimeout} s, entries ${conntrack.stdout.trim()}`, failure, ms, bound);
            expect(failure).toMatchObject(
              variant === 'drop'
                ? { kind: 'keepalive-timeout', code: 'ETIMEDOUT', cause: 'intermediary-idle-timeout' }
                : { kind: 'reset', code: 'ECONNRESET', cause: 'intermediary-idle-timeout' },
            );
            // The quiet time measured before the write, in the summary.
            const said = /after ([\d.]+) s of silence/.exec(failure.summary);
            expect(said).not.toBeNull();
            expect(Number(said![1]) * 1000).toBeGreaterThanOrEqual(quiet - 100);
            expect(ms).toBeLessThanOrEqual(bound + SLACK_MS);
            // A new SYN makes a new NAT entry: the socket recovers by itself.
            await client.waitFor(isReconnect, CONNECT_TIMEOUT + FAST_RECONNECT.maxDelay + STARTUP_MS);
          },
          { signal },
        );
      });
    }

    test('NAT router forgets the idle flow under a slow heartbeat: the ping is dropped → heartbeat-timeout, intermediary-idle-timeout', async ({
      signal,
    }) => {
      const conntrackTimeout = 2; // s
      const idleThreshold = 1_000;
      // A heartbeat slower than the NAT's idle timer: its ping is the first segment after the entry expired.
      const heartbeat = { ping: PING, interval: (conntrackTimeout + 1.5) * 1000, timeout: 1_000 };
      const options: ClientOptions = { heartbeat, keepAlive: false, diagnose: { idleThreshold }, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      const { bounds } = boundsFor(options);
      await withFaultLab(
        async (lab) => {
          await natRouter(lab, conntrackTimeout, 'drop');
          const { client, connected } = await resockLab.connectedPair(lab, options);
          const openedAt = connected.t;
          const failure = await client.waitFor(isFailure, bounds.idleBlackHole + SLACK_MS + STARTUP_MS);
          const ms = failure.t - openedAt;
          record('NAT forgot idle flow (drop), heartbeat 3.5 s', failure, ms, bounds.idleBlackHole);
          expect(failure).toMatchObject({ kind: 'heartbeat-timeout', cause: 'intermediary-idle-timeout' });
          const said = /after ([\d.]+) s of silence/.exec(failure.summary);
          expect(said).not.toBeNull();
          expect(Number(said![1]) * 1000).toBeGreaterThanOrEqual(heartbeat.interval - 100);
          expect(ms).toBeLessThanOrEqual(bounds.idleBlackHole + SLACK_MS);
          await client.waitFor(isReconnect, CONNECT_TIMEOUT + FAST_RECONNECT.maxDelay + STARTUP_MS);
        },
        { signal },
      );
    });

    test.skipIf(!redis.ok)(
      'redis-server --timeout 2 closes idle connections → peer-idle-timeout, learned limit, PEER_IDLE_LIMIT warning',
      async ({ signal }) => {
        const redisTimeout = 2; // s
        // redis checks idleness in whole seconds on its 100 ms cron: a close comes 2–3.2 s after the last command.
        const closeBound = (redisTimeout + 1) * 1000 + 200;
        const port = 6390;
        const closes = 3;
        // A heartbeat slower than the limit: it never gets to ping, and must be warned about.
        const options: ClientOptions = {
          heartbeat: { ping: PING, interval: 5_000, timeout: 2_000 },
          connectTimeout: CONNECT_TIMEOUT,
          reconnect: FAST_RECONNECT,
        };
        await withFaultLab(
          async (lab) => {
            // Daemonized; the lab's teardown kills every process left in the namespace.
            await lab.server.exec('redis-server', [
              '--bind', '0.0.0.0', '--port', String(port), '--timeout', String(redisTimeout), '--save', '', '--appendonly', 'no',
              '--protected-mode', 'no', '--daemonize', 'yes', '--dir', '/tmp', '--pidfile', `/tmp/resock-redis-${process.pid}-${port}.pid`,
              '--logfile', '',
            ]);
            const client = resockLab.spawnClient(lab, port, options);
            const failures: FailureEvent[] = [];
            let connectedAt = (await client.waitFor(isConnect, STARTUP_MS)).t;
            for (let i = 0; i < closes; i++) {
              const failure = await client.waitFor(isFailure, closeBound + SLACK_MS + STARTUP_MS);
              failures.push(failure);
              const ms = failure.t - connectedAt;
              record(`redis --timeout ${redisTimeout}, close ${i + 1}`, failure, ms, closeBound);
              expect(failure).toMatchObject({ kind: 'peer-closed', phase: 'open' });
              expect(ms).toBeGreaterThanOrEqual(redisTimeout * 1000 - 100);
              expect(ms).toBeLessThanOrEqual(closeBound + SLACK_MS);
              connectedAt = (await client.waitFor(isReconnect, FAST_RECONNECT.maxDelay + SLACK_MS + STARTUP_MS)).t;
            }
            // One close proves nothing; from the second on the limit is learned, and it survives reconnects.
            expect(failures[0]!.cause).toBe('peer-closed-gracefully');
            expect(failures.slice(1).map((f) => f.cause)).toEqual(['peer-idle-timeout', 'peer-idle-timeout']);
            expect(failures.at(-1)!.summary).toMatch(/closed idle connections \(FIN\) 3 times after [23]\.\d s idle/);
            const warning = client.events.filter((e) => e.event === 'warning' && e.code === 'PEER_IDLE_LIMIT');
            expect(warning).toHaveLength(1);
            expect(String(warning[0]!.message)).toContain('heartbeat.interval is 5.0 s');
            client.send({ cmd: 'stats' });
            const stats = await client.waitFor('stats', STARTUP_MS);
            expect(stats.peerIdleLimit).toBeGreaterThanOrEqual(redisTimeout * 1000 - 100);
            expect(stats.peerIdleLimit).toBeLessThanOrEqual(closeBound);
            // While open, stats() reads TCP_INFO on demand.
            expect((stats.tcp as TcpInfo | null)?.state).toBe('established');
          },
          { signal },
        );
      },
    );

    test.skipIf(!haproxy.ok)(
      'haproxy (TCP mode, timeout client 2s) in front of the server → peer-idle-timeout; a heartbeat below the limit keeps it open',
      async ({ signal }) => {
        const limit = 2_000; // haproxy's `timeout client`, ms: it closes the idle client side with a FIN
        // haproxy's timers are ms-exact; its task scheduling and our stdout pipe add a little.
        const closeBound = limit + 500;
        const frontPort = 7000;
        const idle: ClientOptions = { connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
        const beating: ClientOptions = { heartbeat: { ping: PING, interval: limit / 2, timeout: limit }, ...idle };
        const config = `/tmp/resock-haproxy-${process.pid}-${frontPort}-${Date.now()}.cfg`;
        await withFaultLab(
          async (lab) => {
            const server = resockLab.spawnServer(lab);
            const backendPort = await resockLab.listeningPort(server);
            writeFileSync(
              config,
              [
                'global',
                '  maxconn 64',
                'defaults',
                '  mode tcp',
                '  timeout connect 1s',
                `  timeout client ${limit}ms`,
                '  timeout server 60s',
                'frontend fe',
                `  bind 0.0.0.0:${frontPort}`,
                '  default_backend be',
                'backend be',
                `  server s1 127.0.0.1:${backendPort}`,
                '',
              ].join('\n'),
            );
            // -D daemonizes; the lab's teardown kills every process left in the namespace.
            await lab.server.exec('haproxy', ['-D', '-f', config]);
            const client = resockLab.spawnClient(lab, frontPort, idle);
            const kept = resockLab.spawnClient(lab, frontPort, beating);
            let connectedAt = (await client.waitFor(isConnect, STARTUP_MS)).t;
            await kept.waitFor(isConnect, STARTUP_MS);
            const causes: string[] = [];
            let last: FailureEvent | undefined;
            for (let i = 0; i < 3; i++) {
              last = await client.waitFor(isFailure, closeBound + SLACK_MS + STARTUP_MS);
              const ms = last.t - connectedAt;
              record(`haproxy timeout client ${limit} ms, close ${i + 1}`, last, ms, closeBound);
              expect(last).toMatchObject({ kind: 'peer-closed', phase: 'open' });
              expect(ms).toBeGreaterThanOrEqual(limit - 100);
              expect(ms).toBeLessThanOrEqual(closeBound + SLACK_MS);
              causes.push(last.cause);
              connectedAt = (await client.waitFor(isReconnect, FAST_RECONNECT.maxDelay + SLACK_MS + STARTUP_MS)).t;
            }
            expect(causes).toEqual(['peer-closed-gracefully', 'peer-idle-timeout', 'peer-idle-timeout']);
            expect(last!.summary).toMatch(/3 times after 2\.\d s idle/);
            const warning = client.events.filter((e) => e.event === 'warning' && e.code === 'PEER_IDLE_LIMIT');
            expect(warning).toHaveLength(1);
            expect(String(warning[0]!.message)).toContain('without a heartbeat');
            // The advice works: the client pinging at half the limit was never closed, through three of the limits.
            expect(kept.events.some(isFailure)).toBe(false);
            expect(kept.events.filter((e) => e.event === 'heartbeat').length).toBeGreaterThanOrEqual(3);
          },
          { signal },
        ).finally(() => rmSync(config, { force: true }));
      },
    );

    test('full listen backlog behind a hung server: heartbeat timeouts with the ping ACKed, then a SYN timeout → peer-unresponsive', async ({
      signal,
    }) => {
      const options: ClientOptions = { detectWithin: 2_000, heartbeat: { ping: PING }, connectTimeout: CONNECT_TIMEOUT, reconnect: FAST_RECONNECT };
      const { bounds } = boundsFor(options);
      // Linux queues backlog + 1 connections before it drops SYNs (sk_acceptq_is_full is `>`).
      const backlog = 1;
      const queued = backlog + 1;
      await withFaultLab(
        async (lab) => {
          const server = lab.server.spawnNode('resock-server.ts', [JSON.stringify({ host: '0.0.0.0', port: 0, ping: PING, pong: PONG, backlog })]);
          spawnedPids.push(server.pid);
          const port = await resockLab.listeningPort(server);
          const client = resockLab.spawnClient(lab, port, options);
          await client.waitFor(isConnect, STARTUP_MS);
          await client.waitFor('heartbeat', STARTUP_MS);
          await server.signal('SIGSTOP');
          // The accepted connection, then each one the kernel completes into the queue the stopped process never empties.
          for (let i = 0; i <= queued; i++) {
            const hung = await client.waitFor(isFailure, bounds.hungPeer + SLACK_MS + STARTUP_MS);
            record(`hung server, backlog ${backlog}, connection ${i + 1}`, hung, hung.connectionAge ?? -1, bounds.hungPeer);
            expect(hung).toMatchObject({ kind: 'heartbeat-timeout', cause: 'peer-unresponsive' });
            // A queued connection is hung from its first moment: found within the heartbeat's bound of opening.
            if (i > 0) expect(hung.connectionAge).toBeLessThanOrEqual(bounds.hungPeer + SLACK_MS);
          }
          // The queue is full now: the SYN goes unanswered.
          const syn = await client.waitFor(isFailure, CONNECT_TIMEOUT + FAST_RECONNECT.maxDelay + SLACK_MS + STARTUP_MS);
          record(`hung server, backlog ${backlog}, full`, syn, 0, CONNECT_TIMEOUT);
          expect(syn).toMatchObject({ kind: 'connect-timeout', phase: 'connect', cause: 'peer-unresponsive' });
          expect(syn.summary).toContain("kernel answered while its process did not: its listener is not accepting");
          await server.signal('SIGCONT');
          await client.waitFor((e) => e.event === 'heartbeat' && e.t > syn.t, CONNECT_TIMEOUT + SLACK_MS + STARTUP_MS);
        },
        { signal },
      );
    });
  });
});

/**
 * Makes the lab's router a NAT: masquerade towards the server, a conntrack timeout of `timeout` s for established
 * flows, and no mid-stream pickup (nf_conntrack_tcp_loose 0), so a segment of a flow it forgot is INVALID and is
 * dropped or answered with a reset, as a home router or a cloud NAT gateway does.
 */
async function natRouter(lab: FaultLab, timeout: number, variant: 'drop' | 'reset'): Promise<void> {
  const verdict = variant === 'drop' ? 'drop' : 'reject with tcp reset';
  await lab.router.nft(
    [
      'table ip resock_nat {',
      '  chain post {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      '    oifname "tos" masquerade',
      '  }',
      '}',
      'table inet resock_nat_filter {',
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      `    ct state invalid ${verdict}`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  // The conntrack sysctls exist per namespace once conntrack is in use there (the rules above).
  await lab.router.exec('sh', [
    '-c',
    `echo ${timeout} > /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established && echo 0 > /proc/sys/net/netfilter/nf_conntrack_tcp_loose`,
  ]);
}
