import { z } from 'zod';
import { checkRelativePath } from './paths.js';

/**
 * A string value checked by a pattern alone (a SHA-256): tested in the loop, with no zod call per
 * value.
 */
export interface PatternValue {
  readonly pattern: RegExp;
  readonly message: string;
}

/** A value checked: as parsed, or the issue (at its key). */
type Checked = { value: unknown } | { issue: z.core.$ZodRawIssue };

/**
 * What `z.record(RelativePath, value)` accepts and gives (each key normalised by
 * checkRelativePath, each value as `value` parses it, the issues at the same paths), checked in
 * one loop, and the record given back as it came when nothing in it changes. zod's record runs
 * two schemas per entry and builds a new object, one new hidden class per path key: every build
 * request and result is parsed twice, by its sender and its receiver. What it saves grows with a
 * build's inputs: MajorDomo's part of a build (request made and validated, result parsed), the
 * first 200 builds of a process, 1,022 -> 328 µs with 21 inputs (a source and 20 headers), 218
 * -> 170 µs with 3 (pnpm bench cbuild's sources include 2 headers each); the chef's part 629 ->
 * 474 and 188 -> 174 µs (issue #15). Not for schemas whose JSON Schema is needed (a custom type
 * has none).
 */
export function pathRecord<V extends z.ZodType>(
  value: V,
): z.ZodType<Record<string, z.output<V>>, Record<string, z.input<V>>>;
export function pathRecord(
  value: PatternValue,
): z.ZodType<Record<string, string>, Record<string, string>>;
export function pathRecord(value: z.ZodType | PatternValue): z.ZodType {
  const check = valueCheck(value);
  return z.custom<Record<string, unknown>>().transform((input, ctx) => {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      ctx.addIssue({ code: 'invalid_type', expected: 'record', input, message: expected(input) });
      return z.NEVER;
    }
    let failed = false;
    let same = true;
    const keys = Object.keys(input);
    const values: unknown[] = new Array(keys.length);
    const normal: string[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const v = (input as Record<string, unknown>)[key];
      // A key refused leaves its value unchecked, as zod's record does.
      const k = relative(key, [key]);
      const c = typeof k === 'string' ? check(v, key) : { issue: k };
      if ('issue' in c) {
        failed = true;
        ctx.addIssue(c.issue);
        continue;
      }
      normal[i] = k as string;
      values[i] = c.value;
      if (k !== key || c.value !== v) same = false;
    }
    if (failed) return z.NEVER;
    if (same) return input;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) put(out, normal[i] as string, values[i]);
    return out;
  });
}

/**
 * What `z.array(RelativePath)` with these bounds accepts and gives (each path normalised by
 * checkRelativePath), checked in one loop; see pathRecord.
 */
export function pathList(bounds: { min?: number; max?: number } = {}): z.ZodType<string[]> {
  const { min = 0, max = Number.POSITIVE_INFINITY } = bounds;
  return z.custom<string[]>().transform((input, ctx) => {
    if (!Array.isArray(input)) {
      ctx.addIssue({
        code: 'invalid_type',
        expected: 'array',
        input,
        message: expected(input, 'array'),
      });
      return z.NEVER;
    }
    if (input.length < min)
      ctx.addIssue({
        code: 'too_small',
        origin: 'array',
        minimum: min,
        inclusive: true,
        input,
        message: `Too small: expected array to have >=${min} items`,
      });
    if (input.length > max)
      ctx.addIssue({
        code: 'too_big',
        origin: 'array',
        maximum: max,
        inclusive: true,
        input,
        message: `Too big: expected array to have <=${max} items`,
      });
    const out: string[] = new Array(input.length);
    let failed = input.length < min || input.length > max;
    for (let i = 0; i < input.length; i++) {
      const p = relative(input[i], [i]);
      if (typeof p === 'string') out[i] = p;
      else {
        failed = true;
        ctx.addIssue(p);
      }
    }
    return failed ? z.NEVER : out;
  });
}

type ValueCheck = (v: unknown, key: string) => Checked;

function valueCheck(value: z.ZodType | PatternValue): ValueCheck {
  if (!(value instanceof z.ZodType)) {
    const { pattern, message } = value;
    return (v, key) => {
      if (typeof v !== 'string')
        return {
          issue: {
            code: 'invalid_type',
            expected: 'string',
            input: v,
            path: [key],
            message: expected(v, 'string'),
          },
        };
      return pattern.test(v)
        ? { value: v }
        : {
            issue: {
              code: 'invalid_format',
              format: 'regex',
              pattern: pattern.source,
              input: v,
              path: [key],
              message,
            },
          };
    };
  }
  return (v, key) => {
    const r = value.safeParse(v);
    if (r.success) return { value: r.data };
    // The first issue, under the key (a record's value reports them all; one names the fault).
    const first = r.error.issues[0] as z.core.$ZodIssue;
    return { issue: { ...first, input: v, path: [key, ...first.path] } as z.core.$ZodRawIssue };
  };
}

/** The normalised path, or the issue at `path`. */
function relative(p: unknown, path: PropertyKey[]): string | z.core.$ZodRawIssue {
  if (typeof p !== 'string')
    return {
      code: 'invalid_type',
      expected: 'string',
      input: p,
      path,
      message: expected(p, 'string'),
    };
  try {
    return checkRelativePath(p);
  } catch (err) {
    return { code: 'custom', input: p, path, message: (err as Error).message };
  }
}

/** A key JSON.parse made an own property: set as one, never as the object's prototype. */
function put(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  else out[key] = value;
}

function expected(input: unknown, what = 'record'): string {
  const got = input === null ? 'null' : Array.isArray(input) ? 'array' : typeof input;
  return `Invalid input: expected ${what}, received ${got}`;
}
