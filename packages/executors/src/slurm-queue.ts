/**
 * An squeue command line for this user's own jobs (`--me`: the profile's user, as sudo or SSH
 * runs it), by job name or by job ids. A job of another cluster user that carries the same
 * name is then never counted, adopted, or taken for ours.
 */
export function squeueArgs(
  select: { readonly name: string } | { readonly jobs: readonly string[] },
  format: string,
  options: { readonly allStates?: boolean } = {},
): string[] {
  return [
    'squeue',
    '--me',
    '--noheader',
    ...(options.allStates ? ['--states=all'] : []),
    `--format=${format}`,
    'name' in select ? `--name=${select.name}` : `--jobs=${select.jobs.join(',')}`,
  ];
}

/** squeue --format=%i|%T|%r lines → job id → state and reason. */
export function parseSqueue(stdout: string): Map<string, { state: string; reason: string }> {
  const out = new Map<string, { state: string; reason: string }>();
  for (const line of stdout.split('\n')) {
    const [id, state, reason] = line.trim().split('|');
    if (id && state) out.set(id, { state, reason: reason ?? '' });
  }
  return out;
}

const PENDING = new Set([
  'PENDING',
  'REQUEUED',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
  'RESV_DEL_HOLD',
  'SPECIAL_EXIT',
]);
const ENDED = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'NODE_FAIL',
  'OUT_OF_MEMORY',
  'BOOT_FAIL',
  'DEADLINE',
  'PREEMPTED',
  'REVOKED',
]);

/** A SLURM state without its flags ("CANCELLED+" → "CANCELLED"). */
export function baseState(state: string | undefined): string | undefined {
  return state?.replace(/\+$/, '').split(/\s/)[0];
}

/** Ends that are not the job script's own: the job was stopped from outside. */
const ABNORMAL = new Set([
  'CANCELLED',
  'NODE_FAIL',
  'BOOT_FAIL',
  'PREEMPTED',
  'TIMEOUT',
  'DEADLINE',
  'OUT_OF_MEMORY',
  'REVOKED',
]);

/**
 * Why SLURM stopped a job, in words, for a task's reason; undefined for a job that ended by
 * itself (COMPLETED, FAILED) or is not over.
 */
export function abnormalEnd(
  jobId: string | undefined,
  state: string | undefined,
  reason = '',
): string | undefined {
  const s = baseState(state);
  if (!s || !ABNORMAL.has(s)) return undefined;
  const why: Record<string, string> = {
    CANCELLED: 'was cancelled outside ComputePods (scancel)',
    NODE_FAIL: 'ended NODE_FAIL: its node failed or rebooted',
    BOOT_FAIL: 'ended BOOT_FAIL: its node could not boot',
    PREEMPTED: 'was preempted',
    TIMEOUT: 'reached its time limit (TIMEOUT)',
    DEADLINE: 'reached its deadline (DEADLINE)',
    OUT_OF_MEMORY: 'ran out of memory (OUT_OF_MEMORY)',
    REVOKED: 'was revoked (REVOKED)',
  };
  const r = reason && reason !== 'None' ? ` (${reason})` : '';
  return `SLURM job ${jobId ?? '?'} ${why[s]}${r}`;
}

/**
 * Where a job is: waiting for resources, holding them (running, completing, suspended...),
 * ended, or gone (SLURM no longer knows it: only the exit-code files can tell).
 */
export function jobPhase(state: string | undefined): 'pending' | 'active' | 'ended' | 'gone' {
  if (state === undefined) return 'gone';
  const s = state.replace(/\+$/, '');
  if (PENDING.has(s)) return 'pending';
  if (ENDED.has(s)) return 'ended';
  return 'active';
}

/**
 * Lists the markers of job folders in one command: "<path>\t<first line>" for every exit
 * code, start, skip and lost marker. `read` needs a complete line, so an exit file caught halfway
 * through its write reads as empty and is taken up on the next poll.
 */
export const SCAN_SCRIPT = `for d in "$@"; do
  for f in "$d"/*.exit "$d"/*.start "$d"/*.skipped "$d"/*.lost "$d"/job.started "$d"/job.done; do
    [ -e "$f" ] || continue
    v=
    read -r v < "$f" 2>/dev/null || v=
    printf '%s\\t%s\\n' "$f" "$v"
  done
done`;

export interface ScanResult {
  has(dir: string, name: string): boolean;
  /** The task's exit code, when its exit file is complete. */
  exitCode(dir: string, index: number): number | undefined;
}

export function parseScan(stdout: string): ScanResult {
  const files = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const tab = line.lastIndexOf('\t');
    if (tab > 0) files.set(line.slice(0, tab), line.slice(tab + 1));
  }
  return {
    has: (dir, name) => files.has(`${dir}/${name}`),
    exitCode: (dir, index) => {
      const v = files.get(`${dir}/${index}.exit`);
      return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
    },
  };
}
