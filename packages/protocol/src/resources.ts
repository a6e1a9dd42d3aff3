import { z } from 'zod';
import { PIXI_NOT_SUPPORTED } from './environments.js';
import { InvalidConfigError, InvalidNameError } from './errors.js';
import { ServiceName } from './names.js';

/*
 * Computational resources and profiles, in the JSON shapes of Fractal's Resource and Profile
 * tables (seeds/fractal-computational-integrations.txt): every example there is accepted as
 * written. Like Fractal (pydantic extra=forbid) every object is strict: a misspelt field is
 * refused with its path named, never silently ignored.
 *
 * ComputePods extensions, all optional, so Fractal JSON stays valid:
 *   - `id` (resources and profiles): the subject-safe name used for queues, subjects and KV
 *     keys. `name` is a display name and may hold spaces; without `id` the id is derived from
 *     it (see `slugify`): "SLURM cluster" → "slurm-cluster".
 *   - `slurm_client_env` (slurm_sudo, slurm_ssh): extra environment for SLURM client commands
 *     (sbatch, squeue, scontrol, scancel), e.g. SLURM_CONF for a cluster with a private config.
 *   - `port` (slurm_ssh): the SSH port, default 22.
 *   - `pilot_config` (slurm_sudo, slurm_ssh): run tasks in pilot jobs (runner workers inside
 *     SLURM allocations that pull from the task queue until idle) instead of one sbatch per
 *     batch. On slurm_ssh the workers run from a ComputePods checkout on the cluster
 *     (`computepods_dir`) and reach NATS at `nats_url` as the compute nodes see it.
 *   - `resource` (profiles): the id of the resource a profile binds to.
 *   - `known_hosts_path` (slurm_ssh profiles): the known_hosts file checked for the host key.
 *   - the `kubernetes` resource type and profile; `workspace_volume` on a kubernetes resource.
 */

// Values that reach a command line or a job script must not be able to start a new line.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const NO_CONTROL = 'must not contain newlines or other control characters';

const NonEmptyStr = z
  .string()
  .min(1, 'must not be empty')
  .max(1000)
  .refine((s) => !CONTROL_CHARS.test(s), NO_CONTROL);

const AbsolutePath = z
  .string()
  .min(1, 'must not be empty')
  .max(4096)
  .refine((p) => p.startsWith('/'), 'must be an absolute path (starting with "/")')
  .refine((p) => !CONTROL_CHARS.test(p), NO_CONTROL);

const EnvName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]*$/,
    'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)',
  );

const PositiveInt = z.number().int().positive();

/*
 * extra_lines are written into the job script before any command, so sbatch reads them as
 * directives; a line that is not a directive would be run by the job's shell. Only one
 * `#SBATCH -x`/`#SBATCH --opt[=value]` per entry is accepted, and its values may hold only what
 * sbatch options need (node lists, constraints a&b|c, times, sizes, mail addresses): nothing
 * a shell or sbatch could expand (; $ ` ' " \ < > ( ) { }), never a second line.
 */
const SBATCH_LINE = /^#SBATCH +--?[A-Za-z][A-Za-z0-9_.,:=/+%@*&|!~[\] -]*$/;
const SBATCH_RULE =
  'must be one sbatch directive such as "#SBATCH --gres=gpu:1" or "#SBATCH -N 1": "#SBATCH", a space, ' +
  'an option, then only letters, digits, spaces and _ . , : = / + % @ * & | ! ~ [ ] - ' +
  '(no ; $ ` \' " \\ < > ( ) { } or newlines)';

/** One line of extra_lines: an #SBATCH directive, nothing a shell would run. */
export const SbatchLine = z
  .string()
  .max(1000)
  .superRefine((line, ctx) => {
    if (CONTROL_CHARS.test(line)) ctx.addIssue({ code: 'custom', message: NO_CONTROL });
    else if (!SBATCH_LINE.test(line)) ctx.addIssue({ code: 'custom', message: SBATCH_RULE });
  });

/** Memory as SLURM takes it: megabytes as a number, or a string "100", "100M", "3G", "1T". */
export const SlurmMemory = z.union([
  PositiveInt,
  z.string().regex(/^[1-9][0-9]*[MGT]?$/, 'must be megabytes or a size such as "100M", "3G", "1T"'),
]);
export type SlurmMemory = z.infer<typeof SlurmMemory>;

/** Megabytes in a SlurmMemory value (decimal units, as Fractal and SLURM's --mem count). */
export function slurmMemToMb(mem: SlurmMemory): number {
  if (typeof mem === 'number') return mem;
  const unit = mem.at(-1);
  const digits = Number.parseInt(mem, 10);
  if (unit === 'G') return digits * 1_000;
  if (unit === 'T') return digits * 1_000_000;
  return digits;
}

/** Options for the default or GPU SLURM configuration (Fractal's SlurmConfigSet). */
export const SlurmConfigSet = z.strictObject({
  partition: NonEmptyStr.optional(),
  cpus_per_task: PositiveInt.optional(),
  mem: SlurmMemory.optional(),
  constraint: NonEmptyStr.optional(),
  gres: NonEmptyStr.optional(),
  exclude: NonEmptyStr.optional(),
  nodelist: NonEmptyStr.optional(),
  time: NonEmptyStr.optional(),
  account: NonEmptyStr.optional(),
  /** #SBATCH directives copied into the job script (see SbatchLine), one line each. */
  extra_lines: z.array(SbatchLine).optional(),
  gpus: NonEmptyStr.optional(),
});
export type SlurmConfigSet = z.infer<typeof SlurmConfigSet>;

/** How many small tasks are packed into one SLURM job (Fractal's heuristic). */
export const BatchingConfig = z.strictObject({
  target_cpus_per_job: PositiveInt,
  max_cpus_per_job: PositiveInt,
  target_mem_per_job: SlurmMemory,
  max_mem_per_job: SlurmMemory,
  target_num_jobs: PositiveInt,
  max_num_jobs: PositiveInt,
});
export type BatchingConfig = z.infer<typeof BatchingConfig>;

export const JobRunnerConfigLocal = z.strictObject({
  /** At most this many tasks run at once; null or absent: one per CPU core. */
  parallel_tasks_per_job: PositiveInt.nullable().optional(),
});
export type JobRunnerConfigLocal = z.infer<typeof JobRunnerConfigLocal>;

export const JobRunnerConfigSlurm = z.strictObject({
  default_slurm_config: SlurmConfigSet,
  gpu_slurm_config: SlurmConfigSet.nullable().optional(),
  /**
   * Exported in every job script. A relative value is taken below the task directory
   * (tasks_local_dir, or the profile's tasks_remote_dir over SSH); an absolute one as it is.
   */
  user_local_exports: z.record(EnvName, NonEmptyStr).optional(),
  batching_config: BatchingConfig,
});
export type JobRunnerConfigSlurm = z.infer<typeof JobRunnerConfigSlurm>;

export const JobRunnerConfigKubernetes = z.strictObject({
  image: NonEmptyStr,
  parallel_tasks_per_job: PositiveInt.nullable().optional(),
  default_pod_config: z
    .strictObject({
      cpu: NonEmptyStr.optional(),
      memory: NonEmptyStr.optional(),
      node_selector: z.record(NonEmptyStr, NonEmptyStr).optional(),
    })
    .optional(),
  gpu_pod_config: z
    .strictObject({
      gpu: PositiveInt.optional(),
      node_selector: z.record(NonEmptyStr, NonEmptyStr).optional(),
    })
    .nullable()
    .optional(),
});
export type JobRunnerConfigKubernetes = z.infer<typeof JobRunnerConfigKubernetes>;

export const TasksPythonConfig = z
  .strictObject({
    default_version: NonEmptyStr,
    versions: z.record(
      z.string().regex(/^3\.[0-9]{1,2}$/, 'must be a version such as "3.12"'),
      AbsolutePath,
    ),
  })
  .superRefine((v, ctx) => {
    if (!(v.default_version in v.versions))
      ctx.addIssue({
        code: 'custom',
        path: ['default_version'],
        message: `"${v.default_version}" is not one of versions (${Object.keys(v.versions).join(', ') || 'none'})`,
      });
  });
export type TasksPythonConfig = z.infer<typeof TasksPythonConfig>;

/** Fractal's pixi settings: either {} (pixi not used) or at least versions + default_version. */
export const TasksPixiConfig = z
  .strictObject({
    versions: z.record(NonEmptyStr, AbsolutePath).optional(),
    default_version: NonEmptyStr.optional(),
    PIXI_CONCURRENT_SOLVES: PositiveInt.optional(),
    PIXI_CONCURRENT_DOWNLOADS: PositiveInt.optional(),
    TOKIO_WORKER_THREADS: PositiveInt.optional(),
    DEFAULT_ENVIRONMENT: NonEmptyStr.optional(),
    DEFAULT_PLATFORM: NonEmptyStr.optional(),
    SLURM_CONFIG: z
      .strictObject({
        partition: NonEmptyStr,
        cpus: PositiveInt,
        mem: NonEmptyStr.optional(),
        mem_per_cpu: NonEmptyStr.optional(),
        time: NonEmptyStr,
      })
      .nullable()
      .optional(),
  })
  .superRefine((v, ctx) => {
    if (Object.keys(v).length === 0) return;
    if (!v.versions)
      ctx.addIssue({
        code: 'custom',
        path: ['versions'],
        message: 'required when pixi is configured',
      });
    if (!v.default_version)
      ctx.addIssue({
        code: 'custom',
        path: ['default_version'],
        message: 'required when pixi is configured',
      });
    else if (v.versions && !(v.default_version in v.versions))
      ctx.addIssue({
        code: 'custom',
        path: ['default_version'],
        message: `"${v.default_version}" is not one of versions`,
      });
  });
export type TasksPixiConfig = z.infer<typeof TasksPixiConfig>;

const DisplayName = z
  .string()
  .min(1, 'must not be empty')
  .max(200)
  .refine((s) => !CONTROL_CHARS.test(s), NO_CONTROL);

const resourceBase = {
  name: DisplayName,
  id: ServiceName.optional(),
  tasks_local_dir: AbsolutePath,
  tasks_python_config: TasksPythonConfig,
  tasks_pixi_config: TasksPixiConfig,
  tasks_pip_cache_dir: AbsolutePath.nullable().optional(),
  jobs_local_dir: AbsolutePath,
  /** Seconds between two status polls of the resource's jobs (Fractal's default 5). */
  jobs_poll_interval: z.number().nonnegative().max(86_400).default(5),
};

const slurmExtras = {
  jobs_runner_config: JobRunnerConfigSlurm,
  jobs_slurm_python_worker: AbsolutePath.optional(),
  slurm_client_env: z
    .record(
      EnvName,
      z.string().refine((s) => !s.includes('\0'), 'must not contain NUL'),
    )
    .optional(),
};

export const LocalResource = z.strictObject({
  type: z.literal('local'),
  ...resourceBase,
  jobs_runner_config: JobRunnerConfigLocal,
  jobs_slurm_python_worker: z.null().optional(),
  host: z.null().optional(),
});
export type LocalResource = z.infer<typeof LocalResource>;

/**
 * Pilot mode: the runner submits at most `max_workers` pilot jobs while tasks are waiting;
 * each runs a runner worker with `cpus_per_worker` CPUs (default 1) that exits after
 * `idle_timeout_s` seconds without work. The worker connects to `nats_url` (default: the
 * runner's NATS_URL), runs the checkout at `computepods_dir` (default: the runner's own, which
 * a slurm_sudo cluster shares) with `node_path` (default: the runner's node for slurm_sudo,
 * `node` on the job's PATH for slurm_ssh).
 */
export const PilotConfig = z.strictObject({
  max_workers: PositiveInt.max(10_000),
  idle_timeout_s: z.number().positive().max(86_400),
  cpus_per_worker: PositiveInt.max(4096).optional(),
  nats_url: NonEmptyStr.refine(
    (u) => u.split(',').every((one) => /^(nats|tls|ws|wss):\/\/[^\s'"]+$/.test(one.trim())),
    'must be NATS URLs (nats://host:port, comma-separated)',
  ).optional(),
  computepods_dir: AbsolutePath.optional(),
  node_path: AbsolutePath.optional(),
});
export type PilotConfig = z.infer<typeof PilotConfig>;

/** Over SSH the runner's checkout is not on the cluster: say where the workers' one is. */
export const SlurmSshPilotConfig = PilotConfig.extend({ computepods_dir: AbsolutePath });

export const SlurmSudoResource = z.strictObject({
  type: z.literal('slurm_sudo'),
  ...resourceBase,
  ...slurmExtras,
  pilot_config: PilotConfig.optional(),
  host: z.null().optional(),
});
export type SlurmSudoResource = z.infer<typeof SlurmSudoResource>;

export const SlurmSshResource = z.strictObject({
  type: z.literal('slurm_ssh'),
  ...resourceBase,
  ...slurmExtras,
  host: NonEmptyStr.refine(
    (h) => !h.startsWith('-') && !/\s/.test(h),
    'must be a host name or address',
  ),
  port: z.number().int().min(1).max(65_535).optional(),
  pilot_config: SlurmSshPilotConfig.optional(),
});
export type SlurmSshResource = z.infer<typeof SlurmSshResource>;

export const KubernetesResource = z.strictObject({
  type: z.literal('kubernetes'),
  name: DisplayName,
  id: ServiceName.optional(),
  namespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes namespace (DNS label)'),
  kubeconfig_path: AbsolutePath.optional(),
  context: NonEmptyStr.optional(),
  jobs_local_dir: AbsolutePath.optional(),
  /**
   * ComputePods extension: a PersistentVolumeClaim holding the project's workspace, mounted in
   * every task's pod at `mount_path`, the path the runner sees it at too (an RWX volume both
   * mount). Tasks with declared files then run in their cwd on it; their outputs are checked
   * there. Without it such tasks are staged through the runner when it serves staging
   * (CP_K8S_STAGE_LISTEN), and refused otherwise.
   */
  workspace_volume: z
    .strictObject({
      claim_name: z
        .string()
        .regex(
          /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
          'must be a Kubernetes name (a PersistentVolumeClaim)',
        ),
      mount_path: AbsolutePath,
    })
    .optional(),
  jobs_runner_config: JobRunnerConfigKubernetes,
  jobs_poll_interval: z.number().nonnegative().max(86_400).default(5),
  tasks_local_dir: AbsolutePath.optional(),
  tasks_python_config: TasksPythonConfig.optional(),
  tasks_pixi_config: TasksPixiConfig.optional(),
  tasks_pip_cache_dir: AbsolutePath.nullable().optional(),
});
export type KubernetesResource = z.infer<typeof KubernetesResource>;

/** A computational resource: where tasks run. `type` selects the backend. */
export const Resource = z.discriminatedUnion('type', [
  LocalResource,
  SlurmSudoResource,
  SlurmSshResource,
  KubernetesResource,
]);
export type Resource = z.infer<typeof Resource>;
export type ResourceInput = z.input<typeof Resource>;
export type ResourceType = Resource['type'];
export const RESOURCE_TYPES: readonly ResourceType[] = [
  'local',
  'slurm_sudo',
  'slurm_ssh',
  'kubernetes',
];

/**
 * What a person storing or binding this resource should know before a task fails for it, or
 * undefined: cpctrl says it where it would otherwise only name the runner that serves it. A
 * kubernetes resource without workspace_volume runs tasks that declare files (every chef task)
 * only when its runner stages them (CP_K8S_STAGE_LISTEN), which the resource cannot tell.
 */
export function resourceWarning(r: Resource): string | undefined {
  const notes = [kubernetesNote(r), pixiNote(r)].filter((n) => n !== undefined);
  return notes.length ? notes.join('; ') : undefined;
}

/** A non-empty tasks_pixi_config is accepted (Fractal's shape) and never used. */
export function pixiNote(r: Resource): string | undefined {
  const pixi = r.tasks_pixi_config;
  return pixi && Object.keys(pixi).length > 0
    ? `tasks_pixi_config is accepted but not used: ${PIXI_NOT_SUPPORTED}`
    : undefined;
}

function kubernetesNote(r: Resource): string | undefined {
  if (r.type === 'kubernetes' && !r.workspace_volume)
    return "a kubernetes resource without workspace_volume runs only tasks that declare no files unless the runner that serves it stages them (CP_K8S_STAGE_LISTEN: pods fetch inputs from the runner and send outputs back, services/runner/README.md); a chef's tasks declare theirs: give it workspace_volume, the workspace's PersistentVolumeClaim, or run its runner with staging";
  return undefined;
}

/**
 * A user name that sudo, ssh and the shell can take without quoting surprises: what useradd
 * accepts by default (lower-case, digits, "_" and "-", not starting with "-" or a digit).
 */
export const PosixUsername = z
  .string()
  .regex(
    /^[a-z_][a-z0-9_-]{0,31}$/,
    'must be a POSIX user name: 1-32 of a-z 0-9 _ -, starting with a letter or "_"',
  );

const profileBase = {
  name: DisplayName,
  id: ServiceName.optional(),
  resource: ServiceName.optional(),
};

export const LocalProfile = z.strictObject({ resource_type: z.literal('local'), ...profileBase });
export type LocalProfile = z.infer<typeof LocalProfile>;

export const SlurmSudoProfile = z.strictObject({
  resource_type: z.literal('slurm_sudo'),
  ...profileBase,
  username: PosixUsername,
});
export type SlurmSudoProfile = z.infer<typeof SlurmSudoProfile>;

export const SlurmSshProfile = z.strictObject({
  resource_type: z.literal('slurm_ssh'),
  ...profileBase,
  username: PosixUsername,
  ssh_key_path: AbsolutePath,
  jobs_remote_dir: AbsolutePath,
  tasks_remote_dir: AbsolutePath,
  known_hosts_path: AbsolutePath.optional(),
});
export type SlurmSshProfile = z.infer<typeof SlurmSshProfile>;

export const KubernetesProfile = z.strictObject({
  resource_type: z.literal('kubernetes'),
  ...profileBase,
  service_account: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be a Kubernetes name'),
});
export type KubernetesProfile = z.infer<typeof KubernetesProfile>;

/** A profile binds a resource to the account that runs jobs on it. */
export const Profile = z.discriminatedUnion('resource_type', [
  LocalProfile,
  SlurmSudoProfile,
  SlurmSshProfile,
  KubernetesProfile,
]);
export type Profile = z.infer<typeof Profile>;
export type ProfileInput = z.input<typeof Profile>;

/**
 * Turns a display name into a subject-safe id: lower case, accents dropped, every run of
 * other characters one "-", at most 63 characters. Throws when nothing usable is left (give
 * an explicit `id` then).
 */
export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  if (!slug)
    throw new InvalidNameError(
      'display name',
      name,
      'it has no letters or digits: give an explicit "id"',
    );
  return slug;
}

/** The subject-safe id of a resource: its explicit `id`, or the slug of its name. */
export function resourceId(resource: Pick<Resource, 'name' | 'id'>): string {
  return resource.id ?? slugify(resource.name);
}

/** The subject-safe id of a profile: its explicit `id`, or the slug of its name. */
export function profileId(profile: Pick<Profile, 'name' | 'id'>): string {
  return profile.id ?? slugify(profile.name);
}

/** Parses a resource; throws InvalidConfigError naming every wrong or unknown field. */
export function parseResource(input: unknown): Resource {
  const result = Resource.safeParse(input);
  if (!result.success)
    throw new InvalidConfigError(
      `resource${nameOf(input)}`,
      formatIssues(result.error, input, Resource),
    );
  return result.data;
}

/** Parses a profile; throws InvalidConfigError naming every wrong or unknown field. */
export function parseProfile(input: unknown): Profile {
  const result = Profile.safeParse(input);
  if (!result.success)
    throw new InvalidConfigError(
      `profile${nameOf(input)}`,
      formatIssues(result.error, input, Profile),
    );
  return result.data;
}

/** Throws InvalidConfigError unless the profile is for this kind of resource (and this one, if it names one). */
export function checkProfileFor(resource: Resource, profile: Profile): void {
  const issues: string[] = [];
  if (profile.resource_type !== resource.type)
    issues.push(
      `resource_type: "${profile.resource_type}" does not match resource type "${resource.type}"`,
    );
  if (profile.resource !== undefined && profile.resource !== resourceId(resource))
    issues.push(`resource: "${profile.resource}" is not this resource ("${resourceId(resource)}")`);
  if (issues.length) throw new InvalidConfigError(`profile "${profile.name}"`, issues);
}

function nameOf(input: unknown): string {
  const name = (input as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? ` ${JSON.stringify(name)}` : '';
}

/**
 * One readable line per zod issue: the dotted path, then the problem, e.g.
 * `jobs_runner_config.batching_config.max_num_jobs: expected number, received string`.
 * Unknown fields are named one by one, with the closest known field when one is near.
 */
export function formatIssues(error: z.ZodError, input?: unknown, schema?: z.ZodType): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    const at = issue.path.map(String).join('.');
    const prefix = at ? `${at}: ` : '';
    if (issue.code === 'unrecognized_keys') {
      const known = schema ? knownKeys(schema, input, issue.path) : [];
      for (const key of issue.keys) {
        const near = closest(key, known);
        lines.push(
          `${at ? `${at}.` : ''}${key}: unknown field${near ? ` (did you mean "${near}"?)` : ''}`,
        );
      }
    } else if (issue.code === 'invalid_type') {
      lines.push(`${prefix}${issue.message.replace(/^Invalid input: /, '')}`);
    } else if (issue.code === 'invalid_union' && 'discriminator' in issue) {
      const options = (issue as { options?: unknown[] }).options ?? [];
      lines.push(`${prefix}expected one of ${options.map((o) => JSON.stringify(o)).join(', ')}`);
    } else {
      lines.push(`${prefix}${issue.message}`);
    }
  }
  return lines;
}

type Walkable = { def: Record<string, unknown> } & { shape?: Record<string, z.ZodType> };

function unwrap(schema: z.ZodType): Walkable {
  let s = schema as unknown as Walkable;
  for (;;) {
    const t = s.def.type;
    if (
      t === 'optional' ||
      t === 'nullable' ||
      t === 'default' ||
      t === 'prefault' ||
      t === 'readonly'
    )
      s = s.def.innerType as Walkable;
    else if (t === 'pipe') s = s.def.in as Walkable;
    else return s;
  }
}

// The object schema at `path` (discriminated unions resolved by the input's discriminator).
function knownKeys(schema: z.ZodType, input: unknown, path: readonly PropertyKey[]): string[] {
  let s = unwrap(schema);
  let value = input;
  const steps = [...path];
  for (;;) {
    if (s.def.type === 'union' && typeof s.def.discriminator === 'string') {
      const tag = (value as Record<string, unknown> | null)?.[s.def.discriminator];
      const options = s.def.options as Walkable[];
      const match = options.find((o) => {
        const d = unwrap(o as unknown as z.ZodType).shape?.[s.def.discriminator as string];
        const values = (d as unknown as Walkable | undefined)?.def.values;
        return Array.isArray(values) && values.includes(tag);
      });
      if (!match) return [];
      s = unwrap(match as unknown as z.ZodType);
      continue;
    }
    const step = steps.shift();
    if (step === undefined) return s.shape ? Object.keys(s.shape) : [];
    value = (value as Record<PropertyKey, unknown> | null)?.[step];
    const field = s.def.type === 'object' ? s.shape?.[step as string] : undefined;
    if (field) s = unwrap(field);
    else if (s.def.type === 'record') s = unwrap(s.def.valueType as z.ZodType);
    else if (s.def.type === 'array') s = unwrap(s.def.element as z.ZodType);
    else return [];
  }
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  // One row of the table at a time: prev[j] is the distance from a's first i - 1 characters to
  // b's first j; `left` is the cell being filled, `diag` the one up and to its left.
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let distance = b.length;
  for (let i = 1; i <= a.length; i++) {
    let diag = i - 1;
    let left = i;
    const cur = [left];
    for (const [j, up] of prev.slice(1).entries()) {
      left = Math.min(up + 1, left + 1, diag + (a[i - 1] === b[j] ? 0 : 1));
      cur.push(left);
      diag = up;
    }
    prev = cur;
    distance = left;
  }
  return distance;
}
