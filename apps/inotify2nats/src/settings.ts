import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { firstIssue, issueLine, ProjectName, ServiceName } from '@computepods/protocol';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SettingsError } from './errors.js';
import { parseSshEndpoint, type SshEndpoint } from './ssh-endpoint.js';

type Kind = 'string' | 'path' | 'int' | 'list' | 'bool';

interface FieldSpec {
  /** commander's flag syntax. */
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly help: string;
  /** Whether a config file may set it (one-shot actions may not). Default true. */
  readonly inFile?: boolean;
}

/**
 * Every setting, once: the CLI flags, the environment variables, the config file keys and the
 * help text are all made from this table, so they cannot drift apart.
 */
export const FIELDS = {
  project: {
    flag: '--project <name>',
    env: 'CP_PROJECT',
    kind: 'string',
    help: "project to feed (its files.changed stream and log subjects); default: cpctrl's current project",
  },
  pod: {
    flag: '--pod <name>',
    env: 'CP_POD',
    kind: 'string',
    help: "the pod's name: events say this pod's workspace holds the bytes",
  },
  root: {
    flag: '--root <dir>',
    env: 'INOTIFY2NATS_ROOT',
    kind: 'path',
    help: 'directory to watch',
  },
  ssh: {
    flag: '--ssh <user@host[:port]>',
    env: 'INOTIFY2NATS_SSH',
    kind: 'string',
    help: "the pod's sshd (port 22 unless given; IPv6 as user@[::1]:2222)",
  },
  key: {
    flag: '--key <file>',
    env: 'INOTIFY2NATS_KEY',
    kind: 'path',
    help: 'private key for SSH (default ~/.ssh/id_ed25519)',
  },
  knownHosts: {
    flag: '--known-hosts <file>',
    env: 'INOTIFY2NATS_KNOWN_HOSTS',
    kind: 'path',
    help: "known_hosts holding the pod's host key; unknown keys are refused (default ~/.ssh/known_hosts)",
  },
  remoteRoot: {
    flag: '--remote-root <path>',
    env: 'INOTIFY2NATS_REMOTE_ROOT',
    kind: 'string',
    help: "the workspace in the pod; relative to the SSH user's home unless absolute",
  },
  stateDir: {
    flag: '--state-dir <dir>',
    env: 'INOTIFY2NATS_STATE_DIR',
    kind: 'path',
    help: 'where stamps persist (default $XDG_STATE_HOME/computepods/inotify2nats)',
  },
  nats: {
    flag: '--nats <urls>',
    env: 'NATS_URL',
    kind: 'string',
    help: 'NATS server URL(s), comma-separated (default nats://127.0.0.1:4222)',
  },
  creds: { flag: '--creds <file>', env: 'NATS_CREDS', kind: 'path', help: 'NATS credentials file' },
  log: {
    flag: '--log <pattern>',
    env: 'INOTIFY2NATS_LOG',
    kind: 'list',
    help: 'stream files matching this gitignore-style pattern like `tail -f` instead of syncing them (repeatable; the variable is comma-separated)',
  },
  ignore: {
    flag: '--ignore <pattern>',
    env: 'INOTIFY2NATS_IGNORE',
    kind: 'list',
    help: 'ignore files matching this gitignore-style pattern (repeatable; comma-separated)',
  },
  ignoreFile: {
    flag: '--ignore-file <file>',
    env: 'INOTIFY2NATS_IGNORE_FILE',
    kind: 'string',
    help: 'gitignore-syntax file, relative to the root (default .cpignore)',
  },
  debounceMs: {
    flag: '--debounce-ms <ms>',
    env: 'CP_DEBOUNCE_MS',
    kind: 'int',
    help: 'quiet time before a changed file is looked at (default 20)',
  },
  retryMaxMs: {
    flag: '--retry-max-ms <ms>',
    env: 'INOTIFY2NATS_RETRY_MAX_MS',
    kind: 'int',
    help: 'longest wait between two tries of an undelivered batch (default 30000)',
  },
  uploads: {
    flag: '--uploads <n>',
    env: 'INOTIFY2NATS_UPLOADS',
    kind: 'int',
    help: 'files uploaded at once (default 4)',
  },
  logLevel: {
    flag: '--log-level <level>',
    env: 'CP_LOG_LEVEL',
    kind: 'string',
    help: 'trace, debug, info, warn, error or silent (default info)',
  },
  resync: {
    flag: '--resync',
    env: 'INOTIFY2NATS_RESYNC',
    kind: 'bool',
    help: 'forget the stamps: upload and announce every file again (after the pod lost its workspace)',
    inFile: false,
  },
} as const satisfies Record<string, FieldSpec>;

export type FieldName = keyof typeof FIELDS;

/** The flag and variable that name the config file itself. */
export const CONFIG_FLAG = '--config <file>';
export const CONFIG_ENV = 'INOTIFY2NATS_CONFIG';

export const REQUIRED: readonly FieldName[] = ['project', 'pod', 'root', 'ssh', 'remoteRoot'];

const noControl = (s: string) => !/[\u0000-\u001f\u007f]/.test(s);

export const Settings = z.object({
  project: ProjectName,
  /** A subject token too: log chunks go to `cp.<project>.logs.<pod>`. */
  pod: ServiceName,
  root: z.string().min(1),
  ssh: z.string().transform((s, ctx): SshEndpoint => {
    try {
      return parseSshEndpoint(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  }),
  key: z.string().min(1),
  knownHosts: z.string().min(1),
  remoteRoot: z
    .string()
    .min(1)
    .refine(noControl, 'must not hold newlines or other control characters'),
  stateDir: z.string().min(1),
  nats: z.string().min(1),
  creds: z.string().min(1).optional(),
  log: z.array(z.string().min(1)),
  ignore: z.array(z.string().min(1)),
  ignoreFile: z.string().min(1),
  debounceMs: z.number().int().min(0).max(60_000),
  retryMaxMs: z.number().int().min(100).max(3_600_000),
  uploads: z.number().int().min(1).max(64),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  resync: z.boolean(),
  /** The config file read, if any (for messages). */
  configFile: z.string().optional(),
});
export type Settings = z.infer<typeof Settings>;

/** The shape a config file may have: every key optional, unknown keys refused. */
const FileShape = z
  .object({
    project: z.string(),
    pod: z.string(),
    root: z.string(),
    ssh: z.string(),
    key: z.string(),
    knownHosts: z.string(),
    remoteRoot: z.string(),
    stateDir: z.string(),
    nats: z.string(),
    creds: z.string(),
    log: z.union([z.string(), z.array(z.string())]),
    ignore: z.union([z.string(), z.array(z.string())]),
    ignoreFile: z.string(),
    debounceMs: z.number(),
    retryMaxMs: z.number(),
    uploads: z.number(),
    logLevel: z.string(),
  })
  .partial()
  .strict();

export interface SettingsSources {
  /** Values given as flags (commander's opts(), camelCase keys; absent when not given). */
  readonly cli: Readonly<Record<string, unknown>>;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly home: string;
}

function expandHome(p: string, home: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return join(home, p.slice(2));
  return p;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SettingsError(
      `cannot read config file ${path}: ${(err as Error).message}; fix --config / ${CONFIG_ENV}`,
      'config',
      { cause: err },
    );
  }
  let raw: unknown;
  try {
    // YAML 1.2 reads JSON too; JSON.parse first gives the better message for a .json file.
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new SettingsError(
      `config file ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
      'config',
      { cause: err },
    );
  }
  if (raw === null || raw === undefined) return {};
  const parsed = FileShape.safeParse(raw);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    if (issue?.code === 'unrecognized_keys') {
      const keys = issue.keys.join(', ');
      throw new SettingsError(
        `config file ${path}: unknown setting ${keys}; known settings: ${Object.keys(FileShape.shape).join(', ')}`,
        issue.keys[0],
      );
    }
    const first = firstIssue(parsed.error);
    throw new SettingsError(
      `config file ${path}: ${first ? issueLine(first) : parsed.error.message}`,
      first?.path || '(top level)',
    );
  }
  return parsed.data;
}

/** Turns a flag's or variable's text into the field's type; leaves junk for zod to name. */
function fromText(kind: Kind, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  switch (kind) {
    case 'int':
      return /^\s*\d+\s*$/.test(value) ? Number(value) : value;
    case 'list':
      return value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(value)) return true;
      if (/^(0|false|no|off|)$/i.test(value)) return false;
      return value;
    default:
      return value;
  }
}

function stateHome(env: NodeJS.ProcessEnv, home: string): string {
  const xdg = env.XDG_STATE_HOME;
  return xdg && isAbsolute(xdg) ? xdg : join(home, '.local', 'state');
}

/**
 * Merges flags, environment and config file (in that order of precedence), fills defaults and
 * validates. Every error names the setting and where the bad value came from.
 */
export function resolveSettings(src: SettingsSources): Settings {
  const { cli, env, cwd, home } = src;
  const configArg = (cli.config as string | undefined) ?? env[CONFIG_ENV];
  const configFile = configArg ? resolve(cwd, expandHome(configArg, home)) : undefined;
  const file = configFile ? readConfigFile(configFile) : {};

  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  for (const [name, spec] of Object.entries(FIELDS) as [FieldName, FieldSpec][]) {
    const envValue = env[spec.env];
    let value: unknown;
    let base = cwd;
    if (cli[name] !== undefined && !(Array.isArray(cli[name]) && cli[name].length === 0)) {
      value = cli[name];
      origin[name] = spec.flag.replace(/ .*/, ''); // the flag without its argument
    } else if (envValue !== undefined && envValue !== '') {
      value = envValue;
      origin[name] = `environment variable ${spec.env}`;
    } else if (
      configFile !== undefined &&
      spec.inFile !== false &&
      (file as Record<string, unknown>)[name] !== undefined
    ) {
      value = (file as Record<string, unknown>)[name];
      origin[name] = `${name} in ${configFile}`;
      base = dirname(configFile);
    } else continue;
    value = fromText(spec.kind, value);
    // Relative paths in a config file mean relative to that file, elsewhere to the cwd.
    if (spec.kind === 'path' && typeof value === 'string')
      value = resolve(base, expandHome(value, home));
    merged[name] = value;
  }

  // The current project, as for every client: cpctrl's context (`cpctrl project use NAME`).
  if (merged.project === undefined) {
    const current = cpctrlProject(env, home);
    if (current) {
      merged.project = current.project;
      origin.project = `the current project in ${current.file}`;
    }
  }

  for (const name of REQUIRED) {
    if (merged[name] === undefined) {
      const spec = FIELDS[name];
      throw new SettingsError(
        `missing ${name}: give ${spec.flag}, set ${spec.env}, or put "${name}:" in a config file (--config)`,
        name,
      );
    }
  }
  const withDefaults = {
    key: join(home, '.ssh', 'id_ed25519'),
    knownHosts: join(home, '.ssh', 'known_hosts'),
    stateDir: join(stateHome(env, home), 'computepods', 'inotify2nats'),
    nats: 'nats://127.0.0.1:4222',
    log: [],
    ignore: [],
    ignoreFile: '.cpignore',
    debounceMs: 5,
    retryMaxMs: 30_000,
    uploads: 4,
    logLevel: 'info',
    resync: false,
    ...merged,
    ...(configFile ? { configFile } : {}),
  };
  const parsed = Settings.safeParse(withDefaults);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    const name = String(issue?.path[0] ?? '');
    const where = origin[name] ?? `the default ${name}`;
    throw new SettingsError(
      `invalid ${name} (from ${where}): ${issue?.message ?? parsed.error.message}`,
      name,
    );
  }
  return parsed.data;
}

/** cpctrl's current project (its config file, as `cpctrl project use` writes it), if any. */
function cpctrlProject(
  env: Record<string, string | undefined>,
  home: string,
): { project: string; file: string } | undefined {
  const file =
    env.CPCTRL_CONFIG ||
    join(env.XDG_CONFIG_HOME || join(home, '.config'), 'computepods', 'cpctrl.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  const project = (raw as { project?: unknown } | null)?.project;
  return typeof project === 'string' ? { project, file } : undefined;
}
