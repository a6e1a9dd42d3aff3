import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { CpError, type TaskEnvironment, type TasksPythonConfig } from '@computepods/protocol';
import { shq } from './sh-quote.js';

/** Where a resource keeps its tasks' environments, as the task sees the file system. */
export interface EnvironmentSite {
  /** The folder of environments: `<tasks dir>/envs` (tasks_local_dir, or tasks_remote_dir over SSH). */
  readonly dir: string;
  readonly python: TasksPythonConfig;
  /** pip's cache (tasks_pip_cache_dir); none: pip's own default. */
  readonly pipCacheDir?: string | null | undefined;
}

/** A task's environment cannot be made here: the resource has no such Python version. */
export class TaskEnvironmentError extends CpError {
  constructor(message: string) {
    super('CP_TASK_ENVIRONMENT', message);
  }
}

/** Exit status of a task whose environment could not be made (its log says why). */
export const ENVIRONMENT_FAILED_EXIT = 97;

/** Why a task that exited `code` failed, saying so when its environment could not be made. */
export function exitReason(code: number, task: { environment?: unknown } | undefined): string {
  return code === ENVIRONMENT_FAILED_EXIT && task?.environment
    ? `exit code ${code}: its environment could not be made (pip's log is in the task's stderr)`
    : `exit code ${code}`;
}

/**
 * The task's command with its environment first made ready (once per resource: every task
 * naming the same version and requirements shares it) and activated. The making runs in the
 * task itself, where the task runs — locally, as the job user over sudo, on the cluster over
 * SSH, in a pilot — under an flock, so concurrent tasks wait for one build; pip's output goes
 * to the task's stderr, and a failure ends the task with exit 97 and removes the half-made
 * environment, so the next task tries again. Every value is single-quoted.
 */
export function withEnvironment(
  command: string,
  env: TaskEnvironment | undefined,
  site: EnvironmentSite,
): string {
  if (!env) return command;
  const version = env.python ?? site.python.default_version;
  const interpreter = site.python.versions[version];
  if (!interpreter)
    throw new TaskEnvironmentError(
      `environment.python "${version}" is not one of the resource's tasks_python_config versions (${Object.keys(site.python.versions).join(', ') || 'none'}); name one of them or add it to the resource`,
    );
  const requirements = [...new Set(env.requirements)].sort();
  const key = createHash('sha256')
    .update(JSON.stringify([version, interpreter, requirements]))
    .digest('hex')
    .slice(0, 16);
  const dir = posix.join(site.dir, `py${version}-${key}`);
  const q = (v: string, what: string) => shq(v, what);
  const pip = [
    '"$cp_env/bin/python" -m pip install --disable-pip-version-check',
    ...(site.pipCacheDir ? [`--cache-dir ${q(site.pipCacheDir, 'tasks_pip_cache_dir')}`] : []),
    ...requirements.map((r) => q(r, 'requirement')),
  ].join(' ');
  const what = `python ${version}${requirements.length ? `: ${requirements.join(' ')}` : ''}`;
  const fail = ENVIRONMENT_FAILED_EXIT;
  return [
    `cp_env=${q(dir, 'environment folder')}`,
    'if [ ! -e "$cp_env/.cp-ready" ]; then',
    `  mkdir -p ${q(site.dir, 'environments folder')} || exit ${fail}`,
    '  (',
    `    flock 9 || exit ${fail}`,
    '    [ -e "$cp_env/.cp-ready" ] && exit 0',
    `    echo ${q(`computepods: making the task environment ${dir} (${what})`, 'message')} >&2`,
    '    rm -rf "$cp_env"',
    `    ${q(interpreter, 'interpreter')} -m venv "$cp_env" >&2 &&`,
    `      ${requirements.length ? `${pip} >&2` : 'true'} &&`,
    '      : > "$cp_env/.cp-ready" && exit 0',
    `    echo ${q(`computepods: could not make the task environment ${dir} (${what}); its log is above`, 'message')} >&2`,
    '    rm -rf "$cp_env"',
    `    exit ${fail}`,
    `  ) 9> "$cp_env.lock" || exit ${fail}`,
    'fi',
    'VIRTUAL_ENV=$cp_env; PATH=$cp_env/bin:$PATH; export VIRTUAL_ENV PATH; unset cp_env',
    command,
  ].join('\n');
}
