import { z } from 'zod';

/**
 * One Python requirement as pip reads it ("numpy>=1.26", "pkg[extra]==1.0"): a name first,
 * never an option (no leading "-"), no quotes, no shell characters, no URL.
 */
export const PythonRequirement = z
  .string()
  .max(200)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._[\],<>=!~*+ -]*$/,
    'must be a requirement such as "numpy>=1.26" or "pkg[extra]==1.0" (a name first; no options, quotes or URLs)',
  );

/**
 * The environment a task runs in: a Python virtual environment of one of the resource's
 * tasks_python_config versions with these requirements installed, made once per resource and
 * reused by every task that names the same version and requirements (Fractal's
 * tasks_python_config / tasks_pip_cache_dir). The runner makes it where the task runs.
 */
/**
 * Said wherever pixi is asked for: Fractal's tasks_pixi_config is accepted as written (its JSON
 * must stay valid), but no pixi environment is ever made.
 */
export const PIXI_NOT_SUPPORTED =
  'pixi environments are not supported yet: pixi is packaged neither for Debian nor on npm, so ComputePods can neither make nor test one; name a Python version and requirements (tasks_python_config) instead, or build the tools into what runs the task';

export const TaskEnvironment = z.strictObject({
  /** A key of the resource's tasks_python_config.versions; default its default_version. */
  python: z
    .string()
    .regex(/^3\.[0-9]{1,2}$/, 'must be a version such as "3.12"')
    .optional(),
  requirements: z.array(PythonRequirement).max(200).default([]),
  /** Refused with PIXI_NOT_SUPPORTED (rather than as an unknown field): the reason is known. */
  pixi: z
    .unknown()
    .optional()
    .superRefine((v, ctx) => {
      if (v !== undefined) ctx.addIssue({ code: 'custom', message: PIXI_NOT_SUPPORTED });
    }),
});
export type TaskEnvironment = z.infer<typeof TaskEnvironment>;
