// The short chaos soak for CI: 20 clients through a fault proxy for 8 s (see test/soak/soak.ts for what is checked).
// SOAK_SEED=<n> replays a schedule; `npm run soak` runs the long profile.
import { expect, it } from 'vitest';
import { ciProfile, formatReport, runSoak, seedFromEnv } from './soak/soak.js';

it('accounts for every message through resets, black holes, latency, slicing, refusals and peer restarts', async () => {
  const seed = seedFromEnv();
  const profile = ciProfile(seed);
  const report = await runSoak(profile);
  const table = formatReport(report);
  // Printed on success too: the seed and the counts are what one compares between runs.
  console.log(`chaos soak (replay with SOAK_SEED=${seed})\n${table}`);

  expect(report.violations, table).toEqual([]);
  expect(report.leakedResources).toEqual([]);
  expect(report.rss.after - report.rss.before).toBeLessThan(profile.rssBound);
  // The run must have exercised what it claims to, or a clean report means little.
  const m = report.messages;
  expect(m.written).toBeGreaterThan(profile.clients * (profile.durationMs / profile.writeEveryMs) * 0.8);
  expect(m.received).toBeGreaterThan(m.written / 4);
  expect(report.reconnects).toBeGreaterThan(profile.clients);
  expect(m.confirmed).toBeGreaterThan(0);
  expect(m.unconfirmed).toBeGreaterThan(0);
  // Requeues need bytes stuck in Node when a connection dies, which needs small socket buffers (koffi).
  if (report.buffersNotShrunk === undefined) expect(m.requeued).toBeGreaterThan(0);
  expect(Object.values(report.faults).reduce((a, b) => a + (b ?? 0), 0)).toBeGreaterThan(5);
}, 60_000);
