import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Harness, sleep, waitFor } from './test-helpers.js';
import type { FileEvent } from './types.js';

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

it('retries a rejected batch and loses nothing; stamps wait for the acknowledgement', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  let failing = true;
  let attempts = 0;
  const acked: FileEvent[][] = [];
  const w = await h.start({
    retryInitialMs: 20,
    onBatch: async (events) => {
      attempts++;
      if (failing) throw new Error('NATS unavailable');
      acked.push(events);
    },
  });
  writeFileSync(join(h.root, 'a.txt'), 'a');
  writeFileSync(join(h.root, 'b.txt'), 'b');
  await waitFor(() => attempts >= 3, 'a few failed attempts');
  expect(w.stats().retries).toBeGreaterThanOrEqual(2);
  // Not acknowledged: a crash now must find the change again, so nothing is recorded.
  expect(w.stats().stamps).toBe(0);
  failing = false;
  await waitFor(() => acked.flat().length === 2, 'delivery after recovery');
  await w.idle();
  expect(
    acked
      .flat()
      .map((e) => e.path)
      .sort(),
  ).toEqual(['a.txt', 'b.txt']);
  expect(w.stats().stamps).toBe(2);
});

it('after a crash before the acknowledgement, the next start reports the change', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  writeFileSync(join(h.root, 'a.txt'), 'v1');
  let w = await h.start();
  await w.idle();
  await h.stop();
  const seen: FileEvent[] = [];
  w = await h.start({
    closeTimeoutMs: 200,
    onBatch: async (events) => {
      seen.push(...events);
      throw new Error('publish failed');
    },
  });
  writeFileSync(join(h.root, 'a.txt'), 'v2');
  await waitFor(() => seen.length > 0, 'an attempt');
  await h.stop();
  h.clear();
  w = await h.start();
  await w.idle();
  expect(h.events).toEqual([expect.objectContaining({ kind: 'changed', path: 'a.txt', size: 2 })]);
});

it('drops events beyond maxPending and finds them again by rescan', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  let failing = true;
  const acked: FileEvent[] = [];
  const w = await h.start({
    maxPending: 50,
    retryInitialMs: 20,
    retryMaxMs: 100,
    onBatch: async (events) => {
      if (failing) throw new Error('down');
      acked.push(...events);
    },
  });
  for (let i = 0; i < 200; i++) writeFileSync(join(h.root, `f${i}`), `${i}`);
  await waitFor(() => w.stats().dropped > 0, 'a drop');
  expect(w.stats().pending).toBeLessThanOrEqual(250);
  failing = false;
  await waitFor(
    () => new Set(acked.map((e) => e.path)).size === 200,
    'all 200 after rescan',
    30_000,
  );
  await w.idle();
  expect(acked.every((e) => e.kind === 'created')).toBe(true);
});

it('holds events while .git/index.lock exists', async () => {
  h = new Harness();
  mkdirSync(join(h.root, '.git'), { recursive: true });
  const w = await h.start();
  const lock = join(h.root, '.git/index.lock');
  writeFileSync(lock, '');
  writeFileSync(join(h.root, 'a.c'), 'checkout 1');
  writeFileSync(join(h.root, 'b.c'), 'checkout 2');
  await waitFor(() => w.stats().held === 2, 'both files held');
  await sleep(200);
  expect(h.events).toEqual([]);
  rmSync(lock);
  await waitFor(() => h.events.length === 2, 'release');
  expect(existsSync(lock)).toBe(false);
  expect(h.events.map((e) => e.path).sort()).toEqual(['a.c', 'b.c']);
});
