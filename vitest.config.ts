import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Socket tests measure detection times: keep them from competing for the 2 cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
