import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Examples import 'resock' as users do; tsconfig paths map it to src so no build is needed first.
  resolve: { tsconfigPaths: true },
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Socket tests measure detection times: keep them from competing for the 2 cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
