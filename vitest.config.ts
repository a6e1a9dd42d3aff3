import { defineConfig } from 'vitest/config';

// Every package keeps its tests beside its code; cross-service tests live in test/.
// Real servers start once per test file, so files may run in parallel (2 cores here).
export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    teardownTimeout: 30_000,
  },
});
