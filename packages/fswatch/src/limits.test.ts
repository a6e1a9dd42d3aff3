import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defined } from '@computepods/testkit';
import { afterEach, expect, it } from 'vitest';
import { Harness, waitFor } from './test-helpers.js';
import type { Logger } from './types.js';

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

it('polls subtrees beyond the watch limit and says which sysctl to raise', async () => {
  h = new Harness();
  mkdirSync(join(h.root, 'a/deep'), { recursive: true });
  mkdirSync(join(h.root, 'b'), { recursive: true });
  writeFileSync(join(h.root, 'a/deep/x'), '1');
  const errors: Array<{ obj: Record<string, unknown>; msg?: string }> = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error: (obj, msg) => errors.push({ obj: obj as Record<string, unknown>, msg }),
  };
  // The same fallback as ENOSPC from inotify, reached through the watcher's own budget.
  const w = await h.start({ maxWatches: 1, pollIntervalMs: 50, logger });
  await w.idle();
  expect(w.stats().watches).toBe(1);
  expect(w.stats().polledDirs).toBe(3);
  expect(errors).toHaveLength(1);
  expect(defined(errors[0], 'errors[0]').obj.code).toBe('CP_FSWATCH_WATCH_LIMIT');
  expect(defined(errors[0], 'errors[0]').msg).toContain('maxWatches');
  h.clear();

  writeFileSync(join(h.root, 'a/deep/x'), 'changed');
  writeFileSync(join(h.root, 'b/new'), 'new');
  mkdirSync(join(h.root, 'b/sub'));
  writeFileSync(join(h.root, 'b/sub/inner'), 'inner');
  await waitFor(() => h.events.length >= 3, 'polled changes');
  await w.idle();
  const kinds = Object.fromEntries(h.events.map((e) => [e.path, e.kind]));
  expect(kinds).toEqual({ 'a/deep/x': 'changed', 'b/new': 'created', 'b/sub/inner': 'created' });

  h.clear();
  rmSync(join(h.root, 'a'), { recursive: true });
  await waitFor(() => h.events.length >= 1, 'delete in polled subtree');
  await w.idle();
  expect(h.events).toEqual([expect.objectContaining({ kind: 'deleted', path: 'a/deep/x' })]);
  // Unchanged files in polled directories are compared by stamp, never re-hashed.
  const hashed = w.stats().hashed;
  await new Promise((r) => setTimeout(r, 300));
  expect(w.stats().hashed).toBe(hashed);
  expect(h.events).toHaveLength(1);
});
