// RESP over lines({ eol: '\r\n' }) with heartbeats against a real redis-server: a plain PING's reply is one frame
// ('+PONG'); in SUBSCRIBE mode it is a five-line array, matched with isPong's 'more'.
import { afterEach, describe, expect, it } from 'vitest';
import { connect, lines, type ResilientSocket } from '../src/index.js';
import { record, sleep, until, waitFor } from './support/net.js';
import { redisMissing, startRedis } from './support/redis.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

// RESP2's reply to PING: '+PONG' normally; ['pong', ''] as an array while subscribed.
const SUBSCRIBED_PONG = ['*2', '$4', 'pong', '$0', ''];
function isPong(frame: Buffer, held: readonly Buffer[]): boolean | 'more' {
  if (held.length === 0 && frame.toString() === '+PONG') return true;
  const sofar = [...held, frame].map(String);
  for (let i = 0; i < sofar.length; i++) if (sofar[i] !== SUBSCRIBED_PONG[i]) return false;
  return sofar.length === SUBSCRIBED_PONG.length ? true : 'more';
}

describe.skipIf(redisMissing !== undefined)(`redis-server heartbeats over lines({ eol: '\\r\\n' }) ${redisMissing ?? ''}`, () => {
  async function setup(): Promise<{ sock: ResilientSocket; port: number }> {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const interval = 40;
    const sock = connect({
      host: '127.0.0.1',
      port: redis.port,
      keepAlive: false,
      framing: lines({ eol: '\r\n' }),
      heartbeat: { interval, timeout: 400, ping: 'PING', isPong },
    });
    cleanups.push(() => sock.destroy());
    await waitFor(sock, 'connect', 3000);
    return { sock, port: redis.port };
  }

  it('plain mode: replies match, commands work between pings, nothing fails', async () => {
    const { sock } = await setup();
    const beats = record(sock, ['heartbeat']);
    const messages: string[] = [];
    sock.on('message', (m) => messages.push(String(m)));
    sock.sendMessage('SET k v');
    sock.sendMessage('GET k');
    await until(() => messages.includes('v'), 2000, 'GET reply');
    await sleep(500);
    expect(beats.length).toBeGreaterThanOrEqual(5);
    // The pongs never reach 'message'.
    expect(messages).toEqual(['+OK', '$1', 'v']);
    expect(sock.stats().failures).toEqual({});
  });

  it('SUBSCRIBE mode: the five-frame reply to PING is matched; published messages still arrive whole', async () => {
    const { sock, port } = await setup();
    const messages: string[] = [];
    sock.on('message', (m) => messages.push(String(m)));
    sock.sendMessage('SUBSCRIBE news');
    await until(() => messages.includes('news') && messages.at(-1) === ':1', 2000, 'subscribed');
    const beats = record(sock, ['heartbeat']);
    const publisher = connect({ host: '127.0.0.1', port, keepAlive: false, framing: lines({ eol: '\r\n' }) });
    cleanups.push(() => publisher.destroy());
    await sleep(200);
    publisher.sendMessage('PUBLISH news hello');
    await sleep(400);
    expect(beats.length).toBeGreaterThanOrEqual(5);
    expect(sock.stats().failures).toEqual({});
    const at = messages.lastIndexOf('message');
    expect(messages.slice(at - 2, at + 5)).toEqual(['*3', '$7', 'message', '$4', 'news', '$5', 'hello']);
    expect(messages).not.toContain('pong');
  });
});
