import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { buckets, StatusReply, statusWithAllArtefacts } from '@computepods/protocol';
import type { ManagedProcess } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Stack } from './stack.js';
import { settled } from './watch-builds.js';

const RESTORED = /\{[^\n]*"msg":"graph restored[^\n]*\}/;

/**
 * Arrays sorted, keys in order, component numbers left out: two graphs numbered apart (a
 * snapshot's, in the order its paths first came; a listing's, in the bucket's order) compare.
 */
function canon(x: unknown): unknown {
  if (Array.isArray(x))
    return x
      .map(canon)
      .map((v) => [JSON.stringify(v), v] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, v]) => v);
  if (x && typeof x === 'object')
    return Object.fromEntries(
      Object.entries(x)
        .filter(([k, v]) => !((k === 'id' || k === 'component') && typeof v === 'number'))
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, canon(v)]),
    );
  return x;
}

/**
 * MajorDomo as its own process, killed -9: after builds and edits made since its graph snapshot
 * (an edit, a new source, a deleted one: keys written after the snapshot's revisions), a restart
 * restores from the snapshot and those keys; another, with the snapshot removed, from every
 * record. Both answer the same graph, plan and records.
 */
describe('MajorDomo killed -9 restores from its snapshot as from every record', () => {
  let stack: Stack;
  let url: string;

  const restoredFrom = (proc: ManagedProcess) => {
    const line = RESTORED.exec(proc.output)?.[0];
    if (!line) throw new Error('no "graph restored" line');
    return JSON.parse(line) as { from: string; tail?: { artefacts: number; traces: number } };
  };
  const rest = async (path: string) => {
    const res = await fetch(`${url}${path}`, {
      headers: { authorization: `Bearer ${stack.apiToken}` },
    });
    expect(res.status, path).toBe(200);
    return res.json() as Promise<unknown>;
  };
  /** What a restore decides, as the API answers it. */
  const observe = async () => {
    url = await stack.httpUrl();
    const status = await statusWithAllArtefacts(
      async (req) =>
        StatusReply.parse(
          await rest(
            `/api/status?artefacts=true&limit=${req.limit}${req.cursor ? `&cursor=${encodeURIComponent(req.cursor)}` : ''}`,
          ),
        ),
      { pageSize: 3 },
    );
    return {
      records: status.artefacts.map(({ updated: _, ...r }) => r),
      summary: status.summary,
      idle: status.idle,
      graph: canon(await rest('/api/graph?format=json')),
      plan: canon(await rest('/api/plan')),
    };
  };
  const restart = async () => {
    await stack.kill9('majordomo');
    return stack.start('majordomo');
  };

  beforeAll(async () => {
    stack = await Stack.start('snaprestore');
    // MajorDomo first, its snapshot of the empty project (no rules declared) stored before the
    // chef declares any: the first restart below uses it with the chef's rules applied to it
    // (planned with other rules) and every record since as its tail, and stores a new one.
    // Started together, the chef's rules could be in MajorDomo's first snapshot, and the first
    // restart would not store one (nothing to re-plan, a short tail).
    const md = await stack.start('majordomo');
    await md.waitForOutput(/"msg":"graph snapshot stored"/, 60_000);
    await Promise.all([
      stack.start('runner'),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'gen', CP_CHEF_DEFINITION: stack.writeUpperChef() }, 'chef'),
    ]);
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('after builds and edits since the snapshot', async () => {
    const done = (paths: string[]) => (s: StatusReply) =>
      paths.every((p) => s.artefacts.some((a) => a.path === p && a.status === 'up_to_date'));
    for (const stem of ['a', 'b', 'c']) await stack.write(`src/${stem}.txt`, `${stem}\n`);
    await settled(stack.bus, done(['out/a.upper', 'out/b.upper', 'out/c.upper']));
    // A restart planned with other rules than its snapshot (none) stores the snapshot of what is
    // built so far.
    const first = await restart();
    expect(restoredFrom(first).from).toBe('snapshot');
    await first.waitForOutput(/"msg":"graph snapshot stored"/, 60_000);

    // Since the snapshot: an edit, a new source, a deletion, and their builds.
    await stack.write('src/a.txt', 'a edited\n');
    await stack.write('src/d.txt', 'd\n');
    rmSync(join(stack.workspace, 'src/c.txt'));
    await settled(stack.bus, (s) => {
      const a = s.artefacts.find((x) => x.path === 'out/a.upper');
      return (
        done(['out/d.upper'])(s) &&
        !s.artefacts.some((x) => x.path === 'src/c.txt') &&
        a?.producer === 'upper:a' &&
        s.artefacts.some((x) => x.path === 'src/a.txt' && x.size === 9)
      );
    });

    const fromSnapshot = await restart();
    const said = restoredFrom(fromSnapshot);
    expect(said.from).toBe('snapshot');
    expect((said.tail?.artefacts ?? 0) + (said.tail?.traces ?? 0)).toBeGreaterThan(3);
    const viaSnapshot = await observe();

    await stack.kill9('majordomo');
    const heads = await stack.bus.kv(buckets.snapshot(stack.project), z.unknown(), {
      history: 1,
    });
    await heads.delete('head');
    const full = await stack.start('majordomo');
    expect(restoredFrom(full).from).toBe('buckets');
    const viaBuckets = await observe();

    expect(viaSnapshot).toEqual(viaBuckets);
    expect(viaBuckets.idle).toBe(true);
    expect(viaBuckets.records.map((r) => r.path)).toEqual(
      expect.arrayContaining(['out/a.upper', 'out/d.upper', 'src/a.txt', 'src/d.txt']),
    );
    expect(viaBuckets.records.some((r) => r.path === 'src/c.txt')).toBe(false);
  });
});
