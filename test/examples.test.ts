// Runs every example with the command examples/README.md gives for it, so the examples cannot rot: each must exit 0
// (it exits non-zero when what it demonstrates did not happen) within a bounded time.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string): string => join(root, 'node_modules', '.bin', name);
// Each example stops itself after 10 s; this catches one that hangs on a leaked handle after it is done.
const TIMEOUT_MS = 20_000;
// Every example is a check; the narrated tour is `resock demo`, tested in test/cli.test.ts.
const NOT_CHECKS = new Set<string>();

const files = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts') && !NOT_CHECKS.has(f));
const readme = readFileSync(join(root, 'examples', 'README.md'), 'utf8');
const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;

/** The documented command: `npx tsx examples/x.ts`, or `npx vitest run examples/x.test.ts` for a vitest example. */
function command(file: string): { shown: string; cmd: string; args: string[] } {
  const path = `examples/${file}`;
  return file.endsWith('.test.ts')
    ? { shown: `npx vitest run ${path}`, cmd: bin('vitest'), args: ['run', path] }
    : { shown: `npx tsx ${path}`, cmd: bin('tsx'), args: [path] };
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
}

function run(cmd: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout kills tsx's child node process too.
    const child = spawn(cmd, args, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill(-child.pid!, 'SIGKILL');
    }, TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, output });
    });
  });
}

describe.concurrent('examples', () => {
  it('are all listed in examples/README.md with their command', () => {
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const file of files) expect(readme, `examples/README.md lacks "${command(file).shown}"`).toContain(command(file).shown);
  });

  for (const file of files) {
    const needsOpenssl = file === 'tls-custom-ca.ts';
    it.skipIf(needsOpenssl && !hasOpenssl)(`${command(file).shown}${needsOpenssl ? ' (needs openssl)' : ''}`, async () => {
      const { cmd, args } = command(file);
      const out = await run(cmd, args);
      const what = out.timedOut ? `still running after ${TIMEOUT_MS} ms` : `exit ${out.code ?? out.signal}`;
      expect(out.code, `${file}: ${what}\n${out.output}`).toBe(0);
    }, TIMEOUT_MS + 5_000);
  }
});
