import { defineConfig } from 'vitest/config';

// Every package keeps its tests beside its code; cross-service tests live in test/.
// Real servers start once per test file, so files may run in parallel (2 cores here).
export default defineConfig({
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'apps/*/src/**/*.test.ts',
      'services/*/src/**/*.test.ts',
      'test/**/*.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    teardownTimeout: 30_000,
    // expect.poll waits for a live system (real services, a real browser) on a shared machine:
    // its bound only ends a test that will not pass, as Stack.until's 30 s does. Vitest's 1 s
    // default made every poll a timing assertion (a page had to reflect a four-process build
    // within a second, which a loaded CI machine does not promise).
    expect: { poll: { timeout: 30_000 } },
  },
});
