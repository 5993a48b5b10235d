// The evidence the diagnosis reads, on real loopback sockets: TCP_INFO in stats() and in failures (Linux with koffi),
// and the peer's idle limit learned across reconnects with its one warning. The faults that need a router or a real
// server are in test/kernel/diagnosis-faults.test.ts.
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type ResilientSocket } from '../src/index.js';
import { __setSockoptForTests, sockoptSupport } from '../src/keepalive.js';
import { listen, sleep, waitFor, type TestServer } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(onSocket?: (s: net.Socket) => void): Promise<TestServer> {
  const s = await listen(onSocket);
  cleanups.push(() => s.close());
  return s;
}

function client(opts: Parameters<typeof connect>[0]): ResilientSocket {
  const sock = connect({ host: '127.0.0.1', keepAlive: false, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

const fast = { minDelay: 20, maxDelay: 100, stableAfter: 0 } as const;
const tcpInfo = process.platform === 'linux' && sockoptSupport().available;

describe.skipIf(!tcpInfo)('TCP_INFO evidence (Linux, koffi)', () => {
  it('stats().tcp reads the open connection now; failure.tcp holds the reading taken before the descriptor closed', async () => {
    let peer: net.Socket | undefined;
    const srv = await server((s) => {
      peer = s;
      s.on('data', () => {});
    });
    const sock = client({ port: srv.port, reconnect: fast });
    await waitFor(sock, 'connect', 2000);
    await sock.send('hello');
    await sleep(20);
    const open = sock.stats().tcp;
    expect(open).toMatchObject({ state: 'established', unacked: 0 });
    expect(open!.rtt).toBeGreaterThan(0);
    expect(open!.lastAckRecv).toBeLessThanOrEqual(open!.lastDataSent + 4); // jiffies: a few ms of rounding

    peer!.resetAndDestroy();
    const f = await waitFor(sock, 'failure', 2000);
    expect(f.kind).toBe('reset');
    // Read in the destroy hook: the kernel already marked the connection closed, the descriptor still existed.
    expect(f.tcp).toMatchObject({ state: 'close' });
    expect(f.diagnosis.summary).toContain('kernel: last ACK');
    // Between connections there is nothing to read.
    expect(sock.stats().tcp).toBeUndefined();
  });

  it('no failure.tcp where TCP_INFO cannot be read (here: the FFI disabled), and the summary does without', async () => {
    __setSockoptForTests(null);
    cleanups.push(() => __setSockoptForTests(undefined));
    let peer: net.Socket | undefined;
    const srv = await server((s) => (peer = s));
    const sock = client({ port: srv.port, reconnect: fast });
    await waitFor(sock, 'connect', 2000);
    expect(sock.stats().tcp).toBeUndefined();
    peer!.resetAndDestroy();
    const f = await waitFor(sock, 'failure', 2000);
    expect(f.tcp).toBeUndefined();
    expect(f.diagnosis.summary).not.toContain('kernel:');
  });
});

describe('peer idle limit across reconnects', () => {
  it('learns the limit from repeated FINs after the same idle time, says so, and warns once', async () => {
    // The server closes each connection after this much silence, like redis --timeout or haproxy timeout client.
    // Above ACCEPT_WINDOW (1 s): shorter closes are drops right after accepting, which is peer-rejected.
    const idleLimit = 1_200;
    const srv = await server((s) => {
      let timer = setTimeout(() => s.end(), idleLimit);
      s.on('data', () => {
        clearTimeout(timer);
        timer = setTimeout(() => s.end(), idleLimit);
      });
      s.on('close', () => clearTimeout(timer));
    });
    // The default stableAfter (5 s): every close comes before the connection is stable, which once read as
    // "peer-rejected"; the history must hold across those reconnects.
    const sock = client({ port: srv.port, reconnect: { minDelay: 20, maxDelay: 100 } });
    const warnings: Array<{ code: string; message: string }> = [];
    sock.on('warning', (w) => warnings.push(w));
    const causes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const f = await waitFor(sock, 'disconnect', idleLimit + 2000);
      expect(f.kind).toBe('peer-closed');
      causes.push(f.diagnosis.cause);
      if (i === 2) expect(f.diagnosis.summary).toMatch(/3 times after 1\.\d s idle/);
    }
    expect(causes).toEqual(['peer-closed-gracefully', 'peer-idle-timeout', 'peer-idle-timeout']);
    const limit = sock.stats().peerIdleLimit;
    expect(limit).toBeGreaterThanOrEqual(idleLimit - 50);
    expect(limit).toBeLessThan(idleLimit + 500);
    // No heartbeat: warned once, not on every close.
    expect(warnings.filter((w) => w.code === 'PEER_IDLE_LIMIT')).toHaveLength(1);
    expect(warnings[0]!.message).toContain('without a heartbeat');
  });

  it('closes right after accepting are a rejection, not an idle limit', async () => {
    const srv = await server((s) => setTimeout(() => s.end(), 10));
    const sock = client({ port: srv.port, reconnect: { ...fast, stableAfter: 5_000 } });
    const causes: string[] = [];
    for (let i = 0; i < 3; i++) causes.push((await waitFor(sock, 'disconnect', 2000)).diagnosis.cause);
    expect(causes).toEqual(['peer-closed-gracefully', 'peer-rejected', 'peer-rejected']);
    expect(sock.stats().peerIdleLimit).toBeUndefined();
  });
});
