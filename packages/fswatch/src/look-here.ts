import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { CheckItem, CheckResult, WorkerPool } from './pool.js';
import { LOOK_SOURCE } from './worker-source.js';

/** A look at this many paths or fewer is made in the event loop's thread... */
export const HERE_MAX_PATHS = 8;
/** ...reading only files of at most this size there; bigger ones go to a worker. */
export const HERE_MAX_BYTES = 64 * 1024;

type HereResult = CheckResult | { kind: 'large' };

/**
 * The workers' own `check` (LOOK_SOURCE, one implementation for both), compiled for this
 * thread with fs and crypto handed in: a CommonJS string cannot be imported.
 */
const checkHere = new Function(
  'fs',
  'crypto',
  'Buffer',
  `'use strict';\n${LOOK_SOURCE}\nreturn check;`,
)(fs, crypto, Buffer) as (item: CheckItem & { maxBytes?: number }, bufSize: number) => HereResult;

/**
 * Looks at `items` (stat, and hash if they moved), in order. A few small files are looked at
 * here: a worker's round trip (a structured clone each way, two thread wake-ups) costs more CPU
 * than the lstat and the read of a few KiB it carries; in pnpm bench cbuild, where every compile
 * brings a look at its `.o` and `.d` of their own, the round trips were a quarter of the
 * fswatcher's CPU. A burst (more than HERE_MAX_PATHS paths) and big files go to the workers, so
 * the event loop never waits on much I/O.
 */
export async function lookAt(pool: WorkerPool, items: CheckItem[]): Promise<CheckResult[]> {
  if (items.length > HERE_MAX_PATHS) return pool.check(items);
  const res = items.map((it) => checkHere({ ...it, maxBytes: HERE_MAX_BYTES }, HERE_MAX_BYTES));
  const large: number[] = [];
  for (const [i, r] of res.entries()) if (r.kind === 'large') large.push(i);
  if (large.length > 0) {
    const there = await pool.check(large.map((i) => items[i] as CheckItem));
    for (const [k, i] of large.entries()) res[i] = there[k] as CheckResult;
  }
  return res as CheckResult[];
}
