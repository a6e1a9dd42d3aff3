import { type ArtefactRecord, subjects } from '@computepods/protocol';
import { until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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

  it('announces them in one message when their deletes are stored in different turns', async () => {
    // One path's delete waits for its write before it (the edit just before the deletion, still
    // in flight): its ack comes a round trip after the others'. The batch is announced once its
    // writes are all stored, not at the end of whichever turn each ack came in (a load of 14
    // split even three deletes sent together across two socket reads).
    const paths = ['src/d.txt', 'src/e.txt', 'src/f.txt'];
    await t.files(...paths.map((p) => t.changed(p, `${p}\n`)));
    const kv = await t.artefacts();
    await until(
      async () => (await Promise.all(paths.map((p) => kv.get(p)))).every((r) => r !== undefined),
      'the sources recorded',
    );
    messages.length = 0;
    await Promise.all([
      t.files(t.changed('src/f.txt', 'edited\n')),
      t.files(...paths.map((p) => t.deleted(p))),
    ]);
    await until(
      async () => (await Promise.all(paths.map((p) => kv.get(p)))).every((r) => r === undefined),
      'the records deleted',
    );
    await until(
      () => messages.flat().filter((r) => r.endsWith('=missing')).length >= 3,
      'the deletions announced',
    );
    expect(messages.filter((m) => m.some((r) => r.endsWith('=missing')))).toEqual([
      paths.map((p) => `${p}=missing`),
    ]);
  });

  it('logs a batch of changed files in one line, naming a few', async () => {
    // A checkout brings thousands of files in a batch: a line each was thousands of lines.
    const info = vi.spyOn(t.mdBus.logger, 'info');
    const debug = vi.spyOn(t.mdBus.logger, 'debug');
    try {
      const paths = Array.from({ length: 12 }, (_, i) => `co/f${i}.txt`);
      await t.files(...paths.map((p) => t.changed(p, `${p}\n`)));
      const kv = await t.artefacts();
      await until(
        async () => (await Promise.all(paths.map((p) => kv.get(p)))).every((r) => r !== undefined),
        'the sources recorded',
      );
      const lines = (spy: typeof info, msg: string) =>
        spy.mock.calls.filter((c) => c[1] === msg).map((c) => c[0] as Record<string, unknown>);
      expect(lines(info, 'file changed')).toEqual([]);
      expect(lines(info, 'files changed')).toEqual([
        expect.objectContaining({ files: 12, paths: paths.slice(0, 5) }),
      ]);
      expect(lines(debug, 'file changed').map((l) => l.path)).toEqual(paths);
      info.mockClear();
      await t.files(t.changed('co/f0.txt', 'edited\n'));
      await until(
        async () =>
          (await kv.get('co/f0.txt'))?.value.sha256 !== undefined &&
          lines(info, 'file changed').length > 0,
        'the edit logged',
      );
      expect(lines(info, 'file changed')).toEqual([
        expect.objectContaining({ files: 1, paths: ['co/f0.txt'] }),
      ]);
    } finally {
      info.mockRestore();
      debug.mockRestore();
    }
  });
});
