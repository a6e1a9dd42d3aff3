import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { StampCache } from './stamps.js';
import { Harness, waitFor } from './test-helpers.js';

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

it('restarts over 20k unchanged files without hashing any', async () => {
  h = new Harness();
  for (let d = 0; d < 200; d++) {
    mkdirSync(join(h.root, `d${d}`), { recursive: true });
    for (let i = 0; i < 100; i++) writeFileSync(join(h.root, `d${d}/f${i}`), `${d}/${i}`);
  }
  let w = await h.start();
  await w.idle();
  expect(h.events.length).toBe(20_000);
  expect(w.stats().hashed).toBeGreaterThanOrEqual(20_000);
  await h.stop();
  h.clear();
  w = await h.start();
  await w.idle();
  expect(w.stats().hashed).toBe(0);
  expect(w.stats().scanned).toBeGreaterThanOrEqual(20_000);
  expect(h.events).toEqual([]);
  // One file edited while stopped, same names everywhere: only it is read and reported.
  await h.stop();
  writeFileSync(join(h.root, 'd7/f42'), 'edited while stopped');
  w = await h.start();
  await w.idle();
  expect(h.events).toEqual([expect.objectContaining({ kind: 'changed', path: 'd7/f42' })]);
  expect(w.stats().hashed).toBe(1);
}, 60_000);

it('reports what changed while it was stopped, and recognises a move', async () => {
  h = new Harness();
  mkdirSync(join(h.root, 'sub'), { recursive: true });
  writeFileSync(join(h.root, 'keep.txt'), 'keep');
  writeFileSync(join(h.root, 'edit.txt'), 'before');
  writeFileSync(join(h.root, 'gone.txt'), 'gone');
  writeFileSync(join(h.root, 'sub/big.bin'), Buffer.alloc(3 << 20, 7));
  let w = await h.start();
  await w.idle();
  expect(h.events.length).toBe(4);
  await h.stop();
  const stamps = new StampCache();
  await stamps.load(h.stampFile);
  expect(stamps.has('sub/big.bin')).toBe(true);
  expect(stamps.size).toBe(4);

  writeFileSync(join(h.root, 'edit.txt'), 'after!');
  rmSync(join(h.root, 'gone.txt'));
  writeFileSync(join(h.root, 'new.txt'), 'new');
  renameSync(join(h.root, 'sub/big.bin'), join(h.root, 'moved.bin'));
  h.clear();
  w = await h.start();
  await w.idle();
  const byPath = Object.fromEntries(h.events.map((e) => [e.path, e]));
  expect(Object.keys(byPath).sort()).toEqual(['edit.txt', 'gone.txt', 'moved.bin', 'new.txt']);
  expect(byPath['edit.txt']).toMatchObject({ kind: 'changed', size: 6 });
  expect(byPath['gone.txt']).toMatchObject({ kind: 'deleted', sha256: null });
  expect(byPath['new.txt']).toMatchObject({ kind: 'created', size: 3 });
  expect(byPath['moved.bin']).toMatchObject({ kind: 'moved', from: 'sub/big.bin', size: 3 << 20 });
  // The move was recognised by inode: its 3 MiB were not read again.
  expect(w.stats().hashedBytes).toBeLessThan(100);
});

it('recognises a rename while watching', async () => {
  h = new Harness();
  mkdirSync(join(h.root, 'a'), { recursive: true });
  writeFileSync(join(h.root, 'a/x.dat'), 'payload');
  const w = await h.start();
  await w.idle();
  h.clear();
  renameSync(join(h.root, 'a/x.dat'), join(h.root, 'y.dat'));
  await waitFor(() => h.events.length > 0, 'the move');
  await w.idle();
  expect(h.events).toEqual([
    expect.objectContaining({ kind: 'moved', path: 'y.dat', from: 'a/x.dat', size: 7 }),
  ]);
  // A directory rename moves every file in it.
  h.clear();
  writeFileSync(join(h.root, 'a/z.dat'), 'zzz');
  await waitFor(() => h.events.length > 0, 'created');
  await w.idle();
  h.clear();
  renameSync(join(h.root, 'a'), join(h.root, 'b'));
  await waitFor(() => h.events.length > 0, 'the directory move');
  await w.idle();
  expect(h.events).toEqual([
    expect.objectContaining({ kind: 'moved', path: 'b/z.dat', from: 'a/z.dat' }),
  ]);
  writeFileSync(join(h.root, 'b/z.dat'), 'changed in the moved directory');
  await waitFor(() => h.events.length > 1, 'change in moved dir');
  expect(h.events[1]).toMatchObject({ kind: 'changed', path: 'b/z.dat' });
});

it('adopts a renamed file over 64 KiB without reading it, while watching', async () => {
  h = new Harness();
  mkdirSync(join(h.root, 'a'), { recursive: true });
  writeFileSync(join(h.root, 'a/big.bin'), Buffer.alloc(1 << 20, 7));
  const w = await h.start();
  await w.idle();
  h.clear();
  const read = w.stats().hashedBytes;
  renameSync(join(h.root, 'a/big.bin'), join(h.root, 'big.bin'));
  await waitFor(() => h.events.length > 0, 'the move');
  await w.idle();
  expect(h.events).toEqual([
    expect.objectContaining({ kind: 'moved', path: 'big.bin', from: 'a/big.bin', size: 1 << 20 }),
  ]);
  // Recognised by its inode from one lstat (a small file is read at once instead).
  expect(w.stats().hashedBytes).toBe(read);
});

it('handles a file replaced by a directory, and rules that changed, while stopped', async () => {
  h = new Harness();
  mkdirSync(join(h.root, 'build'), { recursive: true });
  writeFileSync(join(h.root, 'thing'), 'a file');
  writeFileSync(join(h.root, 'build/out.o'), 'object');
  writeFileSync(join(h.root, 'notes.tmp'), 'scratch');
  let w = await h.start();
  await w.idle();
  expect(h.events.length).toBe(3);
  await h.stop();
  rmSync(join(h.root, 'thing'));
  mkdirSync(join(h.root, 'thing'));
  writeFileSync(join(h.root, 'thing/inside'), 'x');
  h.clear();
  // build/ and *.tmp are ignored now: their stamps are forgotten, not reported deleted.
  w = await h.start({ ignore: ['build/', '*.tmp'] });
  await w.idle();
  const got = h.events.map((e) => `${e.kind} ${e.path}`).sort();
  expect(got).toEqual(['created thing/inside', 'deleted thing']);
  expect(w.stats().stamps).toBe(1);
});

it('announces again, after a restart, a file changed since its saved stamp whose bytes are those again', async () => {
  // The stamp file is saved a while after each acknowledged batch: edited to B (announced and
  // acknowledged), edited back to A and killed before A's batch was, the file's saved stamp says
  // A while the consumer has B. Same bytes as that stamp, but a change since it: announced.
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  writeFileSync(join(h.root, 'back.txt'), 'A');
  writeFileSync(join(h.root, 'still.txt'), 'still');
  let w = await h.start();
  await w.idle();
  await h.stop();
  writeFileSync(join(h.root, 'back.txt'), 'B');
  writeFileSync(join(h.root, 'back.txt'), 'A');
  h.clear();
  w = await h.start();
  await w.idle();
  expect(h.events).toEqual([expect.objectContaining({ kind: 'changed', path: 'back.txt' })]);
  // Acknowledged in this life: the next restart finds it as saved, and says nothing.
  await h.stop();
  h.clear();
  w = await h.start();
  await w.idle();
  expect(h.events).toEqual([]);
});
