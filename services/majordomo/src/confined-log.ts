import { constants } from 'node:fs';
import { open, readlink, realpath } from 'node:fs/promises';
import { isAbsolute, relative } from 'node:path';
import { CpError } from '@computepods/protocol';

type LogRefusal = 'CP_LOG_OUTSIDE_ROOTS' | 'CP_NO_LOG' | 'CP_TASK_NO_LOG' | 'CP_UNKNOWN_TASK';

/** A task log that is not served: not readable here (404) or outside the runners' roots (403). */
export class LogRefused extends CpError<LogRefusal> {
  constructor(
    readonly status: 403 | 404,
    code: LogRefusal,
    message: string,
  ) {
    super(code, message);
  }
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/**
 * Reads a task's log file only if it lies inside one of `roots` (the runners' job folders):
 * a TaskRecord is data anyone who may write the tasks bucket can forge, so its stdoutPath
 * must not choose what MajorDomo reads (e.g. its own API token file). Symlinks are resolved
 * first, the file is opened without following a last-moment symlink, and on Linux the opened
 * descriptor's path is checked again, so swapping a folder between the check and the read
 * does not get around it.
 */
export async function readConfinedLog(path: string, roots: readonly string[]): Promise<string> {
  const notHere = () =>
    new LogRefused(404, 'CP_NO_LOG', `${path} is on the runner's host, not readable here`);
  const outside = () =>
    new LogRefused(
      403,
      'CP_LOG_OUTSIDE_ROOTS',
      `${path} is not inside a runner's job folder (CP_LOG_ROOTS), so MajorDomo does not read it; if a runner really keeps its task folders there, add that folder to CP_LOG_ROOTS`,
    );
  if (!isAbsolute(path)) throw outside();
  const realRoots = (
    await Promise.all(roots.map((r) => realpath(r).catch(() => undefined)))
  ).filter((r): r is string => r !== undefined);
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    // Refuse first what is outside the roots anyway, so existence outside them is not probed.
    if (!roots.some((r) => inside(r, path))) throw outside();
    throw notHere();
  }
  if (!realRoots.some((r) => inside(r, real))) throw outside();
  // O_NONBLOCK: a FIFO planted in a job folder must not hang the request (checked below).
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const fh = await open(real, flags).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ELOOP' ? outside() : notHere();
  });
  try {
    const opened = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => real);
    if (!realRoots.some((r) => inside(r, opened))) throw outside();
    if (!(await fh.stat()).isFile()) throw outside();
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}
