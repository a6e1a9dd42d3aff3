import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isOurProcess } from './process-group.js';

/**
 * A local task's `pid` file: "PID\n" from the /bin/sh wrapper (its command line names the task
 * folder), "PID START\n" from the spawner for a task it started without one (START: the
 * process's start time, field 22 of /proc/PID/stat).
 */
export interface PidFile {
  readonly pid: number;
  readonly start?: string;
}

/** The pid file's content, or undefined while there is none (or only part of one). */
export function parsePidFile(text: string): PidFile | undefined {
  const m = /^(\d+)(?: (\d+))?\n$/.exec(text);
  const pid = Number(m?.[1]);
  if (!m || !Number.isInteger(pid) || pid <= 1) return undefined;
  return m[2] === undefined ? { pid } : { pid, start: m[2] };
}

export function readPidFile(dir: string): PidFile | undefined {
  try {
    return parsePidFile(readFileSync(join(dir, 'pid'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether the pid file names a live process of the task in `dir` (a recycled pid is not). */
export function isTaskProcess(p: PidFile, dir: string): boolean {
  return isOurProcess(p.pid, dir, p.start);
}
