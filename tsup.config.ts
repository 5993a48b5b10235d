import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts', cli: 'src/cli/main.ts' },
  // import.meta.url in the CJS build (used to load the optional koffi lazily).
  shims: true,
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  // p-retry is ESM-only: bundling it lets CommonJS users require('resock').
  noExternal: ['p-retry', 'is-network-error'],
  // koffi is an optional native dependency, loaded lazily at run time when present.
  external: ['koffi'],
});
