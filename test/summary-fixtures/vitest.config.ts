import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Fixtures for test/src/test-summary.test.ts: vitest runs them on purpose, failures included, to
// give scripts/test-summary.mjs a real report. The suite's own config does not include them.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  test: { include: ['*.fixture.ts'], pool: 'forks', maxWorkers: 1 },
});
