// Entry point: `npm run bench` runs every comparison with the full profile and writes BENCHMARKS.md at the repo root;
// `npm run bench:smoke` runs a tiny profile in seconds, writes its report to a temp file and judges nothing.
// `--only detect,storm` runs a subset (its report also goes to a temp file, so BENCHMARKS.md is always a full run).
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, spawnWorker } from './child.js';
import { detect } from './detect.js';
import { framing } from './framing.js';
import { idle } from './idle.js';
import { FULL, SMOKE, type Profile } from './profile.js';
import { render, type Section } from './report.js';
import { roundtrip } from './roundtrip.js';
import { storm } from './storm.js';
import { throughput } from './throughput.js';

type Bench = (profile: Profile, ports: { sink: number; echo: number }) => Promise<Section>;

const BENCHES: Record<string, Bench> = {
  throughput: (p, ports) => throughput(p, ports.sink),
  roundtrip: (p, ports) => roundtrip(p, ports.echo),
  idle: (p) => idle(p),
  framing: (p) => framing(p),
  storm: (p) => storm(p),
  detect: (p) => detect(p),
};

function parseArgs(argv: readonly string[]): { smoke: boolean; only: string[] | undefined } {
  let smoke = false;
  let only: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--smoke') smoke = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const value = a === '--only' ? argv[++i] : a.slice('--only='.length);
      only = (value ?? '').split(',').filter((x) => x !== '');
      const unknown = only.filter((x) => !(x in BENCHES));
      if (unknown.length > 0 || only.length === 0) {
        throw new Error(`--only takes a comma-separated list of ${Object.keys(BENCHES).join(', ')}, got ${JSON.stringify(value)}`);
      }
    } else throw new Error(`unknown argument ${JSON.stringify(a)}; use --smoke and/or --only <names>`);
  }
  return { smoke, only };
}

function commandLine(): string {
  const script = process.env.npm_lifecycle_event;
  if (script === 'bench' || script === 'bench:smoke') return `npm run ${script}`;
  return ['tsx', 'bench/run.ts', ...process.argv.slice(2)].join(' ');
}

const { smoke, only } = parseArgs(process.argv.slice(2));
const profile = smoke ? SMOKE : FULL;
const names = only ?? Object.keys(BENCHES);
const startedAt = new Date();
const t0 = performance.now();
console.log(`resock bench, profile ${profile.name}: ${names.join(', ')}`);

// One server process for the two streaming comparisons: raw and resock talk to the very same listeners.
const servers = spawnWorker('server.ts', { role: 'sink-echo' });
const sections: Section[] = [];
try {
  const ports = (await servers.next('ready', 30_000)) as unknown as { sink: number; echo: number };
  for (const name of names) {
    const started = performance.now();
    const section = await BENCHES[name]!(profile, ports);
    sections.push(section);
    console.log(`\n${section.title} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    for (const g of section.goals) {
      const verdict = g.pass === undefined ? '' : g.pass ? '  pass' : '  MISS';
      console.log(`  ${g.goal}: ${g.measured}${verdict}`);
    }
  }
} finally {
  await servers.stop();
}

const report = render(sections, { profile: profile.name, command: commandLine(), startedAt, seconds: (performance.now() - t0) / 1000 });
const partial = smoke || only !== undefined;
const file = partial ? join(os.tmpdir(), `resock-bench-${profile.name}-${process.pid}.md`) : join(REPO_ROOT, 'BENCHMARKS.md');
writeFileSync(file, `${report}\n`);
console.log(`\nreport: ${file}${partial ? ' (a partial or smoke run never replaces BENCHMARKS.md)' : ''}`);
