import { type ArtefactRecord, subjects } from '@computepods/protocol';
import { until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'gone';

/**
 * Files deleted together (one files.changed: `make clean`, pnpm bench cbuild's warm clean) leave
 * the graph and KV together: their records' deletes go out at once, not one KV round trip after
 * another, and their `missing` records are announced in one artefact.states message.
 */
describe('MajorDomo and a batch of deleted files', () => {
  const t = new TestMajorDomo(P);
  /** Each artefact.states message's records, as path=status. */
  const messages: string[][] = [];

  beforeAll(async () => {
    await t.open({ chef: false });
    t.bus.nc.subscribe(subjects.artefactState(P), {
      callback: (_e, m) => {
        const env = m.json() as { body: { records: ArtefactRecord[] } };
        messages.push(env.body.records.map((r) => `${r.path}=${r.status}`));
      },
    });
    await t.start();
  }, 60_000);
  afterAll(() => t.close());

  it('deletes their records and announces them missing in one message', async () => {
    const paths = ['src/a.txt', 'src/b.txt', 'src/c.txt'];
    await t.files(...paths.map((p) => t.changed(p, `${p}\n`)));
    const kv = await t.artefacts();
    await until(
      async () => (await Promise.all(paths.map((p) => kv.get(p)))).every((r) => r !== undefined),
      'the sources recorded',
    );
    await t.files(...paths.map((p) => t.deleted(p)));
    const missing = paths.map((p) => `${p}=missing`);
    await until(
      () => messages.some((m) => m.some((r) => r.endsWith('=missing'))),
      'the deletions announced',
    );
    await until(
      async () => (await Promise.all(paths.map((p) => kv.get(p)))).every((r) => r === undefined),
      'the records deleted',
    );
    expect(messages.filter((m) => m.some((r) => r.endsWith('=missing')))).toEqual([missing]);
    expect(paths.map((p) => t.md.inspect().dm.artefactState(p))).toEqual(
      paths.map(() => 'missing'),
    );
  });
});
