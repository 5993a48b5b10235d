// The shared timer queue behind every heartbeat: real timers, since what matters is when callbacks actually run.
import { expect, it } from 'vitest';
import { type QueuedTimer, TimerQueue } from '../src/timer-queue.js';

const clock = { now: (): number => performance.now() };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it('fires every scheduled entry once, in due order, never early; cancel and reschedule hold', async () => {
  const q = new TimerQueue(clock);
  const fired: Array<{ id: number; due: number; at: number }> = [];
  const entries: Array<QueuedTimer & { id: number }> = [];
  const t0 = clock.now();
  for (let i = 0; i < 2000; i++) {
    const e: QueuedTimer & { id: number } = {
      id: i,
      due: t0 + 20 + ((i * 7919) % 200),
      slot: -1,
      onDue() {
        fired.push({ id: e.id, due: e.due, at: clock.now() });
      },
    };
    entries.push(e);
    q.schedule(e);
  }
  for (const e of entries) if (e.id % 10 === 0) q.cancel(e);
  for (const e of entries) {
    if (e.id % 7 === 0 && e.id % 10 !== 0) {
      e.due += 50;
      q.schedule(e);
    }
  }
  expect(q.size).toBe(1800);
  const deadline = performance.now() + 3000;
  while (fired.length < 1800 && performance.now() < deadline) await sleep(20);
  expect(fired).toHaveLength(1800);
  expect(q.size).toBe(0);
  expect(fired.some((f) => f.id % 10 === 0)).toBe(false);
  for (const f of fired) expect(f.at).toBeGreaterThanOrEqual(f.due);
  for (let i = 1; i < fired.length; i++) expect(fired[i]!.due).toBeGreaterThanOrEqual(fired[i - 1]!.due);
  expect(new Set(fired.map((f) => f.id)).size).toBe(1800);
});
