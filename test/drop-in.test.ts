// What a service's net.Socket code reaches for, on a ResilientSocket: a stream that pipes and iterates across
// reconnects, read backpressure, ref/unref, reconnect(), ready() with a deadline, endpoint getters, disposal.
import { spawn } from 'node:child_process';
import { on, once } from 'node:events';
import net from 'node:net';
import { Transform, Writable, pipeline } from 'node:stream';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { connect, lengthPrefixed, type ResilientSocket } from '../src/index.js';
import { PAUSED_READ_BUFFER } from '../src/socket.js';
import { freePort, harness, pattern, sendPattern, sleep, type TestServer, until, waitFor } from './support/net.js';

const { client, server, defer } = harness({ reconnect: { minDelay: 10, maxDelay: 50 } });

describe('stream()', () => {
  it('is one stream.Duplex per socket', () => {
    const sock = client({ port: 1 });
    expect(sock.stream()).toBe(sock.stream());
    expect(sock.stream().readable && sock.stream().writable).toBe(true);
  });

  it('pipeline(stream, transform, stream) echoes 50 MiB through a transform across three resets, nothing lost, doubled or reordered', async () => {
    // The server sends numbered frames and takes back the transformed echo; after each reset it resends from the first
    // frame not yet echoed (go-back-N), the resending protocol any stream over a lossy link needs.
    const frameSize = 64 * 1024;
    const frames = 800; // 50 MiB
    const codec = lengthPrefixed({ bytes: 4, maxLength: frameSize + 4 });
    let expected = 0;
    let resets = 0;
    let bad: string | undefined;
    const frame = (seq: number): Buffer => {
      const f = pattern(seq * frameSize, frameSize + 4);
      f.writeUInt32BE(seq, 0);
      return codec.encode(f);
    };
    const srv = await server((s) => {
      let seq = expected;
      let alive = true;
      s.on('close', () => (alive = false));
      const pump = (): void => {
        while (alive && seq < frames) {
          if (!s.write(frame(seq++))) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
      const dec = codec.decoder();
      s.on('data', (chunk) =>
        dec.push(chunk, (echo) => {
          const n = echo.readUInt32BE(0);
          if (n !== expected) return; // a duplicate, or ahead of a gap the resend will fill
          const want = pattern(n * frameSize, frameSize + 4);
          for (let i = 4; i < echo.length; i++) {
            if (echo[i] !== (want[i]! ^ 0xff)) {
              bad = `frame ${n} byte ${i}`;
              break;
            }
          }
          expected++;
          // Reset at a quarter, half and three quarters.
          if (resets < 3 && expected === Math.floor(((resets + 1) * frames) / 4)) {
            resets++;
            s.resetAndDestroy();
          }
        }),
      );
    });
    const sock = client({ port: srv.port, framing: codec, offlineQueue: { maxBytes: 256 << 20, maxWrites: 1_000_000 } });
    const flip = new Transform({
      objectMode: true,
      transform(chunk: Buffer, _enc, cb) {
        const out = Buffer.from(chunk);
        for (let i = 4; i < out.length; i++) out[i] = out[i]! ^ 0xff;
        cb(null, out);
      },
    });
    let settled: Error | null | undefined;
    pipeline(sock.stream(), flip, sock.stream(), (err) => (settled = err ?? null));
    await until(() => expected === frames || bad !== undefined, 60_000, `${frames} frames echoed (at ${expected})`);
    expect(bad).toBeUndefined();
    expect(resets).toBe(3);
    expect(sock.stats().connects).toBe(4);
    // The pipeline outlived every reset; it settles when the socket closes.
    expect(settled).toBeUndefined();
    await sock.close();
    await until(() => settled !== undefined, 2000, 'pipeline settled');
  }, 90_000);

  it('for await iterates across reconnects and ends when the socket is closed', async () => {
    const srv = await server((s) => s.write(`hello ${srv.sockets.size}`));
    const sock = client({ port: srv.port });
    const seen: string[] = [];
    const loop = (async () => {
      for await (const chunk of sock.stream()) {
        seen.push(String(chunk));
        if (seen.length === 1) for (const s of srv.sockets) s.resetAndDestroy();
        if (seen.length === 2) void sock.close();
      }
    })();
    await loop;
    expect(seen).toEqual(['hello 1', 'hello 1']);
    expect(sock.state).toBe('closed');
  });

  it('when resock gives up, the stream is destroyed with an error carrying the failure, so a pipeline settles', async () => {
    const port = await freePort();
    const sock = client({ port, reconnect: { retries: 1, minDelay: 10 } });
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const err = await new Promise<Error | null | undefined>((resolve) => pipeline(sock.stream(), sink, resolve));
    expect(err).toMatchObject({ code: 'ERR_RESOCK_CLOSED', reason: 'gave-up' });
    expect((err as unknown as { failure: { kind: string } }).failure.kind).toBe('refused');
  });

  it('a slow consumer pushes back through the stream: resock holds a bounded amount and the peer is pushed back', async () => {
    const total = 64 * 1024 * 1024;
    let sender: { sent(): number } | undefined;
    const srv = await server((s) => (sender = sendPattern(s, total, 256 * 1024)));
    const sock = client({ port: srv.port });
    const stream = sock.stream();
    await waitFor(sock, 'connect', 2000);
    // Nobody reads the stream for a while.
    await sleep(500);
    expect(sender!.sent()).toBeLessThan(total);
    let got = 0;
    let mismatch = -1;
    for await (const chunk of stream) {
      const c = chunk as Buffer;
      if (mismatch < 0 && !c.equals(pattern(got, c.length))) mismatch = got;
      got += c.length;
      if (got >= total) break;
    }
    expect(mismatch).toBe(-1);
    expect(got).toBe(total);
  }, 60_000);
});

describe('pause() / resume()', () => {
  it('against a peer sending 100 MiB: nothing delivered while paused, memory bounded, no heartbeat blame; resume delivers all in order', async () => {
    const total = 100 * 1024 * 1024;
    let sender: { sent(): number } | undefined;
    const srv = await server((s) => (sender = sendPattern(s, total, 1024 * 1024)));
    const interval = 50;
    const timeout = 150;
    const sock = client({ port: srv.port, heartbeat: { interval, timeout, ping: 'p' } });
    sock.pause();
    expect(sock.isPaused()).toBe(true);
    let got = 0;
    let mismatch = -1;
    sock.on('data', (c) => {
      if (mismatch < 0 && !c.equals(pattern(got, c.length))) mismatch = got;
      got += c.length;
    });
    await waitFor(sock, 'connect', 2000);
    const rss0 = process.memoryUsage().rss;
    // Many heartbeat timeouts long.
    await sleep(10 * (interval + timeout));
    expect(got).toBe(0);
    expect(sender!.sent()).toBeLessThan(total);
    expect(sock.stats().failures).toEqual({});
    expect(process.memoryUsage().rss - rss0).toBeLessThan(32 * 1024 * 1024);
    sock.resume();
    await until(() => got >= total, 30_000, '100 MiB after resume');
    expect(mismatch).toBe(-1);
    expect(sock.stats().failures).toEqual({});
  }, 60_000);

  it('holds across reconnects: a new connection of a paused socket delivers nothing until resume()', async () => {
    const srv = await server((s) => s.write('x'.repeat(10)));
    const sock = client({ port: srv.port });
    sock.pause();
    let got = '';
    sock.on('data', (c) => (got += String(c)));
    await waitFor(sock, 'connect', 2000);
    await sleep(50);
    const again = waitFor(sock, 'connect', 2000);
    for (const s of srv.sockets) s.resetAndDestroy();
    await again;
    await sleep(50);
    expect(got).toBe('');
    expect(sock.isPaused()).toBe(true);
    sock.resume();
    expect(got).toBe('x'.repeat(20));
  });

  it('stops reading once PAUSED_READ_BUFFER is held, and a listener that pauses again keeps the rest in order', async () => {
    const srv = await server((s) => s.write(pattern(0, 4 * PAUSED_READ_BUFFER)));
    const sock = client({ port: srv.port });
    sock.pause();
    await waitFor(sock, 'connect', 2000);
    await sleep(100);
    expect(sock.socket!.isPaused()).toBe(true);
    const chunks: Buffer[] = [];
    sock.on('data', (c) => {
      chunks.push(c);
      if (chunks.length === 1) sock.pause();
    });
    sock.resume();
    expect(chunks).toHaveLength(1);
    sock.resume();
    await until(() => Buffer.concat(chunks).length >= 4 * PAUSED_READ_BUFFER, 2000);
    expect(Buffer.concat(chunks).equals(pattern(0, 4 * PAUSED_READ_BUFFER))).toBe(true);
  });
});

describe('ref() / unref()', () => {
  async function childExits(body: string): Promise<number | 'still running'> {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', body], {
      cwd: process.cwd(),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    defer(() => child.kill('SIGKILL'));
    return Promise.race([
      new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1))),
      sleep(4000).then(() => 'still running' as const),
    ]);
  }

  it('an unref()ed socket retrying a dead port lets its process exit; a ref()ed one keeps it alive', async () => {
    const port = await freePort();
    const script = (unref: boolean): string => `
      import { connect } from './src/index.ts';
      const sock = connect({ host: '127.0.0.1', port: ${port}, reconnect: { minDelay: 200, maxDelay: 400 } });
      ${unref ? 'sock.unref();' : ''}
      setTimeout(() => {}, 300); // some other work, then nothing
    `;
    const [unrefd, refd] = await Promise.all([childExits(script(true)), childExits(script(false))]);
    expect(unrefd).toBe(0);
    expect(refd).toBe('still running');
  }, 20_000);

  it('an unref()ed open connection with a heartbeat lets its process exit', async () => {
    const srv = await server((s) => s.on('data', () => s.write('pong')));
    const script = `
      import { connect } from './src/index.ts';
      const sock = connect({ host: '127.0.0.1', port: ${srv.port}, heartbeat: { interval: 50, timeout: 500, ping: 'ping' } }).unref();
      sock.once('heartbeat', () => {});
    `;
    expect(await childExits(script)).toBe(0);
  }, 20_000);
});

describe('reconnect()', () => {
  it('drops the connection and dials again at once, a local cause, with queued writes going out on the next one', async () => {
    const received: string[] = [];
    const srv = await server((s) => {
      const i = received.push('') - 1;
      s.on('data', (d) => (received[i] += String(d)));
    });
    const sock = client({ port: srv.port, reconnect: { minDelay: 5000, maxDelay: 5000, jitter: 'none', stableAfter: 0 } });
    await waitFor(sock, 'connect', 2000);
    const lost = waitFor(sock, 'disconnect', 1000);
    const t0 = performance.now();
    sock.reconnect();
    const f = await lost;
    expect(f).toMatchObject({ kind: 'aborted', code: 'ERR_RESOCK_RECONNECT' });
    expect(f.diagnosis.cause).toBe('local-abort');
    sock.write('after');
    const again = await waitFor(sock, 'connect', 2000);
    // Far sooner than the 5 s backoff.
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(again.reconnected).toBe(true);
    await until(() => received[1] === 'after', 1000);
  });

  it('cuts a backoff wait short', async () => {
    const port = await freePort();
    const sock = client({ port, reconnect: { minDelay: 10_000, maxDelay: 10_000, jitter: 'none' } });
    await waitFor(sock, 'reconnecting', 2000);
    await server(undefined, port);
    const t0 = performance.now();
    sock.reconnect();
    await waitFor(sock, 'connect', 2000);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('ready({ signal, timeout })', () => {
  it('rejects with ERR_RESOCK_READY_TIMEOUT after timeout, and the socket keeps trying', async () => {
    const port = await freePort();
    const sock = client({ port });
    const t0 = performance.now();
    await expect(sock.ready({ timeout: 200 })).rejects.toMatchObject({ code: 'ERR_RESOCK_READY_TIMEOUT' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
    expect(performance.now() - t0).toBeLessThan(200 + 500);
    expect(sock.state === 'reconnecting' || sock.state === 'connecting').toBe(true);
    await server(undefined, port);
    await expect(sock.ready({ timeout: 3000 })).resolves.toBeUndefined();
  });

  it('rejects with ERR_RESOCK_ABORTED when its signal aborts, or at once if it already has', async () => {
    const port = await freePort();
    const sock = client({ port });
    const ac = new AbortController();
    const p = sock.ready({ signal: ac.signal });
    ac.abort(new Error('give up waiting'));
    await expect(p).rejects.toMatchObject({ code: 'ERR_RESOCK_ABORTED' });
    await expect(sock.ready({ signal: ac.signal })).rejects.toMatchObject({ code: 'ERR_RESOCK_ABORTED' });
    expect(sock.state).not.toBe('closed');
  });

  it('a timeout that is not a number of ms throws a RangeError', () => {
    const sock = client({ port: 1 });
    expect(() => sock.ready({ timeout: -1 })).toThrow(RangeError);
    expect(() => sock.ready({ timeout: Number.NaN })).toThrow(RangeError);
  });
});

describe('endpoint getters, disposal, inspection', () => {
  it('remote/local address and port while open, undefined between connections', async () => {
    const srv = await server();
    const sock = client({ port: srv.port });
    expect(sock.remoteAddress).toBeUndefined();
    await waitFor(sock, 'connect', 2000);
    expect(sock.remoteAddress).toBe('127.0.0.1');
    expect(sock.remotePort).toBe(srv.port);
    expect(sock.remoteFamily).toBe('IPv4');
    expect(sock.localAddress).toBe('127.0.0.1');
    expect(sock.localPort).toBeGreaterThan(0);
    await sock.close();
    expect(sock.remotePort).toBeUndefined();
  });

  it('await using closes gracefully', async () => {
    const srv = await server();
    const sock = client({ port: srv.port });
    await waitFor(sock, 'connect', 2000);
    await sock[Symbol.asyncDispose]();
    expect(sock.state).toBe('closed');
  });

  it('util.inspect shows state, endpoint and counters, not emitter internals', async () => {
    const srv = await server();
    const sock = client({ port: srv.port });
    await waitFor(sock, 'connect', 2000);
    const text = inspect(sock);
    expect(text).toContain("state: 'open'");
    expect(text).toContain(`127.0.0.1:${srv.port}`);
    expect(text).not.toMatch(/_events|_eventsCount/);
  });
});

describe("Node's event helpers", () => {
  it('events.once and events.on work on a ResilientSocket; prependListener and prependOnceListener run first', async () => {
    const srv = await server((s) => s.write('hi'));
    const sock = client({ port: srv.port });
    const order: string[] = [];
    sock.on('data', () => order.push('on'));
    sock.prependListener('data', () => order.push('prepended'));
    sock.prependOnceListener('data', () => order.push('prepended once'));
    const [info] = (await once(sock, 'connect')) as [{ attempt: number }];
    expect(info.attempt).toBe(1);
    const it = on(sock, 'data');
    const first = await it.next();
    expect(String((first.value as Buffer[])[0])).toBe('hi');
    await it.return?.();
    expect(order).toEqual(['prepended once', 'prepended', 'on']);
    expect(sock.listenerCount('data')).toBe(2);
    expect(sock.setMaxListeners(3).getMaxListeners()).toBe(3);
  });
});
