import { realpathSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { isAbsolute, posix, relative } from 'node:path';
import { TaskRefusedError } from './errors.js';

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** True when `path` is `root` or below it (both absolute and normalised). */
function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith('../') && !isAbsolute(rel));
}

/** The roots as the operator wrote them, for messages. */
export function rootsLabel(roots: readonly string[]): string {
  return `CP_WORKSPACE_ROOTS=${roots.join(':')}`;
}

/**
 * Refuses a task's cwd unless it lies inside one of the workspace roots. Both sides are
 * resolved with realpath, so neither a symlink in the workspace (ws/keys -> ~/.ssh) nor a
 * symlinked root can carry a task elsewhere. `remote`: the cwd is a path on the cluster
 * (a slurm_ssh task without declared files), which this machine cannot resolve; it is then
 * checked as text, with any `..` refused.
 */
export async function checkCwd(
  cwd: string,
  roots: readonly string[],
  options: { remote?: boolean } = {},
): Promise<TaskRefusedError | undefined> {
  if (CONTROL_CHARS.test(cwd))
    return refuse(cwd, 'holds a control character (newline, tab ...); the task was not run');
  if (!isAbsolute(cwd)) return refuse(cwd, 'is not an absolute path; the task was not run');
  if (roots.length === 0)
    return refuse(
      cwd,
      'cannot be allowed: this runner has no workspace roots, so it runs no task; set CP_WORKSPACE_ROOTS (colon-separated absolute paths) or CP_WORKSPACE on the runner',
    );
  if (options.remote) {
    if (cwd.split('/').includes('..')) return refuse(cwd, "climbs with '..'; the task was not run");
    const norm = posix.normalize(cwd);
    return roots.some((root) => within(posix.normalize(root), norm))
      ? undefined
      : outside(cwd, roots);
  }
  // The cwd and the roots are resolved at once (one wait, not one after the other).
  const [real, ...realRoots] = await Promise.all([resolveNow(cwd), ...roots.map(resolveNow)]);
  if (real === undefined)
    return refuse(
      cwd,
      `does not exist on the runner (or cannot be resolved); the task was not run (${rootsLabel(roots)})`,
    );
  if (realRoots.some((root) => root !== undefined && within(root, real))) return undefined;
  return outside(cwd, roots, real);
}

// Module functions, not closures made for every check: the refusals are rare, the checks one a
// task (and a closure made per call costs a defineProperty each where names are kept: tsx).
function refuse(cwd: string, why: string): TaskRefusedError {
  return new TaskRefusedError('cwd', `cwd ${JSON.stringify(cwd)} ${why}`);
}

function outside(cwd: string, roots: readonly string[], resolved?: string): TaskRefusedError {
  return refuse(
    cwd,
    `is outside the runner's workspace roots (${rootsLabel(roots)})${resolved && resolved !== cwd ? `: it resolves to ${JSON.stringify(resolved)}` : ''}; the task was not run. Run it from a workspace inside them, or add its workspace to CP_WORKSPACE_ROOTS on the runner`,
  );
}

/** Deferred resolutions: the paths checks asked for this turn of the event loop. */
let asked:
  | Map<string, { done: Promise<string | undefined>; give: (real?: string) => void }>
  | undefined;

/**
 * The path's realpath, resolved now: never kept once answered (a symlink may be changed). The
 * checks asked in one turn of the event loop (a burst of tasks, most in the same cwd under the
 * same roots) share one resolution per path, made in that turn's check phase (setImmediate),
 * so after every check sharing it began: nothing resolved before a check is given to it.
 * realpath(3) in this thread: a few readlink calls on a workspace path (~8 µs of CPU), where
 * the promise API's trip through libuv's pool cost ~45 µs of CPU and one more wakeup of the
 * event loop per task that came alone (a chef's compile). A workspace on a mount that hangs
 * holds the event loop while it does, as the task's spawn in it would hold its lane.
 */
function resolveNow(path: string): Promise<string | undefined> {
  if (!asked) {
    asked = new Map();
    setImmediate(resolveAsked);
  }
  let pending = asked.get(path);
  if (!pending) {
    let give: (real?: string) => void = () => {};
    const done = new Promise<string | undefined>((resolve) => {
      give = resolve;
    });
    pending = { done, give };
    asked.set(path, pending);
  }
  return pending.done;
}

function resolveAsked(): void {
  const paths = asked;
  asked = undefined;
  for (const [path, { give }] of paths ?? []) {
    let real: string | undefined;
    try {
      real = realpathSync.native(path);
    } catch {
      real = undefined;
    }
    give(real);
  }
}

/** The roots that do not exist (or cannot be resolved) now: said at start, for the operator. */
export async function missingRoots(roots: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const root of roots) if (!(await realpath(root).catch(() => undefined))) missing.push(root);
  return missing;
}
