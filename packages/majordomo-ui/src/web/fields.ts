// A resource's or profile's settings as rows a person reads: nested objects flattened to
// dotted names, lists joined, in the order the API gives them.

/** `[name, value]` rows of `item`, without `skip`'s keys; at most `max` rows (then one "…"). */
export function fieldsOf(
  item: Record<string, unknown>,
  skip: readonly string[] = [],
  max = 200,
): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const walk = (value: unknown, name: string): void => {
    if (value === null || value === undefined) return;
    if (Array.isArray(value)) {
      if (value.every((v) => v === null || typeof v !== 'object'))
        rows.push([name, value.map(String).join(', ')]);
      else for (const [i, v] of value.entries()) walk(v, `${name}[${i}]`);
      return;
    }
    if (typeof value === 'object') {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length === 0) rows.push([name, '{}']);
      for (const [k, v] of entries) walk(v, name ? `${name}.${k}` : k);
      return;
    }
    rows.push([name, String(value)]);
  };
  for (const [k, v] of Object.entries(item)) if (!skip.includes(k)) walk(v, k);
  if (rows.length > max) return [...rows.slice(0, max), ['…', `${rows.length - max} more`]];
  return rows;
}
