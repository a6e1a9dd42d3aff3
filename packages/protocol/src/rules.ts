import { z } from 'zod';
import { TaskEnvironment } from './environments.js';
import { ServiceName } from './names.js';

const Pattern = z
  .string()
  .min(1)
  .max(500)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), {
    message: 'a pattern is project-relative and may not contain ".."',
  });

export const ArtefactType = z.object({
  name: z.string().min(1).max(100),
  extensions: z.array(z.string().min(1).max(50)),
});

/** Bounds of a projection command: argv length, each argument, time, output. */
export const PROJECTION_LIMITS = {
  argv: 32,
  arg: 1000,
  timeoutMs: { default: 5_000, max: 60_000 },
  maxOutputBytes: { default: 1 << 20, max: 64 << 20 },
} as const;

/**
 * The part of one input a rule really reads. The graph compares the projection's hash instead of
 * the file's for change detection and early cutoff: the step reruns only when that part changed.
 * Exactly one of `lines` (a regular expression: the lines it matches, without their line ending,
 * count; the others do not) or `command` (an argv run without a shell, the input on stdin; its
 * stdout is the projection; a failure, a timeout or more output than allowed means the whole
 * file counts). A projection must keep everything the step reads, or an edit goes unseen.
 */
export const InputProjection = z
  .object({
    /** One of the rule's inputs or optional inputs, exactly as written there. */
    input: Pattern,
    lines: z
      .string()
      .min(1)
      .max(500)
      .refine(
        (p) => {
          try {
            new RegExp(p);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'not a valid regular expression' },
      )
      .optional(),
    command: z
      .array(z.string().min(1).max(PROJECTION_LIMITS.arg), {
        error: 'an argv array of strings, such as ["sort", "-u"] (no shell)',
      })
      .min(1, 'an argv array: the program, then its arguments')
      .max(PROJECTION_LIMITS.argv)
      .optional(),
    timeoutMs: z
      .number()
      .int()
      .min(1)
      .max(PROJECTION_LIMITS.timeoutMs.max)
      .default(PROJECTION_LIMITS.timeoutMs.default),
    maxOutputBytes: z
      .number()
      .int()
      .min(1)
      .max(PROJECTION_LIMITS.maxOutputBytes.max)
      .default(PROJECTION_LIMITS.maxOutputBytes.default),
  })
  .strict()
  .superRefine((p, ctx) => {
    if ((p.lines === undefined) === (p.command === undefined))
      ctx.addIssue({
        code: 'custom',
        path: p.lines === undefined ? ['lines'] : ['command'],
        message: 'give exactly one of lines (a regular expression) or command (an argv array)',
      });
  });
export type InputProjection = z.infer<typeof InputProjection>;

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const placeholders = (pattern: string) =>
  [...pattern.matchAll(PLACEHOLDER)].flatMap(([, name]) => (name === undefined ? [] : [name]));

export const Rule = z
  .object({
    /** Unique within the project; task ids are `${id}:${stem}`. */
    id: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, 'letters, digits, "-" or "_"'),
    inputs: z.array(Pattern).min(1),
    /** Used only if they exist (an .aux is both an output and an input of the same rule). */
    optionalInputs: z.array(Pattern).default([]),
    outputs: z.array(Pattern).min(1),
    /**
     * Files the command writes besides its outputs (.log, .fls, .blg, .d ...): products of the
     * build, never sources, and not hashed into its result.
     */
    auxiliaries: z.array(Pattern).default([]),
    /**
     * Not declared: offered only when MajorDomo asks how to build a goal it matches (a rule such
     * as `{stem}.wc` from `{stem}` would otherwise instantiate for every file).
     */
    onDemand: z.boolean().default(false),
    /** A shell command template; {stem}, {in}, {out}, {in0}, {out0}... are quoted when filled. */
    command: z.string().min(1).max(10_000),
    resource: ServiceName.default('local'),
    profile: z.string().max(200).optional(),
    /**
     * The task needs a GPU: on SLURM its job takes the resource's gpu_slurm_config over the
     * default one; a SLURM resource without one fails the task saying so. A local task sees
     * whatever devices the runner's machine has.
     */
    gpu: z.boolean().default(false),
    /** The task's Python environment, made once per resource and reused (TaskEnvironment). */
    environment: TaskEnvironment.optional(),
    /** Line regexes ignored when deciding whether an output changed (early cutoff). */
    cutoffIgnore: z.array(z.string().max(500)).default([]),
    passLimit: z.number().int().min(1).max(100).optional(),
    /** How the chef finds dependencies discovered while building. */
    discover: z.enum(['none', 'makedepend', 'latex']).default('none'),
    /** Inputs the rule reads only part of (see InputProjection). */
    projections: z.array(InputProjection).max(16).default([]),
  })
  .superRefine((rule, ctx) => {
    // The first input binds the placeholders (it names the instance): one used elsewhere that
    // it does not bind can never be filled, and MajorDomo could not plan the rule.
    const bound = new Set(placeholders(rule.inputs[0] ?? ''));
    const lists = ['inputs', 'optionalInputs', 'outputs', 'auxiliaries'] as const;
    for (const field of lists)
      rule[field].forEach((pattern, i) => {
        const unbound = placeholders(pattern).find((n) => !bound.has(n));
        if (unbound !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: [field, i],
            message: `placeholder {${unbound}} is not in the first input ${JSON.stringify(rule.inputs[0])}; name it there or remove it`,
          });
      });
    const projected = new Set<string>();
    rule.projections.forEach((p, i) => {
      if (!rule.inputs.includes(p.input) && !rule.optionalInputs.includes(p.input))
        ctx.addIssue({
          code: 'custom',
          path: ['projections', i, 'input'],
          message: `${JSON.stringify(p.input)} is not one of the rule's inputs or optional inputs`,
        });
      if (projected.has(p.input))
        ctx.addIssue({
          code: 'custom',
          path: ['projections', i, 'input'],
          message: `${JSON.stringify(p.input)} has a projection already`,
        });
      projected.add(p.input);
    });
  });
export type Rule = z.infer<typeof Rule>;
export type RuleInput = z.input<typeof Rule>;

/** A chef's declaration of what it can build. Re-sent on start and kept in KV. */
export const RulesDeclared = z.object({
  chef: ServiceName,
  pod: z.string().min(1).max(200),
  types: z.array(ArtefactType).default([]),
  rules: z.array(Rule),
  /** The chef's $SRV identity: MajorDomo PINGs it and retires the chef when nothing answers. */
  srv: z.object({ name: ServiceName, id: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/) }).optional(),
});
export type RulesDeclared = z.infer<typeof RulesDeclared>;
