import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defined } from '@computepods/testkit';
import { afterAll, afterEach, expect, it } from 'vitest';
import { StampFileError } from './errors.js';
import { isRacy, type Stamp, StampCache } from './stamps.js';

const dir = mkdtempSync(join(tmpdir(), 'cp-stamps-'));
afterEach(() => rmSync(join(dir, 'x'), { force: true }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stamp = (i: number): Stamp => ({
  mtimeNs: 1_700_000_000_123_456_789n + BigInt(i),
  ctimeNs: 1_700_000_000_223_456_789n + BigInt(i),
  size: i,
  ino: 18_446_744_073_709_000_000n + BigInt(i),
  sha256: i.toString(16).padStart(64, '0'),
  verifiedNs: 1_700_000_001_000_000_000n,
});

it('round-trips stamps and log offsets, including awkward file names', async () => {
  const c = new StampCache();
  const names = ['plain.txt', 'with\ttab', 'with\nnewline', 'back\\slash', 'ünï cödé/ä b.tex'];
  for (const [i, n] of names.entries()) c.set(n, stamp(i));
  c.setLog('logs/a.log', { ino: 42n, offset: 1234 });
  const file = join(dir, 'x');
  await c.save(file);
  const d = new StampCache();
  await d.load(file);
  for (const [i, n] of names.entries()) expect(d.get(n)).toEqual(stamp(i));
  expect(d.logs.get('logs/a.log')).toEqual({ ino: 42n, offset: 1234 });
  expect(d.pathOfIno(stamp(3).ino)).toBe('back\\slash');
  expect(d.isDirty).toBe(false);
});

it('loads what it saved for a tree of 20k entries', async () => {
  const c = new StampCache();
  for (let i = 0; i < 20_000; i++) c.set(`dir${i % 100}/file-${i}.txt`, stamp(i));
  const file = join(dir, 'x');
  await c.save(file);
  const d = new StampCache();
  await d.load(file);
  expect(d.size).toBe(20_000);
  expect(d.get('dir7/file-19907.txt')).toEqual(stamp(19_907));
});

it('treats a cut-short or foreign file as corrupt, a missing one as empty', async () => {
  const file = join(dir, 'x');
  const c = new StampCache();
  c.set('a', stamp(1));
  c.set('b', stamp(2));
  await c.save(file);
  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 20));
  const d = new StampCache();
  const err = await d.load(file).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(StampFileError);
  expect((err as StampFileError).code).toBe('CP_FSWATCH_STAMP_FILE');
  expect(d.size).toBe(0);
  writeFileSync(file, '{"not":"stamps"}');
  await expect(new StampCache().load(file)).rejects.toThrow(/parse/);
  const e = new StampCache();
  await e.load(join(dir, 'missing'));
  expect(e.size).toBe(0);
});

it('calls a stamp racy while its ctime is within the window of its verification', () => {
  const s = stamp(0);
  const window = 20_000_000n;
  expect(isRacy({ ...s, verifiedNs: s.ctimeNs + 5_000_000n }, window)).toBe(true);
  expect(isRacy({ ...s, verifiedNs: s.ctimeNs + 20_000_000n }, window)).toBe(false);
  // mtime set into the future (touch -d) does not make it racy: ctime is the kernel's clock.
  expect(
    isRacy({ ...s, mtimeNs: s.ctimeNs + 10n ** 12n, verifiedNs: s.ctimeNs + window }, window),
  ).toBe(false);
});

it('keeps a directory pristine until it changes, and saves names in scan order', async () => {
  const c = new StampCache();
  for (const n of ['b', 'a', 'c']) c.set(`dir/${n}`, stamp(n.charCodeAt(0)));
  c.set('top', stamp(1));
  expect(c.pristine('dir')).toBeUndefined();
  const file = join(dir, 'x');
  await c.save(file);
  const d = new StampCache();
  await d.load(file);
  const p = defined(d.pristine('dir'));
  expect(p.joined).toBe('a\0b\0c');
  expect(p.count).toBe(3);
  expect(d.get('dir/b')).toEqual(stamp('b'.charCodeAt(0)));
  // Reading keeps it pristine; a change does not.
  expect(d.pristine('dir')).toBeDefined();
  d.delete('dir/a');
  expect(d.pristine('dir')).toBeUndefined();
  expect(d.pristine('')).toBeDefined();
  await d.save(file);
  const e = new StampCache();
  await e.load(file);
  expect(defined(e.pristine('dir')).joined).toBe('b\0c');
  expect([...e.keys()].sort()).toEqual(['dir/b', 'dir/c', 'top']);
});

it('saves a changed directory in scan order again after names come and go between saves', async () => {
  const c = new StampCache();
  for (const n of ['m', 'c', 'x']) c.set(`dir/${n}`, stamp(n.charCodeAt(0)));
  const file = join(dir, 'x');
  const savedNames = async () => {
    await c.save(file);
    const d = new StampCache();
    await d.load(file);
    return defined(d.pristine('dir')).joined;
  };
  expect(await savedNames()).toBe('c\0m\0x');
  // A stamp rewritten keeps the names; a new one and a removed one change them.
  c.set('dir/m', stamp(7));
  expect(await savedNames()).toBe('c\0m\0x');
  c.set('dir/a', stamp(1));
  expect(await savedNames()).toBe('a\0c\0m\0x');
  c.delete('dir/m');
  c.set('dir/q', stamp(2));
  expect(await savedNames()).toBe('a\0c\0q\0x');
  const d = new StampCache();
  await d.load(file);
  expect(d.get('dir/a')).toEqual(stamp(1));
  expect(d.get('dir/q')).toEqual(stamp(2));
  expect(d.get('dir/x')).toEqual(stamp('x'.charCodeAt(0)));
  expect(d.get('dir/m')).toBeUndefined();
});
