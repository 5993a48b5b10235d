// Against a real redis-server: an unframed heartbeat ping may go out between two write() calls, so a command written in
// pieces can be corrupted; cork()/uncork() keeps it together.
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type ResilientSocket } from '../src/index.js';
import { sleep, until, waitFor } from './support/net.js';
import { redisMissing, resp, startRedis } from './support/redis.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe.skipIf(redisMissing !== undefined)(`redis-server: a command written in pieces ${redisMissing ?? ''}`, () => {
  async function setup(): Promise<{ sock: ResilientSocket; replies: () => string }> {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const sock = connect({
      host: '127.0.0.1',
      port: redis.port,
      keepAlive: false,
      heartbeat: { interval: 30, timeout: 2000, ping: resp('PING') },
    });
    cleanups.push(() => sock.destroy());
    let replies = '';
    sock.on('data', (d) => (replies += String(d)));
    await waitFor(sock, 'connect', 3000);
    return { sock, replies: () => replies };
  }

  /** The bulk reply to GET `key`, skipping the simple replies (pings' +PONG, SET's +OK) around it. */
  async function get(sock: ResilientSocket, replies: () => string, key: string): Promise<string> {
    const before = replies().length;
    sock.write(resp('GET', key));
    const bulk = (): string | undefined => {
      const m = /(?:^|\r\n)(\$-1\r\n|\$(\d+)\r\n)/.exec(replies().slice(before));
      if (m === null) return undefined;
      if (m[2] === undefined) return m[1];
      const start = m.index + m[0].length;
      const body = replies().slice(before).slice(start, start + Number(m[2]) + 2);
      return body.length === Number(m[2]) + 2 ? `$${m[2]}\r\n${body}` : undefined;
    };
    await until(() => bulk() !== undefined, 2000, `GET ${key}`);
    return bulk()!;
  }

  it('without cork a ping lands inside the command (the rule); with cork the value is stored whole', async () => {
    const { sock, replies } = await setup();
    const value = 'hello';
    const [head, tail] = [resp('SET', 'plain', value).slice(0, -(value.length + 2)), `${value}\r\n`];

    sock.write(head);
    await sleep(150); // several heartbeat intervals
    sock.write(tail);
    const plain = await get(sock, replies, 'plain');
    // redis read the ping's bytes as the value's: the value is not what was written.
    expect(plain).not.toBe(`$${value.length}\r\n${value}\r\n`);

    // A fresh connection: redis may have dropped the first one over the mangled command.
    const fresh = await setup();
    fresh.sock.cork();
    fresh.sock.write(resp('SET', 'corked', value).slice(0, -(value.length + 2)));
    await sleep(150);
    fresh.sock.write(`${value}\r\n`);
    fresh.sock.uncork();
    expect(await get(fresh.sock, fresh.replies, 'corked')).toBe(`$${value.length}\r\n${value}\r\n`);
  });
});
