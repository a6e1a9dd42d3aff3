import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Parent pid of every process, from /proc/PID/stat (field 4, after the parenthesised name). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.set(pid, ppid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The processes below pid, children first, down to `depth` levels (default all). */
export function descendantsOf(pid: number, depth = Number.POSITIVE_INFINITY): number[] {
  const ppids = parents();
  const found: number[] = [];
  let level = [pid];
  for (let d = 0; d < depth && level.length > 0; d++) {
    const next: number[] = [];
    for (const [child, parent] of ppids) if (level.includes(parent)) next.push(child);
    found.push(...next);
    level = next;
  }
  return found;
}

/**
 * Whether process `pid` exists and is not a zombie (exited, not yet reaped), from its state in
 * /proc/PID/stat (read after the last `)`: a process name may hold `) Z` itself).
 */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * SIGKILLs pid and everything below it (found before the first signal, so orphans are still
 * known), and resolves once none of them is alive.
 */
export async function killTree(pid: number): Promise<void> {
  const all = [pid, ...descendantsOf(pid)];
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  while (all.some(isAlive)) await sleep(10);
}
