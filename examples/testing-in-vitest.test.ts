// Testing your own service with resock/testing: a fault proxy between the service and a real server lets a test reset
// the connection or stall it (a hung peer, a black hole) and check what the service does.
//   npx vitest run examples/testing-in-vitest.test.ts
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, lines, type ResilientSocket } from 'resock';
import { createFaultProxy, type FaultProxy } from 'resock/testing';

// ---- the service under test (in your code base it lives in its own module) ---------------------------------------

/** A client for a key-value server speaking "GET <id> <key>" → "VALUE <id> <value>" lines. */
class KvClient {
  readonly #sock: ResilientSocket;
  readonly #waiting = new Map<number, { resolve: (value: string) => void; reject: (err: Error) => void }>();
  #nextId = 1;

  constructor(port: number, opts: { heartbeatMs: number }) {
    this.#sock = connect({
      host: '127.0.0.1',
      port,
      framing: lines(),
      heartbeat: { ping: 'PING', isPong: (l) => l.toString() === 'PONG', interval: opts.heartbeatMs, timeout: opts.heartbeatMs },
      reconnect: { minDelay: 20, maxDelay: 200 },
    });
    this.#sock.on('message', (line) => {
      const [, id, value = ''] = /^VALUE (\d+) ?(.*)$/.exec(line.toString()) ?? [];
      const waiter = this.#waiting.get(Number(id));
      this.#waiting.delete(Number(id));
      waiter?.resolve(value);
    });
    // Requests in flight on a lost connection may or may not have been served: fail them and let the caller decide.
    // Ids keep a late reply from answering another request: a write that never left the process is sent again on the
    // next connection, and its reply is then ignored.
    this.#sock.on('disconnect', (f) => {
      for (const waiter of this.#waiting.values()) waiter.reject(new Error(`connection lost (${f.kind})`));
      this.#waiting.clear();
    });
  }

  get(key: string): Promise<string> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      // The callback gets an error only when the write can never be sent (closed, queue full).
      this.#sock.write(`GET ${id} ${key}`, (err) => {
        if (err && this.#waiting.delete(id)) reject(err);
      });
    });
  }

  /** For health checks: 'open' while connected. */
  get state(): string {
    return this.#sock.state;
  }

  close(): Promise<void> {
    return this.#sock.close();
  }
}

// ---- the tests -----------------------------------------------------------------------------------------------------

const HEARTBEAT_MS = 100;

/** The real server: a tiny key-value store that answers PING too. */
async function startKvServer(data: Record<string, string>): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const [verb, id, key = ''] = line.split(' ');
        s.write(verb === 'PING' ? 'PONG\n' : `VALUE ${id} ${data[key] ?? ''}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('KvClient', () => {
  let kv: Awaited<ReturnType<typeof startKvServer>>;
  let proxy: FaultProxy;
  let client: KvClient;

  beforeEach(async () => {
    kv = await startKvServer({ colour: 'blue', size: 'XL' });
    proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: kv.port } });
    client = new KvClient(proxy.port, { heartbeatMs: HEARTBEAT_MS });
  });

  afterEach(async () => {
    await client.close();
    await proxy.close();
    await kv.close();
  });

  it('reads values through the proxy', async () => {
    expect(await client.get('colour')).toBe('blue');
  });

  it('serves a request made during an outage once the server is back', async () => {
    expect(await client.get('colour')).toBe('blue');
    proxy.refuse(); // the server is down: new connections are refused...
    proxy.reset(); // ...and the open one is reset (the client sees ECONNRESET)
    await expect.poll(() => client.state).not.toBe('open');
    // Made while the client is between connections: the request waits in resock's offline queue.
    const pending = client.get('size');
    await proxy.heal();
    expect(await pending).toBe('XL');
  });

  it('fails a request within the heartbeat bound when the server stops answering, and serves again after', async () => {
    expect(await client.get('colour')).toBe('blue');
    proxy.blackhole(); // nothing gets through and nothing is closed: only the heartbeat can tell
    const started = performance.now();
    await expect(client.get('size')).rejects.toThrow('connection lost (heartbeat-timeout)');
    // interval + timeout, with room for a loaded CI machine.
    expect(performance.now() - started).toBeLessThan(HEARTBEAT_MS * 2 * 5);

    await proxy.heal();
    // A connection that was stalled until now may still time out once: retry until served.
    await expect.poll(() => client.get('size').catch((err: Error) => err.message)).toBe('XL');
  });
});
