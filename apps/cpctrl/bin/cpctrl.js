#!/usr/bin/env node
// Runs the bundle `pnpm build` writes (scripts/setup runs it), which starts in a fraction of a
// second; when it is missing or older than any of its sources, the TypeScript sources through
// tsx instead, so an edit is never hidden behind a stale bundle.
import { bundleIsFresh, explainFallback } from '../../../scripts/fresh-bundle.mjs';

const bundle = new URL('../dist/cpctrl.mjs', import.meta.url);
if (bundleIsFresh(bundle)) {
  await import(bundle.href);
} else {
  explainFallback('cpctrl', bundle);
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
