// `npm test` runs this first: test/package.test.ts checks the built package, so a fresh clone (no dist/) or an edit
// under src/ since the last build would fail it. Building only then keeps `npm test` correct without paying for a build
// on every run (.ci/run has just built).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** Every dist/ file the manifest points at; the same list test/package.test.ts checks. */
function builtTargets() {
  const out = [];
  const walk = (v) => {
    if (typeof v === 'string') out.push(v.replace(/^\.\//, ''));
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(walk);
  };
  walk([pkg.main, pkg.module, pkg.types, pkg.bin, pkg.exports]);
  return [...new Set(out)].filter((t) => t.startsWith('dist/'));
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function staleReason() {
  const targets = builtTargets();
  const missing = targets.filter((t) => !existsSync(join(root, t)));
  if (missing.length > 0) return `${missing[0]} is missing`;
  const builtAt = Math.min(...targets.map((t) => statSync(join(root, t)).mtimeMs));
  const inputs = [join(root, 'src'), join(root, 'tsup.config.ts'), join(root, 'package.json')];
  const newest = Math.max(...inputs.map((p) => (statSync(p).isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)));
  return newest > builtAt ? 'dist/ is older than the sources' : undefined;
}

const reason = staleReason();
if (reason !== undefined) {
  console.log(`${reason}: building first (npm run build)`);
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}
