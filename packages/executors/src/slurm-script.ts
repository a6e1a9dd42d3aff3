import { posix } from 'node:path';
import { type JobRunnerConfigSlurm, SlurmConfigSet, slurmMemToMb } from '@computepods/protocol';
import { UnsafeValueError } from './errors.js';
import { shq } from './sh-quote.js';

export interface ScriptTask {
  /** The task's number in the job: its files are <dir>/<index>.out, .err, .exit, .pid ... */
  readonly index: number;
  readonly command: string;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
}

export interface JobSpec {
  /** The job folder as the cluster sees it. */
  readonly dir: string;
  readonly jobName: string;
  readonly tasks: readonly ScriptTask[];
  /** Tasks running at once inside the job (lanes). */
  readonly lanes: number;
  readonly config: SlurmConfigSet;
  /** user_local_exports, relative values already resolved against the tasks folder. */
  readonly exports: Readonly<Record<string, string>>;
}

/** default_slurm_config, with gpu_slurm_config laid over it for GPU tasks. */
export function effectiveConfig(jrc: JobRunnerConfigSlurm, gpu: boolean): SlurmConfigSet {
  const base = jrc.default_slurm_config;
  const over = gpu ? jrc.gpu_slurm_config : undefined;
  if (!over) return base;
  const defined = Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined));
  const lines = [...(base.extra_lines ?? []), ...(over.extra_lines ?? [])];
  return { ...base, ...defined, extra_lines: [...new Set(lines)] };
}

/** user_local_exports with relative values placed below the tasks folder (as Fractal does). */
export function resolveExports(
  exports: Readonly<Record<string, string>> | undefined,
  tasksDir: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(exports ?? {}))
    out[k] = v.startsWith('/') ? v : posix.join(tasksDir, v);
  return out;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Paths on sbatch's command line or in the script hold no newline, tab or other control character. */
function noControl(field: string, value: string): void {
  if (CONTROL_CHARS.test(value))
    throw new UnsafeValueError(field, value, 'it holds a control character (newline, tab ...)');
}

/**
 * extra_lines as the resource schema accepts them (#SBATCH directives only), checked again
 * here: a configuration built in code, not parsed, must not slip a command into the script.
 */
function checkedExtraLines(lines: readonly string[] | undefined): readonly string[] {
  const res = SlurmConfigSet.shape.extra_lines.safeParse(lines);
  if (res.success) return res.data ?? [];
  const issue = res.error.issues[0];
  const at = issue?.path[0];
  const line = typeof at === 'number' ? (lines?.[at] ?? '') : String(lines);
  throw new UnsafeValueError(`extra_lines.${String(at)}`, line, issue?.message ?? 'invalid');
}

/**
 * sbatch's options, one argv element each (never through a shell on our side; over SSH every
 * element is quoted). The job asks for `lanes` × the per-task CPUs and memory.
 */
export function sbatchArgs(spec: JobSpec, scriptPath: string): string[] {
  const c = spec.config;
  noControl('job folder', spec.dir);
  noControl('job script', scriptPath);
  const cpus = (c.cpus_per_task ?? 1) * spec.lanes;
  // sbatch expands %j, %u ... in file names; %% is a literal %.
  const pattern = (p: string) => p.replaceAll('%', '%%');
  const args = [
    '--parsable',
    `--job-name=${spec.jobName}`,
    `--chdir=${spec.dir}`,
    `--output=${pattern(posix.join(spec.dir, 'job.out'))}`,
    `--error=${pattern(posix.join(spec.dir, 'job.err'))}`,
    '--ntasks=1',
    `--cpus-per-task=${cpus}`,
  ];
  if (c.mem !== undefined) args.push(`--mem=${slurmMemToMb(c.mem) * spec.lanes}M`);
  const simple: [keyof SlurmConfigSet, string][] = [
    ['partition', 'partition'],
    ['account', 'account'],
    ['time', 'time'],
    ['constraint', 'constraint'],
    ['gres', 'gres'],
    ['exclude', 'exclude'],
    ['nodelist', 'nodelist'],
    ['gpus', 'gpus'],
  ];
  for (const [key, flag] of simple) {
    const v = c[key];
    if (typeof v === 'string') args.push(`--${flag}=${v}`);
  }
  args.push(scriptPath);
  return args;
}

// Runs one task in its own session (setsid), so a kill marker can signal its whole process
// group; records pid, start and exit code next to its output. A task whose .skip marker
// exists (paused or killed before it started) is skipped and says so. SLURM may run the
// script again (a job requeued after a node failure or preemption): a task that ended keeps
// its result, and one that had started is marked .lost instead of being run a second time.
const TASK_FN = `cp_task() {
  i=$1; dir=$2; cmd=$3; shift 3
  if [ -e "$D/$i.skip" ]; then : > "$D/$i.skipped"; return 0; fi
  if [ -e "$D/$i.exit" ]; then return 0; fi
  if [ -e "$D/$i.start" ]; then : > "$D/$i.lost"; return 0; fi
  : > "$D/$i.start"
  ( cd -- "$dir" || exit 1; exec setsid env "$@" /bin/sh -c "$cmd" ) > "$D/$i.out" 2> "$D/$i.err" < /dev/null &
  p=$!
  echo $p > "$D/$i.pid"
  wait $p
  c=$?
  echo $c > "$D/$i.exit"
}`;

// Kills tasks whose .kill marker appeared (SIGTERM to the group, SIGKILL 5 s later).
const WATCH_FN = `cp_watch() {
  while [ ! -e "$D/job.done" ]; do
    for k in "$D"/*.kill; do
      [ -e "$k" ] || continue
      i=\${k##*/}; i=\${i%.kill}
      if [ -e "$D/$i.exit" ] || [ -e "$D/$i.skipped" ]; then mv -f -- "$k" "$k.done"; continue; fi
      [ -e "$D/$i.pid" ] || continue
      read -r p < "$D/$i.pid" || continue
      kill -TERM -"$p" 2>/dev/null
      ( sleep 5; kill -KILL -"$p" 2>/dev/null ) &
      mv -f -- "$k" "$k.done"
    done
    sleep 1
  done
}`;

/**
 * The job script: extra_lines first (#SBATCH directives must precede commands), exports,
 * then the tasks spread over `lanes` background subshells, each running its tasks in turn.
 * Every value from a task or the configuration is single-quoted; env names are checked.
 */
export function jobScript(spec: JobSpec): string {
  const lines = ['#!/bin/sh', ...checkedExtraLines(spec.config.extra_lines)];
  lines.push(
    `# ComputePods job ${spec.jobName}: ${spec.tasks.length} task(s), ${spec.lanes} at a time`,
    `D=${shq(spec.dir, 'job folder')}`,
    ': > "$D/job.started"',
  );
  for (const [k, v] of Object.entries(spec.exports)) {
    if (!ENV_NAME.test(k))
      throw new UnsafeValueError('user_local_exports name', k, 'not an environment variable name');
    lines.push(`export ${k}=${shq(v, k)}`);
  }
  lines.push(TASK_FN, WATCH_FN, 'cp_watch &', 'w=$!');
  const lanes = Math.max(1, Math.min(spec.lanes, spec.tasks.length));
  const pids: string[] = [];
  for (let lane = 0; lane < lanes; lane++) {
    lines.push('(');
    for (const t of spec.tasks.filter((_, j) => j % lanes === lane)) {
      const env = Object.entries(t.env).map(([k, v]) => {
        if (!ENV_NAME.test(k))
          throw new UnsafeValueError('env name', k, 'not an environment variable name');
        return shq(`${k}=${v}`, `env ${k}`);
      });
      noControl('cwd', t.cwd);
      lines.push(
        `  cp_task ${t.index} ${shq(t.cwd, 'cwd')} ${shq(t.command, 'command')}${env.length ? ` ${env.join(' ')}` : ''}`,
      );
    }
    lines.push(') &', `l${lane}=$!`);
    pids.push(`$l${lane}`);
  }
  lines.push(`wait ${pids.join(' ')}`, ': > "$D/job.done"', 'kill $w 2>/dev/null', 'exit 0', '');
  return lines.join('\n');
}
