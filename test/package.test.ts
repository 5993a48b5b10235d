// Checks the package as published: what `npm pack` puts in the tarball, publint and arethetypeswrong on it, and the
// built CommonJS and ESM entry points loaded from an install outside this source tree. Needs a current dist/: `npm test`
// builds it first when it is missing or stale (scripts/build-if-stale.mjs); run alone, this fails with that advice.
import { execFile, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, type TestServer } from './support/net.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string): string => join(root, 'node_modules', '.bin', name);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;

interface PackageJson {
  name: string;
  main?: string;
  module?: string;
  types?: string;
  bin?: string | Record<string, string>;
  exports?: unknown;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

interface PackResult {
  filename: string;
  files: Array<{ path: string }>;
}

/** Every file the manifest points at: main, module, types, bin and each leaf of the exports map. */
function manifestTargets(p: PackageJson): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(walk);
  };
  walk([p.main, p.module, p.types, p.bin, p.exports]);
  return [...new Set(out.map((t) => t.replace(/^\.\//, '')))];
}

/** Fails with the fix when dist/ is missing or older than the newest file under src/. */
function assertFreshBuild(): void {
  const built = manifestTargets(pkg).filter((t) => t.startsWith('dist/'));
  const missing = built.filter((t) => !existsSync(join(root, t)));
  if (missing.length > 0) throw new Error(`${missing.join(', ')} missing: run \`npm run build\` before this test`);
  const builtAt = Math.min(...built.map((t) => statSync(join(root, t)).mtimeMs));
  const newest = newestFile(join(root, 'src'));
  if (newest.mtimeMs > builtAt) {
    throw new Error(`dist/ is older than ${newest.path.slice(root.length)}: run \`npm run build\` so this tests the current code`);
  }
}

function newestFile(dir: string): { path: string; mtimeMs: number } {
  let newest = { path: dir, mtimeMs: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const candidate = entry.isDirectory() ? newestFile(path) : { path, mtimeMs: statSync(path).mtimeMs };
    if (candidate.mtimeMs > newest.mtimeMs) newest = candidate;
  }
  return newest;
}

let work: string;
let tarball: string;
let packed: PackResult;

beforeAll(async () => {
  assertFreshBuild();
  // Real path: require.resolve() in the children reports real paths, and tmpdir() may sit behind a symlink.
  work = realpathSync(mkdtempSync(join(tmpdir(), 'resock-package-')));
  // One real pack serves every check below; --ignore-scripts so packing never rebuilds dist/ under the other tests.
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root });
  packed = (JSON.parse(stdout) as PackResult[])[0]!;
  tarball = join(work, packed.filename);
}, 30_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.concurrent('the packed tarball', () => {
  it('holds dist/, the docs and the license, and nothing else', () => {
    const paths = packed.files.map((f) => f.path);
    const docs = ['CHANGELOG.md', 'LICENSE', 'README.md', 'package.json'];
    expect(docs.filter((d) => !paths.includes(d)), 'missing from the tarball').toEqual([]);
    // Source maps ship with the build; sources, tests, benchmarks, examples and configs do not.
    expect(paths.filter((p) => !p.startsWith('dist/') && !docs.includes(p)), 'unexpected in the tarball').toEqual([]);
    const targets = manifestTargets(pkg);
    expect(targets.filter((t) => !paths.includes(t)), 'package.json points at files not in the tarball').toEqual([]);
  });

  it('passes publint with no errors or warnings', async () => {
    const result = await run(bin('publint'), ['run', tarball, '--strict'], { cwd: work }).catch((err: { stdout?: string; stderr?: string }) => err);
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
    expect(result, output).not.toBeInstanceOf(Error);
    expect(output).not.toMatch(/^(Errors|Warnings):/m);
  });

  it('passes arethetypeswrong for every entry point and resolution mode', async () => {
    // attw exits before a large stdout pipe drains: write the report to a file instead.
    const reportPath = join(work, 'attw.json');
    const fd = openSync(reportPath, 'w');
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(bin('attw'), [tarball, '--format', 'json'], { cwd: work, stdio: ['ignore', fd, 'inherit'] });
      child.once('error', reject);
      child.once('close', resolve);
    }).finally(() => closeSync(fd));
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as {
      analysis: { entrypoints: Record<string, unknown> };
      problems?: Record<string, Array<{ kind: string; entrypoint: string; resolutionKind?: string }>>;
    };
    expect(Object.keys(report.analysis.entrypoints)).toEqual(expect.arrayContaining(['.', './testing']));
    const problems = Object.values(report.problems ?? {}).flat();
    expect(problems.map((p) => `${p.kind} for "${p.entrypoint}" (${p.resolutionKind ?? 'all'} resolution)`)).toEqual([]);
    expect(code).toBe(0);
  });
});

describe.concurrent('the built package, installed outside the source tree', () => {
  let app: string;
  let echo: TestServer;

  beforeAll(async () => {
    // The tarball unpacked as node_modules/resock of a fresh project; its dependencies are linked from this repo's
    // node_modules, which needs no network and no npm cache. Nothing resolves to src/ from there.
    app = join(work, 'app');
    const installed = join(app, 'node_modules', pkg.name);
    mkdirSync(installed, { recursive: true });
    await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
    for (const dep of [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]) {
      const from = join(root, 'node_modules', dep);
      if (!existsSync(from)) continue; // an optional dependency that did not install here
      mkdirSync(dirname(join(app, 'node_modules', dep)), { recursive: true });
      symlinkSync(from, join(app, 'node_modules', dep), 'dir');
    }
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    writeFileSync(join(app, 'check.cjs'), CJS_HEADER + CHECK_BODY);
    writeFileSync(join(app, 'check.mjs'), ESM_HEADER + CHECK_BODY);
    echo = await listen((s) => s.pipe(s));
  }, 30_000);

  afterAll(async () => {
    await echo?.close();
  });

  for (const format of ['cjs', 'mjs'] as const) {
    it(`${format === 'cjs' ? "require('resock')" : "import('resock')"} connects, rides through a reset and exits cleanly`, async () => {
      const { stdout } = await run(process.execPath, [`check.${format}`], {
        cwd: app,
        timeout: 15_000,
        env: { ...process.env, ECHO_PORT: String(echo.port), NODE_OPTIONS: '', NODE_PATH: '' },
      });
      const result = JSON.parse(stdout) as CheckResult;
      const entry = format === 'cjs' ? 'index.cjs' : 'index.js';
      expect(result.resolved.resock).toBe(join(app, 'node_modules', pkg.name, 'dist', entry));
      expect(result.resolved.testing).toBe(join(app, 'node_modules', pkg.name, 'dist', entry.replace('index', 'testing')));
      expect(result.messages).toEqual(['one', 'two']);
      expect(result.failures).toEqual(['reset']);
      if (format === 'mjs') expect(result.brandAcrossFormats).toBe(true);
      // koffi is found from the installed build (createRequire on import.meta.url, shimmed in the CJS build).
      if (process.platform === 'linux' && existsSync(join(root, 'node_modules', 'koffi'))) {
        expect(result.warnings).toEqual([]);
        expect(result.keepAlive).toEqual({ idle: true, interval: true, count: true, userTimeout: true });
      }
    });
  }
});

interface CheckResult {
  resolved: { resock: string; testing: string };
  messages: string[];
  failures: string[];
  warnings: string[];
  keepAlive: unknown;
  brandAcrossFormats: boolean | null;
}

const CJS_HEADER = `'use strict';
const { connect, lines } = require('resock');
const { createFaultProxy } = require('resock/testing');
const resolved = { resock: require.resolve('resock'), testing: require.resolve('resock/testing') };
const brandAcrossFormats = null;
`;

// Also loads the CJS build next to the ESM one: a ResockError of either must pass instanceof of the other.
const ESM_HEADER = `import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { connect, lines, ResockError } from 'resock';
import { createFaultProxy } from 'resock/testing';
const resolved = {
  resock: fileURLToPath(import.meta.resolve('resock')),
  testing: fileURLToPath(import.meta.resolve('resock/testing')),
};
const Cjs = createRequire(import.meta.url)('resock');
const brandAcrossFormats =
  new ResockError('ERR_RESOCK_CLOSED', 'x') instanceof Cjs.ResockError &&
  new Cjs.ResockError('ERR_RESOCK_CLOSED', 'x') instanceof ResockError &&
  Cjs.ResockError !== ResockError;
`;

const CHECK_BODY = `
setTimeout(() => {
  console.error('check timed out');
  process.exit(2);
}, 10000).unref();

async function main() {
  const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: Number(process.env.ECHO_PORT) } });
  const sock = connect({ host: '127.0.0.1', port: proxy.port, framing: lines(), reconnect: { minDelay: 10, maxDelay: 50 } });
  const warnings = [];
  const failures = [];
  const messages = [];
  sock.on('warning', (w) => warnings.push(w.code + ': ' + w.message));
  sock.on('failure', (f) => failures.push(f.kind));
  const reply = () => new Promise((resolve) => sock.once('message', (m) => resolve(messages.push(m.toString()))));
  await sock.ready();
  let got = reply();
  sock.write('one');
  await got;
  const back = new Promise((resolve) => sock.once('connect', resolve));
  proxy.reset();
  await back;
  got = reply();
  sock.write('two');
  await got;
  const keepAlive = sock.stats().keepAlive.applied;
  await sock.close();
  await proxy.close();
  return { resolved, messages, failures, warnings, keepAlive, brandAcrossFormats };
}

main().then(
  (result) => console.log(JSON.stringify(result)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
`;
