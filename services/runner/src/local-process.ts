import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LocalRun {
  readonly pid: number;
  readonly dir: string;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  readonly exitPath: string;
  /** Resolves with the exit code (undefined: killed by a signal before the wrapper wrote it). */
  readonly done?: Promise<number | undefined>;
}

// The task runs under a wrapper shell that writes its exit code to a file (atomically), in its
// own process group, detached: a runner killed with SIGKILL leaves the task running, and the
// restarted runner collects the exit code from the file instead of running the task again.
const WRAPPER = '/bin/sh -c "$1"; ec=$?; printf %s "$ec" > "$2.tmp" && mv "$2.tmp" "$2"';

export function startLocal(
  dir: string,
  command: string,
  cwd: string,
  env: Record<string, string>,
): LocalRun {
  mkdirSync(dir, { recursive: true });
  const stdoutPath = join(dir, 'stdout');
  const stderrPath = join(dir, 'stderr');
  const exitPath = join(dir, 'exit');
  const out = openSync(stdoutPath, 'a');
  const err = openSync(stderrPath, 'a');
  const child = spawn('/bin/sh', ['-c', WRAPPER, 'cp-task', command, exitPath], {
    cwd,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', out, err],
  });
  closeSync(out);
  closeSync(err);
  // Not unref'd: while this runner lives, the exit event tells us at once (no polling).
  const done = new Promise<number | undefined>((resolve) => {
    child.on('exit', () => resolve(readExit(exitPath)));
    child.on('error', () => resolve(undefined));
  });
  if (child.pid === undefined) throw new Error(`could not start /bin/sh for task in ${dir}`);
  return { pid: child.pid, dir, stdoutPath, stderrPath, exitPath, done };
}

export function runPaths(dir: string): Omit<LocalRun, 'pid'> {
  return {
    dir,
    stdoutPath: join(dir, 'stdout'),
    stderrPath: join(dir, 'stderr'),
    exitPath: join(dir, 'exit'),
  };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readExit(exitPath: string): number | undefined {
  if (!existsSync(exitPath)) return undefined;
  const n = Number(readFileSync(exitPath, 'utf8').trim());
  return Number.isInteger(n) ? n : undefined;
}

/**
 * Waits for the exit file. Returns undefined if the process is gone without writing one
 * (killed by a signal), so the caller can say the task died rather than hang.
 */
export async function waitExit(
  run: { pid: number; exitPath: string },
  timeoutMs?: number,
): Promise<number | 'timeout' | undefined> {
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    const code = readExit(run.exitPath);
    if (code !== undefined) return code;
    if (!alive(run.pid)) return readExit(run.exitPath);
    if (Date.now() > deadline) return 'timeout';
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** SIGTERM then SIGKILL to the whole process group. */
export async function killGroup(pid: number, graceMs = 2_000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const end = Date.now() + graceMs;
  while (alive(pid) && Date.now() < end) await sleep(20);
  signal('SIGKILL');
}
