// Decides, in a few milliseconds and with no dependencies, whether a bin may run its bundle
// (scripts/bundle.mjs): only while the bundle is newer than every file listed beside it.
import { readFileSync, statSync } from 'node:fs';

/** @param {URL} bundle @returns {boolean} */
export function bundleIsFresh(bundle) {
  const built = statSync(bundle, { throwIfNoEntry: false });
  if (!built) return false;
  let inputs;
  try {
    inputs = JSON.parse(readFileSync(new URL(`${bundle.href}.inputs.json`), 'utf8'));
  } catch {
    return false;
  }
  if (!Array.isArray(inputs) || inputs.length === 0) return false;
  for (const file of inputs) {
    if (typeof file !== 'string') return false;
    const s = statSync(file, { throwIfNoEntry: false });
    if (!s || s.mtimeMs > built.mtimeMs) return false;
  }
  return true;
}

/** Why the sources run instead, for a person at a terminal (stderr only, so `-o json` holds). */
export function explainFallback(name, bundle) {
  if (!process.stderr.isTTY) return;
  const why = statSync(bundle, { throwIfNoEntry: false }) ? 'older than its sources' : 'missing';
  process.stderr.write(
    `${name}: running the TypeScript sources through tsx (slower): ${bundle.pathname} is ${why}; \`pnpm build\` rebuilds it\n`,
  );
}

/**
 * What a bin does: imports `bundle` while it is fresh, else registers tsx's loader in this
 * process (no wrapper process: a signal reaches the program itself) and imports `sources`.
 * @param {string} name @param {URL} bundle @param {URL} sources
 */
export async function runFreshOrSources(name, bundle, sources) {
  if (bundleIsFresh(bundle)) return import(bundle.href);
  explainFallback(name, bundle);
  const { register } = await import('tsx/esm/api');
  register();
  return import(sources.href);
}
