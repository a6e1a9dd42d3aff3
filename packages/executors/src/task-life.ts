import { randomUUID } from 'node:crypto';
import { lstatSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskRecord } from '@computepods/protocol';

/*
 * A local task folder is named by its task id, and ids come back: a build's task ids come from
 * its attempt records, which expire (CP_RECORD_MAX_AGE_S, 900 s) while a failed task's folder
 * stays for days (CP_JOB_KEEP_FAILED_S). So the claim a start makes on its folder (spawner.py's
 * `life` symlink) names one life of the task's record, not the id: the time of its last
 * `submitted` (the moment it joined the queue; a resume after a pause, a task MajorDomo queued
 * again, a record made anew for an id that came back: each a new life, never the same
 * millisecond for one id). A start finding its own life there follows that folder; any other is
 * stale, emptied and taken, its claim kept beside (retiredClaim): a start of a life that held the
 * folder once never runs there again, however late it comes (a dead runner's spawner reading its
 * last requests after the task, queued again, took the folder for its next life).
 */

/** The life of `rec` a start claims its folder for; undefined before it was ever submitted. */
export function lifeOf(rec: TaskRecord): string | undefined {
  for (let i = rec.history.length - 1; i >= 0; i--) {
    const h = rec.history[i];
    if (h?.state === 'submitted') return h.time;
  }
  return undefined;
}

/** The life that claimed the task folder `dir`; undefined when none did (or no folder). */
export function folderLife(dir: string): string | undefined {
  try {
    return readlinkSync(join(dir, 'life'));
  } catch {
    return undefined;
  }
}

/** When the folder was claimed (ms since the epoch), for a timeout; now if unknown. */
export function claimedAt(dir: string): number {
  try {
    return lstatSync(join(dir, 'life')).mtimeMs;
  } catch {
    return Date.now();
  }
}

/**
 * Claims the task folder `dir` for the life `life` with no start behind the claim, as a fence:
 * true when this call made it (a start of that life, late, now finds it claimed and starts
 * nothing: spawner.py's take_folder), false when a start of that life claimed it first. A claim
 * of another life (stale: the id came back) is replaced: moved aside, so that what was moved is
 * known (a start of `life` that made its claim meanwhile is put back, and its start stands),
 * and kept (retiredClaim): a late start of the life it named starts nothing.
 */
export function fenceLife(dir: string, life: string): boolean {
  mkdirSync(dir, { recursive: true });
  const link = join(dir, 'life');
  for (;;) {
    const held = claimAt(link);
    if (held === life) return false;
    if (held === null) {
      try {
        symlinkSync(life, link);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        continue; // claimed meanwhile: by whom?
      }
    }
    const aside = `${link}.${randomUUID()}`;
    try {
      renameSync(link, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      continue;
    }
    const moved = claimAt(aside);
    if (moved === life) {
      renameSync(aside, link);
      return false;
    }
    if (typeof moved === 'string') renameSync(aside, retiredClaim(dir, moved));
    else rmSync(aside, { recursive: true, force: true });
  }
}

/**
 * Where the claim of `life` is kept once another life took the folder (spawner.py's retired):
 * a late start of a life that held the folder once starts nothing there.
 */
export function retiredClaim(dir: string, life: string): string {
  return join(dir, `life.${Buffer.from(life).toString('hex')}`);
}

/** The life a claim names; null when there is none; undefined when it names none (not a link). */
function claimAt(link: string): string | null | undefined {
  try {
    return readlinkSync(link);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? null : undefined;
  }
}
