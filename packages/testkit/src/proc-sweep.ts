import { readdirSync, readlinkSync } from 'node:fs';

/**
 * PIDs of processes whose cwd or an open file lies under dir. A fixture's temp dir is unique,
 * so this finds exactly the processes that fixture started (and their orphans), never others.
 */
export function processesUsing(dir: string): number[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const hit = (p: string) => p === dir || p.startsWith(prefix);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (hit(readlinkSync(`/proc/${pid}/cwd`))) {
        found.push(pid);
        continue;
      }
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/ \(deleted\)$/, '');
        if (hit(target)) {
          found.push(pid);
          break;
        }
      }
    } catch {
      // exited meanwhile, or not ours to inspect
    }
  }
  return found;
}

/** SIGKILLs processesUsing(dir); returns the PIDs signalled. */
export function killProcessesUsing(dir: string): number[] {
  const pids = processesUsing(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids;
}
