import { appendFileSync, mkdirSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defined } from '@computepods/testkit';
import { afterEach, expect, it } from 'vitest';
import { Harness, waitFor } from './test-helpers.js';
import type { LogChunk } from './types.js';

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

const text = (chunks: LogChunk[]) => chunks.map((c) => Buffer.from(c.data).toString()).join('');

it('streams a growing log in order, then reports truncation and rotation', async () => {
  h = new Harness();
  mkdirSync(join(h.root, 'logs'), { recursive: true });
  const chunks: LogChunk[] = [];
  const log = join(h.root, 'logs/build.log');
  writeFileSync(log, 'line 0\n');
  const w = await h.start({
    policies: [{ pattern: '*.log', policy: 'log' }],
    onLog: async (c) => {
      chunks.push(c);
    },
  });
  await waitFor(() => text(chunks) === 'line 0\n', 'the existing content');
  let expected = 'line 0\n';
  for (let i = 1; i <= 200; i++) {
    appendFileSync(log, `line ${i}\n`);
    expected += `line ${i}\n`;
  }
  await waitFor(() => text(chunks) === expected, 'all appended lines');
  // Offsets are contiguous: every byte once, in order.
  let off = 0;
  for (const c of chunks) {
    expect(c.offset).toBe(off);
    off += c.data.length;
  }
  expect(chunks.every((c) => c.path === 'logs/build.log')).toBe(true);
  // Log files are streamed, not reported as artefacts.
  expect(h.events).toEqual([]);

  const before = chunks.length;
  truncateSync(log, 0);
  appendFileSync(log, 'after truncate\n');
  await waitFor(() => chunks.slice(before).some((c) => c.truncated), 'truncation');
  await waitFor(
    () => text(chunks.slice(before)) === 'after truncate\n',
    'content after truncation',
  );
  const t = defined(chunks.slice(before).find((c) => c.truncated));
  expect(t.offset).toBe(0);

  const beforeRotate = chunks.length;
  appendFileSync(log, 'last old line\n');
  renameSync(log, `${log}.1`);
  writeFileSync(log, 'first new line\n');
  await waitFor(
    () => text(chunks.slice(beforeRotate)) === 'last old line\nfirst new line\n',
    'the old file drained, then the new one',
  );
  const r = defined(chunks.slice(beforeRotate).find((c) => c.rotated));
  expect(r.offset).toBe(0);
  expect(Buffer.from(r.data).toString()).toBe('first new line\n');
  await w.idle();
});

it('resumes a log after a restart at the last acknowledged offset', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  const log = join(h.root, 'run.log');
  writeFileSync(log, 'a\n');
  const chunks: LogChunk[] = [];
  const opts = {
    policies: [{ pattern: '*.log', policy: 'log' as const }],
    onLog: async (c: LogChunk) => {
      chunks.push(c);
    },
  };
  let w = await h.start(opts);
  await waitFor(() => text(chunks) === 'a\n', 'first line');
  await w.idle();
  await h.stop();
  appendFileSync(log, 'b\n');
  w = await h.start(opts);
  await waitFor(() => text(chunks) === 'a\nb\n', 'only the new line after restart');
  await w.idle();
  expect(chunks.at(-1)).toMatchObject({ offset: 2 });
});

it('retries a rejected log chunk without skipping bytes', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  const log = join(h.root, 'x.log');
  let fail = 2;
  const chunks: LogChunk[] = [];
  const w = await h.start({
    retryInitialMs: 10,
    policies: [{ pattern: '*.log', policy: 'log' }],
    onLog: async (c) => {
      if (fail-- > 0) throw new Error('not now');
      chunks.push(c);
    },
  });
  writeFileSync(log, 'hello\n');
  await waitFor(() => text(chunks) === 'hello\n', 'the chunk after retries');
  expect(defined(chunks[0], 'chunks[0]').offset).toBe(0);
  expect(w.stats().retries).toBe(2);
});
