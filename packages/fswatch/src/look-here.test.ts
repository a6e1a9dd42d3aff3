import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { HERE_MAX_BYTES, HERE_MAX_PATHS, lookAt } from './look-here.js';
import { type CheckItem, WorkerPool } from './pool.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('lookAt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cp-look-here-'));
  const small = randomBytes(3000);
  const big = randomBytes(HERE_MAX_BYTES + 1);
  const pool = new WorkerPool(1);
  const item = (name: string, more: Partial<CheckItem> = {}): CheckItem => ({
    path: join(dir, name),
    expect: null,
    ...more,
  });

  beforeAll(() => {
    writeFileSync(join(dir, 'small.o'), small);
    writeFileSync(join(dir, 'big.bin'), big);
    writeFileSync(join(dir, 'empty.d'), '');
    mkdirSync(join(dir, 'sub'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await pool.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('looks at a few small files in this thread and sends only a big one to a worker', async () => {
    const sent: CheckItem[][] = [];
    const check = pool.check.bind(pool);
    vi.spyOn(pool, 'check').mockImplementation((items, bufSize) => {
      sent.push(items);
      return check(items, bufSize);
    });
    const res = await lookAt(pool, [
      item('small.o'),
      item('big.bin'),
      item('empty.d'),
      item('sub'),
      item('fifo'),
      item('gone'),
    ]);
    expect(res).toEqual([
      expect.objectContaining({ kind: 'hashed', sha256: sha(small), bytes: small.length }),
      expect.objectContaining({ kind: 'hashed', sha256: sha(big), bytes: big.length }),
      expect.objectContaining({ kind: 'hashed', sha256: sha(''), bytes: 0 }),
      { kind: 'dir' },
      // Never opened for reading: a FIFO would block the event loop.
      { kind: 'other' },
      { kind: 'missing' },
    ]);
    expect(sent).toEqual([[item('big.bin')]]);
  });

  it('answers a stat that matches the stamp without reading, here', async () => {
    const spy = vi.spyOn(pool, 'check');
    const [first] = await lookAt(pool, [item('small.o')]);
    if (first?.kind !== 'hashed') throw new Error(`expected hashed, got ${first?.kind}`);
    const [again, forced] = await lookAt(pool, [
      item('small.o', { expect: first.stat }),
      item('small.o', { expect: first.stat, force: true }),
    ]);
    expect(again).toEqual({ kind: 'same', stat: first.stat });
    expect(forced).toMatchObject({ kind: 'hashed', sha256: sha(small) });
    expect(spy).not.toHaveBeenCalled();
  });

  it('probes a new big file by its stat only, and hashes a new small one at once', async () => {
    const [bigProbe, smallProbe] = await lookAt(pool, [
      item('big.bin', { probe: true }),
      item('small.o', { probe: true }),
    ]);
    expect(bigProbe).toMatchObject({
      kind: 'probe',
      stat: [expect.any(BigInt), expect.any(BigInt), BigInt(big.length), expect.any(BigInt)],
    });
    expect(smallProbe).toMatchObject({ kind: 'hashed', sha256: sha(small) });
  });

  it('leaves a burst of paths to the workers', async () => {
    const spy = vi.spyOn(pool, 'check');
    const many = Array.from({ length: HERE_MAX_PATHS + 1 }, () => item('small.o'));
    const res = await lookAt(pool, many);
    expect(res.map((r) => r.kind)).toEqual(many.map(() => 'hashed'));
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0]?.[0]).toHaveLength(HERE_MAX_PATHS + 1);
  });
});
