#!/usr/bin/env node
// Runs the bundle `pnpm build` writes (scripts/setup runs it), which starts in a fraction of a
// second; when it is missing or older than any of its sources, the TypeScript sources through
// tsx instead, so an edit is never hidden behind a stale bundle.
import { runFreshOrSources } from '../../../scripts/fresh-bundle.mjs';

await runFreshOrSources(
  'inotify2nats',
  new URL('../dist/inotify2nats.mjs', import.meta.url),
  new URL('../src/main.ts', import.meta.url),
);
