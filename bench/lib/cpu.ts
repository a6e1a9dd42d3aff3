import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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

/**
 * Times a thread went to sleep waiting (its voluntary context switches, /proc/<pid>/task/<tid>/status):
 * on a service's event loop thread, one per wake-up, since it sleeps in epoll between wake-ups.
 */
export function sleepsOf(pid: number | undefined, tid: number | undefined = pid): number {
  if (!pid) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s*(\d+)$/m.exec(status)?.[1] ?? Number.NaN);
}

/** sleepsOf summed over every thread of a process (nats-server's goroutines run on many). */
export function sleepsOfAllThreads(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += sleepsOf(pid, Number(tid));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return sum;
}

/**
 * What one wake-up of an idle Node.js event loop costs on this machine, in CPU µs: a child node
 * process sleeps on a 2 ms timer `wakes` times doing nothing else, and its CPU is divided by
 * them. The floor under a service's cost per message it waits for (a wake-up each), whatever
 * its JavaScript does then; on a virtual machine a wake-up costs far more than on bare metal.
 */
export function idleWakeCostUs(wakes = 1000): number {
  const script = `const n=${wakes};let i=0;const c0=process.cpuUsage();const t=()=>{if(++i<n)setTimeout(t,2);else{const c=process.cpuUsage(c0);console.log((c.user+c.system)/n)}};setTimeout(t,2);`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : Number.NaN;
}
