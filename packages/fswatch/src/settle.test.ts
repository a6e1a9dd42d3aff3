import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness, sleep, waitFor } from './test-helpers.js';
import type { FileWatcher } from './watcher.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

/**
 * The quiet window is short (5 ms), so it may fall between the two halves of a save. A file
 * found empty or gone is looked at once more `settleMs` later before that counts. Here the
 * gap between the halves (60 ms) is far longer than the quiet window and far shorter than
 * settleMs (2 s), so without the second look the half-way state is reported every time.
 */
describe('FileWatcher and saves caught half-way', () => {
  const start = async (content: string) => {
    h = new Harness();
    mkdirSync(h.root, { recursive: true });
    const f = join(h.root, 'main.tex');
    const fd = openSync(f, 'w');
    writeSync(fd, content);
    closeSync(fd);
    const w = await h.start({ debounceMs: 5, settleMs: 2000, maxWaitMs: 5000 });
    await w.idle();
    h.clear();
    return { w, f };
  };
  /** Exactly one event came, once all is quiet: `main.tex` changed to `content`. */
  const expectOneChange = async (w: FileWatcher, content: string) => {
    await waitFor(() => h.events.length >= 1, 'the change');
    await w.idle();
    expect(h.events).toEqual([
      expect.objectContaining({ kind: 'changed', path: 'main.tex', sha256: sha(content) }),
    ]);
  };

  it('reports a truncate, a pause, then the write as one change to the final bytes', async () => {
    const { w, f } = await start('old text');
    const fd = openSync(f, 'w');
    await sleep(60);
    writeSync(fd, 'new text, longer');
    closeSync(fd);
    await expectOneChange(w, 'new text, longer');
  });

  it('reports a rename dance with a pause as one change, not a delete and a create', async () => {
    const { w, f } = await start('old text');
    renameSync(f, `${f}~`);
    await sleep(60);
    const fd = openSync(f, 'w');
    writeSync(fd, 'saved by an editor');
    closeSync(fd);
    rmSync(`${f}~`);
    await expectOneChange(w, 'saved by an editor');
  });

  it('still reports a file that stays empty, and one that stays gone', async () => {
    const { w, f } = await start('old text');
    closeSync(openSync(f, 'w'));
    await waitFor(() => h.events.length >= 1, 'the emptied file');
    expect(h.events).toEqual([
      expect.objectContaining({ kind: 'changed', path: 'main.tex', size: 0, sha256: sha('') }),
    ]);
    rmSync(f);
    await waitFor(() => h.events.length >= 2, 'the deleted file');
    await w.idle();
    expect(h.events[1]).toMatchObject({ kind: 'deleted', path: 'main.tex' });
  });
});
