import { z } from 'zod';
import { CpError } from './errors.js';
import { checkName } from './names.js';

/**
 * One environment variable a program reads: its type, default and meaning, declared once. The
 * program reads it through loadEnv; its README's table is written from the same declaration
 * (envTable), so what is documented is what is read.
 */
export interface EnvVar<S extends z.ZodType = z.ZodType> {
  /** Parses the raw string; given undefined when the variable is unset or empty and has no default. */
  readonly schema: S;
  /** The raw value used when the variable is unset or empty. */
  readonly default?: string;
  /** The default as the README says it, when it is computed ("the host name"). */
  readonly shown?: string;
  /** One line: what it means. */
  readonly doc: string;
  /** Never echoed in an error (a token, a password). */
  readonly secret?: boolean;
}

export type EnvSpec = Readonly<Record<string, EnvVar>>;
export type EnvOf<S extends EnvSpec> = { readonly [K in keyof S]: z.output<S[K]['schema']> };

/** Declares a program's variables (kept as written, for typed loading). */
export function defineEnv<const S extends EnvSpec>(spec: S): S {
  return spec;
}

/** One or more variables hold values the program cannot use; `variables` names each. */
export class InvalidEnvError extends CpError {
  constructor(
    readonly variables: readonly string[],
    problems: readonly string[],
  ) {
    super('CP_INVALID_ENV', problems.join('; '));
  }
}

/**
 * Every declared variable of `env`, parsed: unset, empty or blank takes the default. Any bad value
 * throws one InvalidEnvError with a line per variable: its name, what it must be, what it got.
 */
export function loadEnv<const S extends EnvSpec>(
  spec: S,
  env: Readonly<Record<string, string | undefined>>,
): EnvOf<S> {
  const out: Record<string, unknown> = {};
  const bad: string[] = [];
  const problems: string[] = [];
  for (const [name, v] of Object.entries(spec)) {
    const given = env[name];
    const raw = given === undefined || given.trim() === '' ? v.default : given;
    const parsed = v.schema.safeParse(raw);
    if (parsed.success) {
      out[name] = parsed.data;
      continue;
    }
    bad.push(name);
    const why = parsed.error.issues.map((i) => i.message).join(', ');
    // Unset: the message says what to set; a secret's value is never repeated.
    const got = raw === undefined || v.secret ? '' : `; got ${JSON.stringify(raw)}`;
    problems.push(`${name} ${why}${got}`);
  }
  if (problems.length) throw new InvalidEnvError(bad, problems);
  return out as EnvOf<S>;
}

/** The README table of `spec`: variable, default, meaning. */
export function envTable(spec: EnvSpec): string {
  const cell = (s: string) => s.replaceAll('|', '\\|');
  const rows = Object.entries(spec).map(([name, v]) => {
    const shown = v.shown ?? (v.default === undefined ? '–' : `\`${v.default}\``);
    return `| \`${name}\` | ${cell(shown)} | ${cell(v.doc)} |`;
  });
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

// The types variables take. Each message completes "NAME ...", e.g. "CP_X must be a name".

/** Any text (optional unless declared with a default). */
export const envText = () => z.string().optional();

/** Text that must be given (a default makes it always so). */
export const envString = () => z.string({ error: 'must be set' });

/** A name that goes into a subject or a path (a project, a chef, a pod, a queue). */
export const envName = () =>
  z.string({ error: 'must be set' }).refine(
    (v) => {
      try {
        checkName('name', v);
        return true;
      } catch {
        return false;
      }
    },
    {
      error:
        'must be 1-63 characters: lower-case letters, digits, "-" or "_", starting with a letter or digit',
    },
  );

/** CP_PROJECT, which every service reads: declared once, spread into each service's own. */
export const projectEnv = defineEnv({
  CP_PROJECT: {
    schema: envName(),
    default: 'demo',
    doc: 'the project: the unit of isolation (subjects, streams, buckets)',
  },
});

/** An optional name (absent: the program computes one). */
export const envOptionalName = () => envName().optional();

/** `1` or `true` switches it on; `0`, `false` or unset off. */
export const envFlag = () =>
  z
    .enum(['1', 'true', '0', 'false'], { error: 'must be 1, true, 0 or false' })
    .optional()
    .transform((v) => v === '1' || v === 'true');

/** Comma-separated items, trimmed, empty ones dropped. */
export const envList = () =>
  z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );

/** One of `values`. */
export const envEnum = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `must be one of ${values.join(', ')}` });
