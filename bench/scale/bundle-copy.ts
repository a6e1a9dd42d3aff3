import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * A copy of a bundle (scripts/bundle.mjs: the `<name>.mjs` loader and the files beside it of
 * the same name, without its code cache) in `dir`; returns the copy's loader. For starts under
 * other node flags than the bundle's own: V8 refuses a code cache made under other flags, and a
 * start without a usable one writes its own beside the code (scripts/code-cache.mjs), so two
 * sets of flags on one bundle spoil each other's cache at every start. The copy is started once
 * with `--help` under `flags` (as scripts/warm-code-caches.mjs does), which writes its cache as it
 * exits: a bench's starts of it are not the first to compile it.
 */
export function bundleCopy(loader: string, dir: string, flags: readonly string[]): string {
  const name = basename(loader, '.mjs');
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dirname(loader)))
    if (f.startsWith(`${name}.`) && !f.endsWith('.v8cache'))
      copyFileSync(join(dirname(loader), f), join(dir, f));
  const copy = join(dir, basename(loader));
  const warm = spawnSync(process.execPath, [...flags, copy, '--help'], { stdio: 'ignore' });
  if (warm.status !== 0) throw new Error(`${copy} --help under ${flags.join(' ')}: ${warm.status}`);
  return copy;
}
