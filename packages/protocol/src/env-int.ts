import { z } from 'zod';

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
 * A whole number from the environment: `name`'s value when set and not empty, else
 * `fallback`. Digits only (no sign, fraction, exponent or spaces), within [min, max]; any
 * other value stops the service with the variable, the value and what it must be. The one
 * parser every service's configuration uses for numbers.
 */
export function envInt(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  fallback: number,
  options: EnvIntOptions = {},
): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const min = options.min ?? 1;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  const parsed = z
    .string()
    .regex(/^[0-9]{1,16}$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .safeParse(raw);
  if (parsed.success) return parsed.data;
  const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
  throw new Error(
    `${name} must be a whole number${options.unit ? ` of ${options.unit}` : ''}, ${range}; got ${JSON.stringify(raw)}`,
  );
}
