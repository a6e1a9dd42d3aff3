import { shellQuote } from '@computepods/transport';
import { UnsafeValueError } from './errors.js';

/**
 * Quotes a value for a POSIX shell script with transport's shellQuote (the one quoter: single
 * quotes, each ' written as '\''), refusing NUL, which no shell can pass, with an error that
 * names the field the value came from.
 */
export function shq(value: string, field = 'value'): string {
  if (value.includes('\0')) throw new UnsafeValueError(field, value, 'it contains a NUL byte');
  return shellQuote(value);
}
