import { type Dirent, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PeriodicSweep } from './periodic-sweep.js';
import { isTaskProcess, parsePidFile } from './pid-file.js';
import type { KeepPolicy } from './slurm-sweep.js';

/*
 * Ended local task folders do not stay for ever (one per task, thousands a day). A folder
 * `<jobs dir>/<task id>/` whose task is no longer the backend's (not queued, running, adopted
 * or being collected) and whose log is published goes, as a SLURM job folder does
 * (slurm-sweep.ts), `keep.okMs` after the wrapper wrote exit code 0 and `keep.failedMs` after
 * any other code. A folder without a complete exit file (the process killed with its spawner,
 * never started) goes `keep.failedMs` after it was last written, and never while its pid
 * names a live process of that folder. Only folders the backend makes are touched: a task id
 * for a name, holding nothing but the files the wrapper and the spawner write (and the spawner's
 * `life` symlink); anything else
 * in the jobs folder (the python `envs` when tasks_local_dir is the same folder, a folder
 * holding other files, a symlink) is left alone.
 */

/** A task folder's name: a task id (protocol's TaskSubmitted.taskId), never "." or "..". */
const TASK_DIR = /^[A-Za-z0-9_.:-]{1,200}$/;

/** What the wrapper and the spawner write into a task folder, and nothing else. */
export const TASK_FILES: readonly string[] = ['pid', 'exit', 'stdout', 'stderr'];
/** The spawner's claim on a folder for one life of the task's record (task-life.ts): a symlink. */
export const LIFE_LINK = 'life';

export interface TaskFolder {
  readonly name: string;
  /** The code in `exit` when it is complete ("<digits>\n"), else undefined. */
  readonly exitCode: number | undefined;
  /** When it ended (`exit`'s mtime), or, without an exit code, when it was last written (ms). */
  readonly at: number;
  /** Its `pid` names a live process started for this folder. */
  readonly alive: boolean;
}

/** The folders of `folders` past their keep time, leaving out those `watched` names. */
export function planLocalSweep(
  folders: readonly TaskFolder[],
  nowMs: number,
  keep: KeepPolicy,
  watched: (name: string) => boolean,
): string[] {
  const out: string[] = [];
  for (const f of folders) {
    if (watched(f.name) || f.alive) continue;
    const keepMs = f.exitCode === 0 ? keep.okMs : keep.failedMs;
    if (nowMs - f.at >= keepMs) out.push(f.name);
  }
  return out;
}

/** Folders read between two turns of the event loop. */
const PER_TURN = 64;
/** Folders being removed at once (their unlinks wait for the disk in the thread pool). */
const REMOVING_AT_ONCE = 4;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The task folders under `jobsDir` (see above for what counts as one), leaving out the names
 * in `skip`. `ended`: folders read before whose exit code was complete, taken as they were (an
 * ended folder does not change; a sweep reads each once). A folder that changes while it is
 * read is left out of this sweep. Read with plain system calls, PER_TURN folders a turn: a
 * thread-pool trip per call cost ten times the CPU (tens of thousands of folders at 1,000
 * tasks a second and the default keep time), and no turn is held long.
 */
export async function listTaskFolders(
  jobsDir: string,
  skip: ReadonlySet<string>,
  ended: ReadonlyMap<string, TaskFolder> = new Map(),
  oldLayout = false,
): Promise<TaskFolder[]> {
  let entries: Dirent[];
  try {
    entries = readdirSync(jobsDir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: TaskFolder[] = [];
  let read = 0;
  for (const e of entries) {
    // A symlink is not a directory here (readdir's types are lstat's): never followed.
    if (!e.isDirectory() || skip.has(e.name)) continue;
    if (!TASK_DIR.test(e.name) || e.name === '.' || e.name === '..') continue;
    let folder = ended.get(e.name);
    if (!folder) {
      folder = readTaskFolder(join(jobsDir, e.name), e.name, oldLayout);
      if (++read % PER_TURN === 0) await nextTurn();
    }
    if (folder) out.push(folder);
  }
  return out;
}

/**
 * The folder's entries when they are all the files a task folder holds, else undefined. Of the
 * old layout (oldLayout): only the wrapper's files, without the life claim, which came after
 * the task folders moved to projects/<project>/ (jobs-dir.ts): a folder holding one was made
 * since, by a pilot worker that keeps the top level.
 */
function ourFiles(dir: string, oldLayout = false): string[] | undefined {
  const entries = readdirSync(dir, { withFileTypes: true });
  const ours = (f: Dirent) =>
    f.isFile()
      ? TASK_FILES.includes(f.name)
      : !oldLayout && f.isSymbolicLink() && f.name === LIFE_LINK;
  if (!entries.every(ours)) return undefined;
  return entries.map((f) => f.name);
}

function readTaskFolder(dir: string, name: string, oldLayout: boolean): TaskFolder | undefined {
  try {
    const names = ourFiles(dir, oldLayout);
    if (!names?.length) return undefined;
    if (names.includes('exit')) {
      const exitAt = lstatSync(join(dir, 'exit')).mtimeMs;
      const text = readFileSync(join(dir, 'exit'), 'utf8');
      // Written last, by the wrapper as it exits (or by the spawner after it): the task is over.
      if (/^\d+\n$/.test(text))
        return { name, exitCode: Number(text.trim()), at: exitAt, alive: false };
    }
    let newest = lstatSync(dir).mtimeMs;
    for (const n of names) newest = Math.max(newest, lstatSync(join(dir, n)).mtimeMs);
    const pid = names.includes('pid')
      ? parsePidFile(readFileSync(join(dir, 'pid'), 'utf8'))
      : undefined;
    return { name, exitCode: undefined, at: newest, alive: !!pid && isTaskProcess(pid, dir) };
  } catch {
    return undefined; // changed while it was read: the next sweep reads it again
  }
}

/**
 * Removes one task folder: its files, then the folder itself; false, leaving it all, when it
 * holds anything else now. Something written into it in between keeps the folder (and that).
 * The unlinks go to the thread pool: on a busy disk each takes milliseconds, which must not
 * hold the event loop.
 */
export async function removeTaskFolder(
  jobsDir: string,
  name: string,
  oldLayout = false,
): Promise<boolean> {
  const dir = join(jobsDir, name);
  const code = (err: unknown) => (err as NodeJS.ErrnoException).code;
  let names: string[] | undefined;
  try {
    names = ourFiles(dir, oldLayout);
  } catch (err) {
    if (code(err) === 'ENOENT') return true;
    throw err;
  }
  if (!names) return false;
  await Promise.all(names.map((f) => rm(join(dir, f), { force: true })));
  try {
    await rmdir(dir);
    return true;
  } catch (err) {
    if (code(err) === 'ENOENT') return true;
    if (code(err) === 'ENOTEMPTY') return false;
    throw err;
  }
}

export interface TaskFolderSweepOptions {
  readonly jobsDir: string;
  /** Names in the jobs folder that are not task folders whatever they hold (the envs folder). */
  readonly notTasks: ReadonlySet<string>;
  readonly keep: KeepPolicy;
  /** Between two sweeps (the first comes with start). */
  readonly everyMs: number;
  /** The clock keep times are measured with. */
  readonly now: () => number;
  /** Asked at each sweep and before each removal: which task ids are still the backend's. */
  readonly watching: () => (taskId: string) => boolean;
  readonly log: (level: 'info' | 'warn', msg: string, data: Record<string, unknown>) => void;
  /**
   * jobsDir is a jobs_local_dir whose task folders moved to projects/<project>/ (c5e55c8):
   * only the folders it holds of before that move are swept, those without the life claim
   * (ourFiles); nobody else would ever remove them.
   */
  readonly oldLayout?: boolean;
}

/** Removes the ended task folders past their keep time, now and then (PeriodicSweep). */
export class TaskFolderSweep {
  readonly #o: TaskFolderSweepOptions;
  readonly #sweeper: PeriodicSweep;
  /** Ended folders seen by an earlier sweep and kept: not read again. */
  readonly #ended = new Map<string, TaskFolder>();
  readonly stats = { sweeps: 0, swept: 0 };

  constructor(options: TaskFolderSweepOptions) {
    this.#o = options;
    this.#sweeper = new PeriodicSweep({
      run: () => this.#sweep(),
      everyMs: options.everyMs,
      onError: (err) =>
        options.log('warn', 'could not sweep ended task folders', { err: String(err) }),
    });
  }

  /** Sweeps now, then every everyMs (from adopt, when every task still ours is known). */
  start(): void {
    this.#sweeper.start();
  }

  /** One sweep (resolves when done). Never fails: one that cannot run is logged. */
  sweepNow(): Promise<void> {
    return this.#sweeper.now();
  }

  close(): Promise<void> {
    return this.#sweeper.close();
  }

  async #sweep(): Promise<void> {
    this.stats.sweeps++;
    const { jobsDir } = this.#o;
    const oldLayout = this.#o.oldLayout ?? false;
    const folders = await listTaskFolders(jobsDir, this.#o.notTasks, this.#ended, oldLayout);
    const watched = this.#o.watching();
    this.#ended.clear();
    // A task folder taken up again (a task started once more in it) is read afresh.
    for (const f of folders)
      if (f.exitCode !== undefined && !watched(f.name)) this.#ended.set(f.name, f);
    const plan = planLocalSweep(folders, this.#o.now(), this.#o.keep, watched);
    const removed: string[] = [];
    // A few folders at once: each waits for its disk, not for the others.
    const queue = [...plan];
    const worker = async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        this.#ended.delete(name);
        // Taken up meanwhile (adopted, started again): left alone.
        if (this.#o.watching()(name)) continue;
        if (await removeTaskFolder(jobsDir, name, oldLayout)) removed.push(name);
      }
    };
    await Promise.all(Array.from({ length: REMOVING_AT_ONCE }, worker));
    this.stats.swept += removed.length;
    if (removed.length)
      this.#o.log('info', 'removed ended task folders', {
        count: removed.length,
        tasks: removed.slice(0, 20),
      });
  }
}
