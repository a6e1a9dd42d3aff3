#!/usr/bin/env node
// Starts the majordomo service from the bundle `pnpm build` writes (scripts/bundle.mjs), in a
// fraction of the time tsx takes; while the bundle is missing or older than any of its sources,
// from the TypeScript sources through tsx instead, so an edit is never hidden behind it.
import { runFreshOrSources } from '../../../scripts/fresh-bundle.mjs';

await runFreshOrSources(
  'majordomo',
  new URL('../dist/majordomo.mjs', import.meta.url),
  new URL('../src/main.ts', import.meta.url),
);
