import type { Bus, Versioned } from '@computepods/bus';
import { buckets, type RulesDeclared, RulesDeclared as RulesSchema } from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { RulesWatch } from './rules-watch.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'ruleswatch';

type Seen = [string, RulesDeclared | undefined, number];

/**
 * One watch of a real rules bucket for several readers: each declaration is validated once and
 * every reader gets that one value (the same object), a declaration at the revision the restore
 * read is not parsed again, a reader added later gets the current values first, an invalid put
 * is skipped and a delete reported.
 */
describe('RulesWatch', () => {
  // A real nats-server and the test's own connection; no chef played, no MajorDomo started.
  const t = new TestMajorDomo(P);
  let bus: Bus;

  beforeAll(async () => {
    await t.open({ chef: false });
    bus = t.bus;
  });
  afterAll(async () => {
    await t.close();
  });

  const decl = (chef: string, srvId?: string): z.input<typeof RulesSchema> => ({
    chef,
    pod: 'pod-a',
    rules: [
      { id: `${chef}-up`, inputs: ['src/{stem}.txt'], outputs: ['out/{stem}.up'], command: 'true' },
    ],
    ...(srvId ? { srv: { name: 'chef', id: srvId } } : {}),
  });

  it('validates each declaration once for all its readers', async () => {
    const rules = await bus.kv(buckets.rules(P), RulesSchema);
    const a = await rules.put('a', decl('a'));
    await rules.put('b', decl('b'));
    // What the restore read of chef a (the same object is handed on, not a parse of it).
    const knownA = RulesSchema.parse(decl('a'));
    const known = new Map<string, Versioned<RulesDeclared>>([
      ['a', { value: knownA, revision: a }],
    ]);
    const watch = await RulesWatch.start(rules, known, bus.logger);
    const first: Seen[] = [];
    const second: Seen[] = [];
    await watch.watchValid((...s) => first.push(s));
    await untilDefined('both current values', async () => (first.length >= 2 ? true : undefined));
    expect(first.map(([chef]) => chef)).toEqual(['a', 'b']);
    expect(first[0]?.[1]).toBe(knownA);
    expect(first[1]?.[1]).toEqual(RulesSchema.parse(decl('b')));

    // Added later: the current values first, the same objects.
    await watch.watchValid((...s) => second.push(s));
    expect(second).toEqual(first);
    expect(second[1]?.[1]).toBe(first[1]?.[1]);

    // A heartbeat with a new $SRV id: parsed once, one object for both readers.
    await rules.put('a', decl('a', 'NEW1'));
    await untilDefined('the new declaration', async () => (first.length >= 3 ? true : undefined));
    await untilDefined('for both', async () => (second.length >= 3 ? true : undefined));
    expect(first[2]?.[1]?.srv?.id).toBe('NEW1');
    expect(second[2]?.[1]).toBe(first[2]?.[1]);

    // Invalid: skipped for both (the last valid value stands); a delete: undefined.
    await rules.kv.put('b', JSON.stringify({ chef: 'b', rules: 'not a list' }));
    await rules.kv.delete('a');
    await untilDefined('the delete', async () => (second.length >= 4 ? true : undefined));
    expect(first.slice(3)).toEqual([['a', undefined, expect.any(Number)]]);
    expect(second.slice(3)).toEqual(first.slice(3));
    watch.stop();
  });
});
