import { z } from 'zod';
import { loadEnv } from './env.js';

export interface EnvIntOptions {
  /** Smallest value allowed (default 1). */
  readonly min?: number;
  /** Largest value allowed (default: none). A Node timer holds at most 2^31-1 ms. */
  readonly max?: number;
  /** What the number counts, for the message ("ms", "seconds" ...). */
  readonly unit?: string;
}

/** Milliseconds a Node timer can wait: at most 2^31-1 (longer fires at once). */
export const TIMER_MS: EnvIntOptions = { max: 2 ** 31 - 1, unit: 'ms' };

/**
 * A whole number variable's type (for defineEnv): digits only (no sign, fraction, exponent or
 * spaces), within [min, max]. The one parser every program's configuration uses for numbers.
 */
export function envIntType(options: EnvIntOptions = {}) {
  const min = options.min ?? 1;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
  const error = `must be a whole number${options.unit ? ` of ${options.unit}` : ''}, ${range}`;
  return z
    .string({ error })
    .regex(/^[0-9]{1,16}$/, { error })
    .transform(Number)
    .pipe(z.number().int().min(min, { error }).max(max, { error }));
}

/**
 * A whole number from the environment: `name`'s value when set and not empty, else `fallback`
 * (envIntType's rules). For a variable not (yet) declared with defineEnv.
 */
export function envInt(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  fallback: number,
  options: EnvIntOptions = {},
): number {
  const spec = { [name]: { schema: envIntType(options), default: String(fallback), doc: '' } };
  return loadEnv(spec, env)[name] as number;
}
