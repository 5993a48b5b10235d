// npm run soak: the long chaos soak (100 clients × 60 s by default), with a summary table. Exit code 1 on any violation.
// SOAK_SEED replays a fault schedule; SOAK_PROFILE=ci runs the short profile; SOAK_CLIENTS / SOAK_SECONDS override sizes;
// SOAK_FAULTS=blackhole,reset limits the fault kinds; SOAK_VERBOSE=1 logs each fault episode.
import { FAULT_KINDS, ciProfile, formatReport, longProfile, runSoak, seedFromEnv, type FaultKind } from './soak.js';

const seed = seedFromEnv();
const base = process.env.SOAK_PROFILE === 'ci' ? ciProfile(seed) : longProfile(seed);
const profile = {
  ...base,
  clients: positiveInt('SOAK_CLIENTS') ?? base.clients,
  durationMs: (positiveInt('SOAK_SECONDS') ?? base.durationMs / 1000) * 1000,
  faults: faultKinds() ?? base.faults,
};
const verbose = process.env.SOAK_VERBOSE === '1';

let unhandled = 0;
process.on('unhandledRejection', (reason) => {
  unhandled++;
  console.error('unhandled rejection:', reason);
});
process.on('uncaughtException', (err) => {
  unhandled++;
  console.error('uncaught exception:', err);
});

console.log(`soak: ${profile.clients} clients × ${profile.durationMs / 1000} s, seed ${seed} (replay with SOAK_SEED=${seed})`);
const report = await runSoak(profile, verbose ? (line) => console.log(line) : undefined);
console.log(formatReport(report));
if (unhandled > 0) console.log(`unhandled errors: ${unhandled}`);
const ok = report.violations.length === 0 && unhandled === 0;
console.log(ok ? 'PASS' : `FAIL (replay with SOAK_SEED=${seed})`);
process.exitCode = ok ? 0 : 1;

function positiveInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${raw}`);
  return n;
}

function faultKinds(): FaultKind[] | undefined {
  const raw = process.env.SOAK_FAULTS;
  if (raw === undefined || raw === '') return undefined;
  const kinds = raw.split(',').map((k) => k.trim());
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new RangeError(`SOAK_FAULTS: unknown fault "${k}"; known: ${FAULT_KINDS.join(', ')}`);
  }
  return kinds as FaultKind[];
}
