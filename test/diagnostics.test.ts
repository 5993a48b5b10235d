import dc from 'node:diagnostics_channel';
import { afterEach, expect, it } from 'vitest';
import { connect } from '../src/index.js';
import { freePort, listen, waitFor } from './support/net.js';

const unsubscribers: Array<() => void> = [];
afterEach(() => {
  while (unsubscribers.length > 0) unsubscribers.pop()!();
});

function subscribe(name: string, into: Array<{ name: string; message: Record<string, unknown> }>): void {
  const fn = (message: unknown): void => {
    into.push({ name, message: message as Record<string, unknown> });
  };
  dc.subscribe(name, fn);
  unsubscribers.push(() => dc.unsubscribe(name, fn));
}

it('publishes the lifecycle on resock:* diagnostics channels with the socket and the event payload', async () => {
  const seen: Array<{ name: string; message: Record<string, unknown> }> = [];
  for (const n of ['connecting', 'connect', 'failure', 'reconnecting', 'close']) subscribe(`resock:${n}`, seen);
  const port = await freePort();
  const sock = connect({ port, host: '127.0.0.1', keepAlive: false, reconnect: { minDelay: 10, maxDelay: 20, stableAfter: 0 } });
  await waitFor(sock, 'reconnecting', 2000);
  const srv = await listen(() => {}, port);
  await waitFor(sock, 'connect', 2000);
  await sock.close();
  await srv.close();
  const names = seen.filter((e) => e.message.socket === sock).map((e) => e.name);
  expect(names.slice(0, 4)).toEqual(['resock:connecting', 'resock:failure', 'resock:reconnecting', 'resock:connecting']);
  expect(names).toContain('resock:connect');
  expect(names.at(-1)).toBe('resock:close');
  const failure = seen.find((e) => e.name === 'resock:failure')!.message;
  expect(failure).toMatchObject({ kind: 'refused', code: 'ECONNREFUSED' });
  expect(seen.find((e) => e.name === 'resock:close')!.message).toMatchObject({ reason: 'closed' });
});

it("announces each raw TCP socket on Node's net.client.socket channel, as net.connect() would", async () => {
  const seen: Array<{ name: string; message: Record<string, unknown> }> = [];
  subscribe('net.client.socket', seen);
  const srv = await listen(() => {});
  const sock = connect({ port: srv.port, host: '127.0.0.1', keepAlive: false });
  await sock.ready();
  const raw = sock.socket;
  await sock.close();
  await srv.close();
  expect(raw).not.toBeNull();
  expect(seen.map((e) => e.message.socket)).toContain(raw);
});
