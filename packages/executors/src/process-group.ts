import { readdirSync, readFileSync } from 'node:fs';

/**
 * Whether pid is a live process (not a zombie) whose command line holds `marker` (the task's
 * folder, which the wrapper gets as an argument), or, when `start` is given, that started then
 * (startTimeOf; a task the spawner started without a wrapper): a recycled pid belongs to
 * someone else.
 */
export function isOurProcess(pid: number, marker: string, start?: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name (which may itself hold spaces).
    const after = stat.slice(stat.lastIndexOf(')') + 2);
    const state = after.slice(0, 1);
    if (state === 'Z' || state === 'X') return false;
    if (start !== undefined) return after.split(' ')[19] === start;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(marker);
  } catch {
    return false;
  }
}

/**
 * The kernel's start time of pid (clock ticks since boot, field 22 of /proc/<pid>/stat), or
 * undefined when there is no such process: with the pid, it names one process for good.
 */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Sends a signal to a whole process group; false when the group is already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a process of group `pgid` is still alive (a zombie does not count: it runs nothing
 * and is gone once reaped). The kernel never gives a live group's id to another process.
 */
export function groupAlive(pgid: number): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // Zombies answer signals too: look for a member that is not one.
  let pids: string[];
  try {
    pids = readdirSync('/proc');
  } catch {
    return true;
  }
  const group = String(pgid);
  for (const pid of pids) {
    if (pid.charCodeAt(0) > 57) continue; // not a process: /proc/self, /proc/meminfo ...
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // After the parenthesised command name: state, ppid, pgrp.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 3);
    if (pgrp === group && state !== 'Z' && state !== 'X') return true;
  }
  return false;
}
