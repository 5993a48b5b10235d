// The heartbeat's decisions alone: fake timers drive its one timer, and an injected clock can run ahead of them to
// stand for an event loop that was blocked (the timer then fires late).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat, type HeartbeatHost } from '../src/heartbeat.js';
import { TimerQueue } from '../src/timer-queue.js';

interface Call {
  what: 'ping' | 'reply' | 'timeout' | 'stall';
  arg?: number;
  at: number;
}

const PING = Buffer.from('PING');

let skew = 0;
/** The injected clock: fake time, plus whatever a simulated stall added. */
const now = (): number => Date.now() + skew;

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
  skew = 0;
});
afterEach(() => {
  vi.useRealTimers();
});

function start(
  interval: number,
  timeout: number,
  onPing?: (hb: Heartbeat) => void,
  isPong?: (frame: Buffer) => boolean,
): { hb: Heartbeat; calls: Call[] } {
  const calls: Call[] = [];
  let hb: Heartbeat | undefined;
  const host: HeartbeatHost = {
    now,
    timers: new TimerQueue({ now }),
    sendPing: () => {
      calls.push({ what: 'ping', at: now() });
      onPing?.(hb!);
    },
    onReply: (rtt) => calls.push({ what: 'reply', arg: rtt, at: now() }),
    onTimeout: (silentFor) => calls.push({ what: 'timeout', arg: silentFor, at: now() }),
    onStall: (lateBy) => calls.push({ what: 'stall', arg: lateBy, at: now() }),
    // No socket here, so no reply can be waiting unread: the verdict needs no round of I/O.
    afterIo: (fn) => fn(),
  };
  hb = new Heartbeat({ interval, timeout, ping: () => PING, isPong }, host);
  return { hb, calls };
}

const advance = (ms: number): void => {
  vi.advanceTimersByTime(ms);
};

/** The process was blocked for `ms`: the clock moves on, no timer runs until the next advance(). */
const stall = (ms: number): void => {
  skew += ms;
};

const only = (calls: Call[], what: Call['what']): Call[] => calls.filter((c) => c.what === what);

describe('Heartbeat: when it pings', () => {
  it('pings once interval of inbound silence has passed, not before', () => {
    const { calls } = start(100, 50);
    advance(99);
    expect(calls).toEqual([]);
    advance(1);
    expect(calls).toEqual([{ what: 'ping', at: 100 }]);
  });

  it('inbound activity postpones the ping to interval after the last byte', () => {
    const { hb, calls } = start(100, 50);
    advance(60);
    hb.activity(now());
    advance(99);
    expect(calls).toEqual([]);
    advance(1);
    expect(calls).toEqual([{ what: 'ping', at: 160 }]);
  });

  it('keeps pinging while replies come back, never timing out', () => {
    const { hb, calls } = start(100, 100, (beat) => {
      // The peer answers 5 ms after each ping.
      setTimeout(() => beat.pong(now()), 5);
    });
    advance(2000);
    expect(only(calls, 'timeout')).toEqual([]);
    expect(only(calls, 'ping').length).toBeGreaterThanOrEqual(8);
    expect(only(calls, 'reply').map((c) => c.arg)).toEqual(only(calls, 'ping').map(() => 5));
    hb.stop();
  });

  // The interval counts from the last inbound byte, so after a reply the next ping is due at reply + interval, also
  // when the timeout is longer than the interval; otherwise a peer that dies right after a reply goes unnoticed for
  // 2 × timeout, past the interval + timeout that detectionBounds() promises.
  it('after a reply, pings again interval after it even when timeout > interval', () => {
    const { hb, calls } = start(100, 300);
    advance(100);
    advance(10);
    hb.pong(now());
    advance(400);
    expect(only(calls, 'ping').map((c) => c.at)).toEqual([100, 210]);
    hb.stop();
  });

  it('a late interval timer with no ping out just pings: there is no reply to wait for', () => {
    const { calls } = start(100, 200);
    stall(500);
    advance(100);
    expect(calls).toEqual([{ what: 'ping', at: 600 }]);
  });
});

describe('Heartbeat: replies and timeouts', () => {
  it('fails after timeout without a reply, reporting how long nothing came in', () => {
    const { calls } = start(100, 50);
    advance(100);
    advance(49);
    expect(only(calls, 'timeout')).toEqual([]);
    advance(1);
    expect(calls).toEqual([
      { what: 'ping', at: 100 },
      { what: 'timeout', arg: 150, at: 150 },
    ]);
    // The verdict is final: no timer is left to ping again.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('silentFor counts from the last inbound byte, not from the ping', () => {
    const { hb, calls } = start(100, 50);
    advance(30);
    hb.activity(now());
    advance(200);
    expect(only(calls, 'timeout')).toEqual([{ what: 'timeout', arg: 150, at: 180 }]);
  });

  it('a reply reports the round trip from the ping and cancels the timeout', () => {
    const { hb, calls } = start(100, 50);
    advance(100);
    expect(hb.waitingForReply).toBe(true);
    advance(37);
    hb.pong(now());
    expect(hb.waitingForReply).toBe(false);
    expect(only(calls, 'reply')).toEqual([{ what: 'reply', arg: 37, at: 137 }]);
    advance(49);
    expect(only(calls, 'timeout')).toEqual([]);
    hb.stop();
  });

  it('any inbound activity answers an outstanding ping', () => {
    const { hb, calls } = start(100, 50);
    advance(100);
    advance(12);
    hb.activity(now());
    expect(only(calls, 'reply')).toEqual([{ what: 'reply', arg: 12, at: 112 }]);
    hb.stop();
  });

  it('inbound bytes with no ping out are life, not a reply', () => {
    const { hb, calls } = start(100, 50);
    advance(40);
    hb.activity(now());
    hb.pong(now());
    expect(calls).toEqual([]);
    hb.stop();
  });
});

describe('Heartbeat: a blocked event loop', () => {
  it('a timeout timer late by more than timeout / 2 is a stall: onStall and a fresh timeout, not onTimeout', () => {
    const { hb, calls } = start(100, 200);
    advance(100);
    stall(500);
    advance(200);
    expect(calls).toEqual([
      { what: 'ping', at: 100 },
      { what: 'stall', arg: 500, at: 800 },
    ]);
    // The reply that was waiting behind the stall is read now.
    advance(1);
    hb.pong(now());
    expect(only(calls, 'reply')).toEqual([{ what: 'reply', arg: 701, at: 801 }]);
    // Back to normal: the next ping goes out one interval after the reply, and no verdict on the stalled one comes.
    advance(150);
    expect(calls).toEqual([
      { what: 'ping', at: 100 },
      { what: 'stall', arg: 500, at: 800 },
      { what: 'reply', arg: 701, at: 801 },
      { what: 'ping', at: 901 },
    ]);
    hb.stop();
  });

  it('a peer that is really gone still fails one timeout after the stall', () => {
    const { calls } = start(100, 200);
    advance(100);
    stall(500);
    advance(200);
    advance(199);
    expect(only(calls, 'timeout')).toEqual([]);
    advance(1);
    expect(calls.map((c) => c.what)).toEqual(['ping', 'stall', 'timeout']);
    expect(only(calls, 'timeout')[0]).toMatchObject({ at: 1000, arg: 1000 });
  });

  it('lateness up to timeout / 2 is not a stall', () => {
    const { calls } = start(100, 200);
    advance(100);
    stall(100);
    advance(200);
    expect(calls.map((c) => c.what)).toEqual(['ping', 'timeout']);
  });

  it('treats at least 50 ms of lateness as timer jitter, however short the timeout', () => {
    const { calls } = start(100, 20);
    advance(100);
    stall(50);
    advance(20);
    expect(calls.map((c) => c.what)).toEqual(['ping', 'timeout']);
  });
});

describe('Heartbeat: stop()', () => {
  it('clears its timer, so nothing runs afterwards', () => {
    const { hb, calls } = start(100, 50);
    expect(vi.getTimerCount()).toBe(1);
    hb.stop();
    expect(vi.getTimerCount()).toBe(0);
    advance(10_000);
    expect(calls).toEqual([]);
  });

  it('stopped with a ping out: no timeout follows', () => {
    const { hb, calls } = start(100, 50);
    advance(100);
    hb.stop();
    expect(vi.getTimerCount()).toBe(0);
    advance(10_000);
    expect(calls).toEqual([{ what: 'ping', at: 100 }]);
  });

  // After end() the socket still reads until the peer's FIN, so a reply can come in after stop().
  it('a reply that arrives after stop() (the socket is closing) reports nothing and arms nothing', () => {
    const { hb, calls } = start(100, 50);
    advance(100);
    hb.stop();
    hb.pong(now());
    hb.activity(now());
    expect(vi.getTimerCount()).toBe(0);
    advance(10_000);
    expect(calls).toEqual([{ what: 'ping', at: 100 }]);
  });

  it('stopped from inside sendPing (the write failed): no timer is armed again', () => {
    const { calls } = start(100, 50, (hb) => hb.stop());
    advance(100);
    expect(vi.getTimerCount()).toBe(0);
    advance(10_000);
    expect(calls).toEqual([{ what: 'ping', at: 100 }]);
  });

  it('arms an unref’d timer: a heartbeat alone does not keep the process alive', () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const { hb } = start(100, 50);
    const timer = setTimeoutSpy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    hb.stop();
    setTimeoutSpy.mockRestore();
  });
});

describe('Heartbeat: with isPong', () => {
  const isPong = (f: Buffer): boolean => f.toString() === 'PONG';

  it('other inbound frames are not a reply: they neither end the wait nor postpone the timeout', () => {
    const { hb, calls } = start(100, 200, undefined, isPong);
    advance(100);
    expect(only(calls, 'ping')).toHaveLength(1);
    advance(150);
    hb.activity(now());
    expect(only(calls, 'reply')).toEqual([]);
    advance(50);
    expect(only(calls, 'timeout')).toEqual([{ what: 'timeout', arg: 50, at: 300 }]);
  });

  it('a pong measures the RTT from the ping', () => {
    const { hb, calls } = start(100, 200, undefined, isPong);
    advance(100);
    advance(30);
    hb.pong(now());
    expect(only(calls, 'reply')).toEqual([{ what: 'reply', arg: 30, at: 130 }]);
    hb.stop();
  });

  it('frames postpone the next ping like any inbound traffic', () => {
    const { hb, calls } = start(100, 200, undefined, isPong);
    advance(60);
    hb.activity(now());
    advance(60);
    expect(only(calls, 'ping')).toEqual([]);
    advance(40);
    expect(only(calls, 'ping')).toEqual([{ what: 'ping', at: 160 }]);
    hb.stop();
  });

});

describe('Heartbeat: a ping waiting behind our own backlog', () => {
  it('keeps waiting while the backlog drains, and fails once nothing moves', () => {
    let moving = true;
    const calls: Call[] = [];
    const hb = new Heartbeat(
      { interval: 100, timeout: 200, ping: () => PING, isPong: undefined },
      {
        now,
        timers: new TimerQueue({ now }),
        sendPing: () => calls.push({ what: 'ping', at: now() }),
        onReply: (rtt) => calls.push({ what: 'reply', arg: rtt, at: now() }),
        onTimeout: (silentFor) => calls.push({ what: 'timeout', arg: silentFor, at: now() }),
        onStall: (lateBy) => calls.push({ what: 'stall', arg: lateBy, at: now() }),
        backlogged: () => moving,
        afterIo: (fn) => fn(),
      },
    );
    advance(100);
    advance(200);
    advance(200);
    expect(only(calls, 'timeout')).toEqual([]);
    moving = false;
    advance(200);
    expect(only(calls, 'timeout')).toEqual([{ what: 'timeout', arg: 700, at: 700 }]);
    hb.stop();
  });
});
