import { posix } from 'node:path';
import type { Logger } from '@computepods/bus';
import { commandFailed, type KeepPolicy, type SlurmHost } from '@computepods/executors';

/**
 * Ended pilots' folders do not stay on the cluster for ever, and their NATS credentials not a
 * moment longer than the pilot: a pilot folder (`<jobs dir>/pilot-<queue>-<8 hex>`: job.sh,
 * the worker's resource, its credentials, its tasks' folders and logs, the stage folders of
 * its staged tasks) whose job is no longer queued or running loses its `nats.creds` at the
 * next sweep, and is removed once it is past its keep time, as a per-job SLURM folder is
 * (slurm-sweep.ts): `okMs` after the pilot ended when the worker stopped by itself and every
 * task it ran exited 0 with its files back, `failedMs` otherwise (a crash, a failed task, a
 * stage folder left) so it can be looked into. The job script writes its SLURM job id into
 * `job.id` first thing; a folder without one whose job squeue does not list (by its folder) was
 * cancelled before it started: it loses its credentials a minute after it was made and goes
 * `failedMs` after.
 */

/**
 * Lists the pilot folders under $1 whose name starts `pilot-$2-`, with the cluster's clock: a
 * first line `now <epoch s>`, then per folder: name, job id (job.id, may be empty), when it
 * was last written (the newest of the folder, job.id, job.out, job.err), whether it ended well
 * (1/0: the worker logged its own stop, no stage folder is left, every task folder has exit 0),
 * and whether it still holds credentials (1/0).
 */
export const PILOT_SWEEP_LIST_SCRIPT = `printf 'now\\t%s\\n' "$(date +%s)"
for d in "$1"/pilot-"$2"-*/; do
  [ -d "$d" ] || continue
  d=\${d%/}; k=\${d##*/}
  id=; if [ -r "$d/job.id" ]; then read -r id < "$d/job.id" || id=; fi
  t=$(stat -c %Y -- "$d") || continue
  for f in "$d/job.id" "$d/job.out" "$d/job.err"; do
    if [ -e "$f" ]; then m=$(stat -c %Y -- "$f") && [ "$m" -gt "$t" ] && t=$m; fi
  done
  ok=0
  if grep -qs '"msg":"pilot worker stopped"' "$d/job.err" "$d/job.out"; then ok=1; fi
  for s in "$d"/stage/*; do if [ -e "$s" ]; then ok=0; fi; done
  for e in "$d"/tasks/*/; do
    [ -d "$e" ] || continue
    v=; if [ -r "\${e}exit" ]; then read -r v < "\${e}exit" || v=; fi
    [ "$v" = 0 ] || ok=0
  done
  c=0; if [ -e "$d/nats.creds" ]; then c=1; fi
  printf '%s\\t%s\\t%s\\t%s\\t%s\\n' "$k" "$id" "$t" "$ok" "$c"
done`;

/** A pilot folder without a job id is left alone this long: its sbatch may be on its way. */
const UNSTARTED_GRACE_MS = 60_000;

export interface PilotSweepPlan {
  /** Ended pilots' folders past their keep time: remove. */
  readonly remove: readonly string[];
  /** Ended pilots' folders kept a while yet, still holding credentials: remove those. */
  readonly dropCreds: readonly string[];
}

/** What pilots are still alive: their SLURM job ids and their folders' names. */
export interface LivePilots {
  readonly jobIds: ReadonlySet<string>;
  readonly dirs: ReadonlySet<string>;
}

/** Which folders of a PILOT_SWEEP_LIST_SCRIPT listing go, and which lose their credentials. */
export function planPilotSweep(
  stdout: string,
  queue: string,
  keep: KeepPolicy,
  live: LivePilots,
): PilotSweepPlan {
  const name = new RegExp(`^pilot-${escapeRegExp(queue)}-[0-9a-f]{8}$`);
  const lines = stdout.split('\n').map((l) => l.split('\t'));
  const now = Number(lines.find((l) => l[0] === 'now')?.[1]);
  const remove: string[] = [];
  const dropCreds: string[] = [];
  if (!Number.isFinite(now)) return { remove, dropCreds };
  for (const [key, jobId, when, ok, creds] of lines) {
    // Another queue's (a longer name with this one's as a prefix), or one still alive.
    if (!key || !name.test(key) || live.dirs.has(key)) continue;
    const t = Number(when);
    if (!Number.isFinite(t)) continue;
    const ageMs = (now - t) * 1000;
    const started = jobId !== undefined && /^[0-9]+$/.test(jobId);
    if (started && live.jobIds.has(jobId)) continue;
    // Not started and not in squeue: cancelled while it waited, or made a moment ago by
    // another runner of the queue whose sbatch has not answered yet (hence the grace).
    if (!started && ageMs < UNSTARTED_GRACE_MS) continue;
    const keepMs = started && ok === '1' ? keep.okMs : keep.failedMs;
    if (ageMs >= keepMs) remove.push(key);
    else if (creds === '1') dropCreds.push(key);
  }
  return { remove, dropCreds };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * One sweep of this queue's pilot folders on the cluster, as the job user. `live` is read
 * after the listing, so a pilot submitted meanwhile is never taken for an ended one.
 */
export async function sweepPilotFolders(options: {
  readonly host: SlurmHost;
  readonly jobsDir: string;
  readonly queue: string;
  readonly keep: KeepPolicy;
  readonly live: () => Promise<LivePilots>;
  readonly log: Logger;
}): Promise<PilotSweepPlan> {
  const { host, jobsDir, queue, log } = options;
  const listed = await host.run(['sh', '-c', PILOT_SWEEP_LIST_SCRIPT, 'sh', jobsDir, queue]);
  if (listed.code !== 0) throw commandFailed('list pilot folders', listed);
  const plan = planPilotSweep(listed.stdout, queue, options.keep, await options.live());
  if (plan.dropCreds.length) {
    const files = plan.dropCreds.map((k) => posix.join(jobsDir, k, 'nats.creds'));
    const res = await host.run(['rm', '-f', '--', ...files]);
    if (res.code !== 0) throw commandFailed("remove ended pilots' credentials", res);
    log.info({ pilots: plan.dropCreds }, "ended pilots' NATS credentials removed");
  }
  if (plan.remove.length) {
    const dirs = plan.remove.map((k) => posix.join(jobsDir, k));
    const res = await host.run(['rm', '-rf', '--', ...dirs]);
    if (res.code !== 0) throw commandFailed('remove ended pilot folders', res);
    log.info({ pilots: plan.remove }, 'ended pilot folders removed');
  }
  return plan;
}
