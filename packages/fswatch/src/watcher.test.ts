import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness, sleep, waitFor } from './test-helpers.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

function setup(): Harness {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  return h;
}

describe('FileWatcher', () => {
  it('reports a created file, then a change, then a delete', async () => {
    setup();
    const w = await h.start();
    writeFileSync(join(h.root, 'a.txt'), 'one');
    await waitFor(() => h.events.length === 1, 'created');
    expect(h.events[0]).toMatchObject({
      kind: 'created',
      path: 'a.txt',
      size: 3,
      sha256: sha('one'),
    });
    writeFileSync(join(h.root, 'a.txt'), 'two!');
    await waitFor(() => h.events.length === 2, 'changed');
    expect(h.events[1]).toMatchObject({
      kind: 'changed',
      path: 'a.txt',
      size: 4,
      sha256: sha('two!'),
    });
    rmSync(join(h.root, 'a.txt'));
    await waitFor(() => h.events.length === 3, 'deleted');
    expect(h.events[2]).toMatchObject({ kind: 'deleted', path: 'a.txt', sha256: null });
    await w.idle();
    expect(w.stats().stamps).toBe(0);
  });

  it('gives exactly one changed for a vim-style atomic save', async () => {
    setup();
    writeFileSync(join(h.root, 'main.tex'), 'old');
    const w = await h.start();
    await w.idle();
    expect(h.events).toMatchObject([{ kind: 'created', path: 'main.tex' }]);
    h.clear();
    const f = join(h.root, 'main.tex');
    writeFileSync(join(h.root, '4913'), '');
    rmSync(join(h.root, '4913'));
    renameSync(f, `${f}~`);
    writeFileSync(f, 'new content');
    rmSync(`${f}~`);
    await waitFor(() => h.events.length >= 1, 'the change');
    await sleep(300);
    await w.idle();
    expect(h.events).toEqual([
      expect.objectContaining({ kind: 'changed', path: 'main.tex', sha256: sha('new content') }),
    ]);
  });

  it('reports nothing for a touch', async () => {
    setup();
    writeFileSync(join(h.root, 'a.txt'), 'same');
    const w = await h.start();
    await w.idle();
    h.clear();
    const hashed = w.stats().hashed;
    const t = new Date(Date.now() + 5000);
    utimesSync(join(h.root, 'a.txt'), t, t);
    await waitFor(() => w.stats().hashed > hashed, 'the touched file to be hashed');
    await w.idle();
    await sleep(200);
    expect(h.events).toEqual([]);
  });
});

describe('FileWatcher under continuous writes', () => {
  it('reports a file written continuously within maxWait, and its final content', async () => {
    setup();
    const w = await h.start({ maxWaitMs: 150 });
    const f = join(h.root, 'stream.dat');
    const start = Date.now();
    let n = 0;
    while (Date.now() - start < 800 && h.events.length === 0) {
      writeFileSync(f, `version ${n++}`);
      await sleep(3);
    }
    expect(h.events.length).toBeGreaterThan(0);
    writeFileSync(f, 'final');
    await waitFor(() => h.events.at(-1)?.sha256 === sha('final'), 'the final content');
    await w.idle();
  });

  it('rejects a missing root with an actionable error', async () => {
    setup();
    const { FileWatcher } = await import('./watcher.js');
    const w = new FileWatcher({
      root: join(h.root, 'missing'),
      stampFile: h.stampFile,
      onBatch: async () => {},
    });
    await expect(w.start()).rejects.toMatchObject({ code: 'CP_FSWATCH_ROOT' });
    await w.close();
  });
});
