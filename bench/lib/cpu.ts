import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim()) || 100;

/**
 * CPU time (user + system, ms) a process has used so far, from /proc: what another process
 * (a nats-server) spends on our work, which wall time on a shared machine hides.
 */
export function cpuMsOf(pid: number | undefined, statFile = `/proc/${pid}/stat`): number {
  if (!pid) return Number.NaN;
  // statFile: one thread's, `/proc/<pid>/task/<tid>/stat` (same fields).
  const stat = readFileSync(statFile, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/**
 * CPU time (user + system, ms) of a process's children that have ended and been waited for:
 * what a make run (and its compilers) cost its parent, or the tasks a runner's spawner started.
 */
export function childrenCpuMsOf(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime are fields 16 and 17 of the line, 14 and 15 after the command name.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS;
}

/**
 * write(2)/writev(2) calls the calling thread has made so far (/proc/thread-self/io `syscw`):
 * on the event loop's thread, every socket and pipe write of this process's JavaScript.
 */
export function writeSyscallsOfThisThread(): number {
  const m = /^syscw:\s*(\d+)$/m.exec(readFileSync('/proc/thread-self/io', 'utf8'));
  return m?.[1] ? Number(m[1]) : Number.NaN;
}
