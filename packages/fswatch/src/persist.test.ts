import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { StampCache } from './stamps.js';
import { Harness, sleep, waitFor } from './test-helpers.js';

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

/** Whether the stamp file on disk holds `path`'s stamp. */
async function saved(path: string): Promise<boolean> {
  if (!existsSync(h.stampFile)) return false;
  const stamps = new StampCache();
  await stamps.load(h.stampFile);
  return stamps.has(path);
}

/** Polls `saved(path)` until it holds (generous: machines are shared). */
async function untilSaved(path: string, what: string): Promise<void> {
  const until = performance.now() + 20_000;
  while (!(await saved(path))) {
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

it('saves stamps that keep changing persistMaxDelayMs after the first, with no quiet moment', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  // Never still for persistDelayMs (a minute) while files keep coming: only the maximum delay
  // can have the stamps written before the writes stop.
  await h.start({ persistDelayMs: 60_000, persistMaxDelayMs: 300 });
  let writing = true;
  let n = 0;
  const writer = (async () => {
    while (writing) {
      writeFileSync(join(h.root, `f${n}.txt`), `file ${n}`);
      n++;
      await sleep(20);
    }
  })();
  try {
    await waitFor(() => h.events.some((e) => e.path === 'f0.txt'), 'f0.txt announced');
    await untilSaved('f0.txt', "f0.txt's stamp saved while files keep coming");
    expect(writing).toBe(true);
  } finally {
    writing = false;
    await writer;
  }
});

it('saves stamps once they have been still for persistDelayMs', async () => {
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  await h.start({ persistDelayMs: 50, persistMaxDelayMs: 60_000 });
  writeFileSync(join(h.root, 'one.txt'), 'one');
  await waitFor(() => h.events.some((e) => e.path === 'one.txt'), 'one.txt announced');
  await untilSaved('one.txt', "one.txt's stamp saved");
});
