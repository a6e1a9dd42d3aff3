import { constants, createReadStream, openSync } from 'node:fs';
import { lstat, mkdir, realpath, stat } from 'node:fs/promises';
import { posix, relative, sep } from 'node:path';
import { CpError, checkRelativePath, type TaskSubmitted } from '@computepods/protocol';
import { commandPath } from '@computepods/transport';

/** A local file copied into the job folder before the job is submitted. */
export interface StagedCopy {
  /** Absolute local path (inside the task's cwd). */
  readonly from: string;
  /** Relative to the job folder. */
  readonly to: string;
}

/** What a job folder holds besides its script: input copies and the output folders. */
export interface JobTree {
  readonly copies: readonly StagedCopy[];
  /** Relative to the job folder; created empty, so commands can write their outputs. */
  readonly dirs: readonly string[];
}

/**
 * A task's declared file cannot be staged or collected: missing, outside cwd, not a regular
 * file. Not retryable: the same task would fail the same way.
 */
export class TaskFileError extends CpError {
  constructor(
    readonly field: 'files.inputs' | 'files.outputs' | 'files.auxiliaries',
    readonly path: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super('CP_TASK_FILE', `${field} ${JSON.stringify(path)}: ${reason}`, options);
  }
}

/**
 * Opens a staged input for reading without following a symlink: its path was resolved when
 * the tree was made, and a symlink swapped in since must not carry the read elsewhere.
 */
export function readInput(path: string): ReturnType<typeof createReadStream> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  return createReadStream(path, { fd });
}

/** The folder a task with declared files runs in: `<job folder>/<index>.work`. */
export function workDirOf(jobDir: string, index: number): string {
  return posix.join(jobDir, `${index}.work`);
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep);
}

/**
 * A declared path, normalised: relative, not leaving cwd by '..', and without control
 * characters, since it ends up on command lines (mkdir, cat, sha256sum over sudo or SSH).
 */
function checkedRel(rel: string, field: TaskFileError['field']): string {
  try {
    const norm = checkRelativePath(rel);
    commandPath(norm, field);
    return norm;
  } catch (err) {
    throw new TaskFileError(field, rel, (err as Error).message, { cause: err });
  }
}

/**
 * The absolute local path of a declared file, refused when it leaves cwd — by `..` (checked
 * again here, whatever the message said) or through a symlink on the way.
 */
export async function confined(
  cwd: string,
  rel: string,
  field: TaskFileError['field'],
): Promise<string> {
  const norm = checkedRel(rel, field);
  const root = await realpath(cwd);
  const full = posix.join(root, norm);
  // The nearest folder on the way that exists must resolve inside cwd: a symlinked folder
  // (out -> /etc) would otherwise carry a read or a write outside.
  let dir = posix.dirname(full);
  let real = await realpath(dir).catch(() => undefined);
  while (real === undefined && dir !== root && dir !== '/') {
    dir = posix.dirname(dir);
    real = await realpath(dir).catch(() => undefined);
  }
  if (real !== undefined && real !== root && !inside(root, real))
    throw new TaskFileError(field, rel, `its folder leads outside ${cwd} through a symlink`);
  return full;
}

/**
 * A task's part of the job folder: each input copied to `<index>.work/<input>` and each
 * output's folder created there. An input that is missing, not a regular file, or reached
 * through a symlink leading out of cwd is refused, and so is an output whose place in cwd is
 * a symlink or not a regular file (see outputPlace).
 */
export async function taskTree(index: number, task: TaskSubmitted): Promise<JobTree> {
  if (!task.files) return { copies: [], dirs: [] };
  const work = `${index}.work`;
  const copies: StagedCopy[] = [];
  const dirs = new Set([work]);
  const root = await realpath(task.cwd);
  for (const rel of task.files.inputs) {
    const from = await confined(task.cwd, rel, 'files.inputs');
    const real = await realpath(from).catch(() => undefined);
    if (real === undefined) throw new TaskFileError('files.inputs', rel, `missing in ${task.cwd}`);
    if (!inside(root, real))
      throw new TaskFileError('files.inputs', rel, `a symlink leading outside ${task.cwd}`);
    if (!(await stat(real)).isFile())
      throw new TaskFileError('files.inputs', rel, 'not a regular file');
    copies.push({ from: real, to: posix.join(work, checkedRel(rel, 'files.inputs')) });
  }
  for (const [field, list] of [
    ['files.outputs', task.files.outputs],
    ['files.auxiliaries', task.files.auxiliaries ?? []],
  ] as const)
    for (const rel of list) {
      await outputPlace(task.cwd, rel, field);
      const d = posix.dirname(checkedRel(rel, field));
      if (d !== '.') dirs.add(posix.join(work, d));
    }
  return { copies, dirs: [...dirs] };
}

/** The trees of a job's tasks as one. */
export function mergeTrees(trees: readonly JobTree[]): JobTree {
  return {
    copies: trees.flatMap((t) => t.copies),
    dirs: [...new Set(trees.flatMap((t) => t.dirs))].sort(),
  };
}

/**
 * A declared output's place in cwd, confined to cwd. What is there now must be a regular file
 * or nothing: a symlink (authorized_keys -> ~/.ssh/authorized_keys) is refused rather than
 * replaced or followed, and so is a folder or a device. Checked before the job is submitted
 * and again before each copy back.
 */
async function outputPlace(
  cwd: string,
  rel: string,
  field: 'files.outputs' | 'files.auxiliaries' = 'files.outputs',
): Promise<string> {
  const full = await confined(cwd, rel, field);
  const there = await lstat(full).catch(() => undefined);
  if (there?.isSymbolicLink())
    throw new TaskFileError(
      field,
      rel,
      `is a symlink in ${cwd}; outputs never replace or follow one, remove it and run the task again`,
    );
  if (there && !there.isFile())
    throw new TaskFileError(field, rel, `exists in ${cwd} and is not a regular file`);
  return full;
}

/** Where a declared output (or auxiliary) goes in cwd (see outputPlace), its folder made. */
export async function outputTarget(
  cwd: string,
  rel: string,
  field: 'files.outputs' | 'files.auxiliaries' = 'files.outputs',
): Promise<string> {
  const full = await outputPlace(cwd, rel, field);
  await mkdir(posix.dirname(full), { recursive: true });
  return full;
}
