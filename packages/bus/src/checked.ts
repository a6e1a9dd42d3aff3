import type { z } from 'zod';

/**
 * Outgoing values checked once for a put and a publish of the same value (the chef's build
 * result goes to the builds bucket and to `build.result`, each validating it in full).
 * `checkedValue` validates a value and returns zod's output deeply frozen, remembered with the
 * schema it passed; `TypedKv` and `Bus.envelope` take such a value for that same schema without
 * parsing it again. A frozen value cannot change after its check (a write to it throws in
 * strict mode), so nothing invalid is sent through this path; any other value is parsed as before.
 * Frozen deeply: data under a `z.unknown()` field is the caller's own and is frozen too.
 */
const passed = new WeakMap<object, z.ZodType>();

export function checkedValue<S extends z.ZodType>(
  schema: S,
  value: z.input<S>,
  invalid: (error: z.ZodError) => Error,
): z.output<S> {
  if (isChecked(schema, value)) return value as z.output<S>;
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalid(parsed.error);
  const out = parsed.data;
  if (typeof out === 'object' && out !== null) passed.set(deepFreeze(out), schema);
  return out;
}

/** True when `value` is `checkedValue`'s output for this very schema. */
export function isChecked(schema: z.ZodType, value: unknown): boolean {
  return typeof value === 'object' && value !== null && passed.get(value) === schema;
}

function deepFreeze<T extends object>(value: T, seen = new Set<object>()): T {
  if (seen.has(value)) return value;
  seen.add(value);
  Object.freeze(value);
  for (const v of Object.values(value))
    if (typeof v === 'object' && v !== null) deepFreeze(v as object, seen);
  return value;
}
