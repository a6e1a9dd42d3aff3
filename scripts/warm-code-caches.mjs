// Writes every bundle's V8 code cache (scripts/code-cache.mjs) by starting each program once
// with `--help`, which answers without connecting anywhere and writes the cache as it exits.
// For an install whose programs' folders are not writable by the user they run as (the
// container image: deploy/Containerfile runs this before `USER`), where no start could write
// one and every start would compile its 3.5 MB again. Elsewhere the first start writes it.
//
//   node scripts/warm-code-caches.mjs      after `pnpm build`; exits 1 naming a bundle left
//                                          without a usable cache
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVICES, TOOLS } from './bundle.mjs';
import { readCache } from './code-cache.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Starts the bundle `outfile` (a loader `.mjs`, as scripts/bundle.mjs writes) with `--help` and
 * says whether its code now has a cache made from it: `{ outfile, ok, why }`.
 * @param {string} outfile
 */
export function warm(outfile) {
  const loader = resolve(root, outfile);
  const code = loader.replace(/\.mjs$/, '.cjs');
  const run = spawnSync(process.execPath, [loader, '--help'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 60_000,
  });
  if (run.status !== 0)
    return { outfile, ok: false, why: `--help exited ${run.status ?? run.signal}: ${run.stderr}` };
  const cache = readCache(`${code}.v8cache`, readFileSync(code));
  return cache
    ? { outfile, ok: true, why: `${cache.length} bytes` }
    : { outfile, ok: false, why: `no usable ${code}.v8cache after the start (is it writable?)` };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = [...TOOLS, ...SERVICES].map(({ outfile }) => warm(outfile));
  for (const r of results)
    process.stderr.write(`code cache: ${r.outfile}: ${r.ok ? 'written' : 'MISSING'} (${r.why})\n`);
  if (results.some((r) => !r.ok)) process.exit(1);
}
