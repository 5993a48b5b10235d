// Compiles a benchmark worker the way `npm run build` compiles resock (tsup, target node20, no keepNames), for the
// measurements where the loader would distort the result: tsx compiles with esbuild's keepNames, which redefines `name`
// on every closure at creation, and each such closure then carries its own property dictionary. That is kilobytes per
// connection the published package does not have.
import { join } from 'node:path';
import { build } from 'tsup';
import { BENCH_DIR, REPO_ROOT } from './child.js';

// Inside node_modules, so the bundle's bare imports (eventemitter3, p-retry, koffi) resolve as they do for dist/.
const OUT_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'resock-bench');

/** Bundles bench/<name>.ts with src/ and returns the path of the JavaScript file. */
export async function compileWorker(name: string): Promise<string> {
  await build({
    entry: { [name]: join(BENCH_DIR, `${name}.ts`) },
    outDir: OUT_DIR,
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: false,
    sourcemap: false,
    splitting: false,
    clean: false,
    silent: true,
    // Only these options: the repo's tsup.config.ts builds the package, not this.
    config: false,
    external: ['koffi'],
  });
  return join(OUT_DIR, `${name}.js`);
}
