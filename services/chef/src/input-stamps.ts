import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Confinement } from './confine.js';
import { type HashCache, statStamp } from './hash-cache.js';

/** A build's inputs as they were when the task was submitted: path → statStamp (or 'missing'). */
export type Stamps = Map<string, string>;

/**
 * File system calls here are synchronous: stats and folders that exist already, microseconds
 * each on a local disk, where each through libuv's thread pool cost tens of microseconds of CPU
 * in hand-offs between threads (pnpm bench cbuild, issue #15).
 */
function stamp(full: string): string {
  try {
    const st = statSync(full, { bigint: true, throwIfNoEntry: false });
    return st ? statStamp(st) : 'missing';
  } catch {
    return 'missing';
  }
}

/** The stamps of `paths` (confined by `confine`), those in `known` taken as they are. */
export async function stampInputs(
  confine: Confinement,
  paths: readonly string[],
  known: ReadonlyMap<string, string>,
): Promise<Stamps> {
  const stamps: Stamps = new Map();
  for (const p of paths) stamps.set(p, known.get(p) ?? stamp(await confine.check(p)));
  return stamps;
}

/** Makes the folders of `outputs` (confined by `confine`), each folder once. */
export async function makeFolders(confine: Confinement, outputs: readonly string[]): Promise<void> {
  const dirs = new Set<string>();
  for (const out of outputs) dirs.add(dirname(await confine.check(out)));
  for (const dir of dirs) mkdirSync(dir, { recursive: true });
}

/**
 * The first stamped input, in order, whose bytes are no longer `want` (hashed only when its
 * stamp moved); an input turned into a symlink leading out while the task ran counts as changed.
 */
export async function changedInputs(
  confine: Confinement,
  hashes: HashCache,
  want: Readonly<Record<string, string>>,
  before: Stamps,
): Promise<string | undefined> {
  for (const [path, was] of before) {
    const full = await confine.check(path).catch(() => undefined);
    if (!full) return path;
    if (stamp(full) === was) continue;
    if ((await hashes.digest(full).catch(() => undefined))?.sha256 !== want[path]) return path;
  }
  return undefined;
}
