// What grew between two V8 heap snapshots of one process (the soak bench writes them with
// CP_SOAK_HEAP=1): objects counted and sized by constructor (or type), largest growth first.
//   pnpm tsx bench/soak/heap-diff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [TOP]
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

function summary(file: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const types = s.snapshot.meta.node_types[0];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt!]!]!;
    // Objects by constructor; strings, code, arrays and the rest by their type.
    const key =
      type === 'object' || type === 'closure' ? s.strings[s.nodes[i + nameAt!]!]! : `(${type})`;
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += s.nodes[i + sizeAt!]!;
    out.set(key, e);
  }
  return out;
}

const [before, after, top = '25'] = process.argv.slice(2);
if (!before || !after) {
  console.error('usage: heap-diff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [TOP]');
  process.exit(2);
}
const a = summary(before);
const b = summary(after);
const total = (m: typeof a) => [...m.values()].reduce((x, e) => x + e.bytes, 0);
console.log(
  `heap: ${(total(a) / 2 ** 20).toFixed(1)} MiB → ${(total(b) / 2 ** 20).toFixed(1)} MiB`,
);
const rows = [...new Set([...a.keys(), ...b.keys()])]
  .map((k) => {
    const x = a.get(k) ?? { count: 0, bytes: 0 };
    const y = b.get(k) ?? { count: 0, bytes: 0 };
    return { k, count: y.count - x.count, bytes: y.bytes - x.bytes, now: y.count };
  })
  .sort((p, q) => q.bytes - p.bytes)
  .slice(0, Number(top));
for (const r of rows)
  console.log(
    `${(r.bytes / 1024).toFixed(1).padStart(10)} KiB  ${String(r.count).padStart(8)} objects (now ${r.now})  ${r.k.slice(0, 80)}`,
  );
