/**
 * `value`, which the test expects to be there: the one stand-in for a non-null assertion (`!`)
 * in tests. Absent, the test fails here with `what` in the message instead of a TypeError later.
 *
 *   const task = defined(dm.ready().find((t) => t.ruleId === 'tex'), 'the tex task');
 */
export function defined<T>(value: T | null | undefined, what = 'value'): T {
  if (value === undefined || value === null) throw new Error(`expected ${what}, got ${value}`);
  return value;
}
