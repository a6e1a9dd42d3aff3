import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Harness, waitFor } from './test-helpers.js';

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

it('delivers a 10k-file burst complete, each file once, in few batches', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  const w = await h.start();
  // Simulates a checkout: many directories, files written back to back.
  const n = 10_000;
  for (let d = 0; d < 100; d++) mkdirSync(join(h.root, `src/d${d}`), { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(h.root, `src/d${i % 100}/f${i}.txt`), `file ${i}`);
  await waitFor(() => h.events.length >= n, `${n} events`, 50_000);
  await w.idle();
  const paths = h.events.map((e) => e.path);
  expect(new Set(paths).size).toBe(n);
  expect(paths.length).toBe(n);
  expect(h.events.every((e) => e.kind === 'created')).toBe(true);
  expect(h.batches.length).toBeLessThanOrEqual(100);
  expect(h.batches.every((b) => b.length <= 5000)).toBe(true);
  // And a rescan over the same tree finds nothing new.
  h.clear();
  await w.rescan();
  await w.idle();
  expect(h.events).toEqual([]);
  rmSync(join(h.root, 'src'), { recursive: true });
  await waitFor(() => h.events.length >= n, 'deletes', 50_000);
  await w.idle();
  expect(h.events.every((e) => e.kind === 'deleted')).toBe(true);
  expect(new Set(h.events.map((e) => e.path)).size).toBe(n);
  expect(w.stats().stamps).toBe(0);
}, 60_000);
