// The abort signal: what it closes is rejected with ERR_RESOCK_ABORTED and the signal's reason on cause, so a caller
// can tell its own shutdown from the socket giving up. Real sockets on 127.0.0.1.
import { afterEach, describe, expect, it } from 'vitest';
import { ResockError, connect, type ResilientSocket, type ResilientSocketOptions } from '../src/index.js';
import { freePort, listen, waitFor } from './support/net.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function client(opts: ResilientSocketOptions): ResilientSocket {
  const sock = connect({ host: '127.0.0.1', keepAlive: false, ...opts });
  cleanups.push(() => sock.destroy());
  return sock;
}

/** Settles with the error `p` rejects with; fails if it resolves. */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: Error) => err,
  );
}

describe('abort signal', () => {
  it('while reconnecting: close reason aborted; ready() and queued writes reject with ERR_RESOCK_ABORTED, cause the reason', async () => {
    // Nothing listens: the socket keeps retrying, with writes waiting in the offline queue.
    const port = await freePort();
    const controller = new AbortController();
    const sock = client({ port, signal: controller.signal, reconnect: { minDelay: 20, maxDelay: 50 } });
    await waitFor(sock, 'reconnecting', 2000);
    const ready = rejection(sock.ready());
    const written = new Promise<Error | null | undefined>((resolve) => sock.write('queued', resolve));
    const sent = rejection(sock.send('also queued'));
    const closed = waitFor(sock, 'close', 2000);

    const reason = new Error('service shutting down');
    controller.abort(reason);

    expect((await closed).reason).toBe('aborted');
    for (const err of [await ready, await written, await sent]) {
      expect(err).toBeInstanceOf(ResockError);
      expect((err as ResockError).code).toBe('ERR_RESOCK_ABORTED');
      expect((err as ResockError).cause).toBe(reason);
    }
  });

  it('with a reason that is not an Error, that reason is still the cause', async () => {
    const port = await freePort();
    const controller = new AbortController();
    const sock = client({ port, signal: controller.signal, reconnect: { minDelay: 20, maxDelay: 50 } });
    await waitFor(sock, 'reconnecting', 2000);
    const ready = rejection(sock.ready());
    controller.abort('deploy');
    const err = await ready;
    expect((err as ResockError).code).toBe('ERR_RESOCK_ABORTED');
    expect((err as ResockError).cause).toBe('deploy');
  });

  it('while open: close reason aborted; a close() or destroy() of our own stays ERR_RESOCK_CLOSED', async () => {
    const srv = await listen();
    cleanups.push(() => srv.close());
    const controller = new AbortController();
    const sock = client({ port: srv.port, signal: controller.signal });
    await waitFor(sock, 'connect', 2000);
    const closed = waitFor(sock, 'close', 2000);
    controller.abort();
    expect((await closed).reason).toBe('aborted');

    const other = client({ port: srv.port, reconnect: false });
    const ready = rejection(other.ready());
    other.destroy();
    expect((await ready).code).toBe('ERR_RESOCK_CLOSED');
  });
});
