import { execFileSync } from 'node:child_process';

/** The processes this test process started that still run (its children), as "pid comm". */
export function children(): string[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], {
      encoding: 'utf8',
    })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([pid, comm]) => Number(pid) > 0 && comm !== 'ps') // not the ps listing them
      .map(([pid, comm]) => `${pid} ${comm}`);
  } catch {
    return []; // ps exits 1 when it lists nothing
  }
}
