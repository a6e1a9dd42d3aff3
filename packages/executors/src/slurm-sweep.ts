/**
 * Finished job folders do not stay for ever. A folder whose job ended (job.done) with every
 * task exiting 0 is removed `okMs` after that end (by then its outputs are collected and its
 * logs published on NATS); one with a failure, a lost or a skipped task is kept `failedMs`, to
 * be looked into. A folder without job.done (its job cancelled, its node lost) is removed once
 * it is `failedMs` old and SLURM no longer knows its job. Only folders named as this backend
 * names them (`<time>-<8 hex>`) are ever touched, and never one of a job this runner watches.
 */
export interface KeepPolicy {
  /** Every task exited 0 (default 10 minutes). */
  readonly okMs: number;
  /** A task failed, was lost or skipped, or the job never ended (default 7 days). */
  readonly failedMs: number;
}

export const DEFAULT_KEEP: KeepPolicy = { okMs: 10 * 60_000, failedMs: 7 * 24 * 3_600_000 };

/** A job folder's name, as SlurmBackend makes it: base-36 time, '-', 8 hex digits. */
export const JOB_KEY = /^[0-9a-z]{1,16}-[0-9a-f]{8}$/;

/**
 * Lists the job folders under $1 with the cluster's clock: a first line `now <epoch s>`, then
 * one line per folder: name, ended (job.done there: 1/0), when (job.done's mtime, else the
 * folder's), and whether every task exited 0 with none lost or skipped (1/0).
 */
export const SWEEP_LIST_SCRIPT = `printf 'now\\t%s\\n' "$(date +%s)"
for d in "$1"/*/; do
  [ -d "$d" ] || continue
  d=\${d%/}; k=\${d##*/}
  if [ -e "$d/job.done" ]; then e=1; t=$(stat -c %Y -- "$d/job.done") || continue
  else e=0; t=$(stat -c %Y -- "$d") || continue; fi
  ok=$e
  for f in "$d"/*.exit; do
    [ -e "$f" ] || continue
    v=; read -r v < "$f" || v=
    [ "$v" = 0 ] || ok=0
  done
  for f in "$d"/*.lost "$d"/*.skipped; do if [ -e "$f" ]; then ok=0; fi; done
  printf '%s\\t%s\\t%s\\t%s\\n' "$k" "$e" "$t" "$ok"
done`;

export interface SweepPlan {
  /** Ended folders past their keep time: remove. */
  readonly remove: readonly string[];
  /** Folders that never ended, old enough: remove only if SLURM no longer knows `cp-<key>`. */
  readonly ifUnknown: readonly string[];
}

/** Which folders of a SWEEP_LIST_SCRIPT listing go, leaving out the keys in `watched`. */
export function planSweep(
  stdout: string,
  keep: KeepPolicy,
  watched: ReadonlySet<string>,
): SweepPlan {
  const lines = stdout.split('\n').map((l) => l.split('\t'));
  const now = Number(lines.find((l) => l[0] === 'now')?.[1]);
  const remove: string[] = [];
  const ifUnknown: string[] = [];
  if (!Number.isFinite(now)) return { remove, ifUnknown };
  for (const [key, ended, when, ok] of lines) {
    if (!key || !JOB_KEY.test(key) || watched.has(key)) continue;
    const t = Number(when);
    if (!Number.isFinite(t)) continue;
    const ageMs = (now - t) * 1000;
    if (ended === '1') {
      if (ageMs >= (ok === '1' ? keep.okMs : keep.failedMs)) remove.push(key);
    } else if (ended === '0' && ageMs >= keep.failedMs) ifUnknown.push(key);
  }
  return { remove, ifUnknown };
}
