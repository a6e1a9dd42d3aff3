import type { CompiledRule } from './rule.js';

/** One required input of a rule: a path that becomes available may instantiate it there. */
export interface Slot {
  readonly rule: CompiledRule;
  readonly input: number;
}

/**
 * Every rule's required inputs, found by what a path can match: literal patterns by their path,
 * others by the extension they end in, the rest scanned. In rule order within each list.
 */
export class SlotIndex {
  private readonly exact = new Map<string, Slot[]>();
  private readonly byExt = new Map<string, Slot[]>();
  private scan: Slot[] = [];

  constructor(rules: Iterable<CompiledRule>) {
    for (const rule of rules) this.add(rule);
  }

  add(rule: CompiledRule): void {
    rule.required.forEach((pattern, input) => {
      const slot = { rule, input };
      if (!pattern.placeholders) pushTo(this.exact, pattern.source, slot);
      else if (pattern.ext !== undefined) pushTo(this.byExt, pattern.ext, slot);
      else this.scan.push(slot);
    });
  }

  remove(rule: CompiledRule): void {
    const keep = (s: Slot) => s.rule !== rule;
    for (const map of [this.exact, this.byExt]) {
      for (const [key, slots] of map) {
        const left = slots.filter(keep);
        if (left.length) map.set(key, left);
        else map.delete(key);
      }
    }
    this.scan = this.scan.filter(keep);
  }

  /** The slot lists a path with extension `ext` may match. */
  candidates(path: string, ext: string): ReadonlyArray<Slot[] | undefined> {
    return [this.exact.get(path), this.byExt.get(ext), this.scan];
  }
}

export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
