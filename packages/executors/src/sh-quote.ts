import { UnsafeValueError } from './errors.js';

/**
 * Quotes a value for a POSIX shell script: single quotes, each ' written as '\''. Nothing in
 * single quotes is special to sh (not $, `, \, ; or newlines), so the value arrives literally.
 * NUL cannot be passed through a shell at all and is refused.
 */
export function shq(value: string, field = 'value'): string {
  if (value.includes('\0')) throw new UnsafeValueError(field, value, 'it contains a NUL byte');
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
