#!/usr/bin/env node
// Runs the bundle `pnpm build` writes (scripts/setup runs it); when it is missing or older than
// any of its sources, the TypeScript sources through tsx, so an edit is never hidden behind a
// stale bundle.
import { bundleIsFresh, explainFallback } from '../../../scripts/fresh-bundle.mjs';

const bundle = new URL('../dist/inotify2nats.mjs', import.meta.url);
if (bundleIsFresh(bundle)) {
  await import(bundle.href);
} else {
  explainFallback('inotify2nats', bundle);
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
