import { defined } from '@computepods/testkit';
import { expect, it } from 'vitest';
import { Debouncer, type DueItem } from './debounce.js';
import { sleep } from './test-helpers.js';

it('fires once per path after the quiet window, and stays within maxWait for a busy path', async () => {
  const fired: DueItem[][] = [];
  const d = new Debouncer(30, 200, (items) => fired.push(items));
  d.touch('a');
  d.touch('a');
  d.touch('b');
  const start = performance.now();
  // Keep `busy` active well past maxWait: it must still be reported.
  while (performance.now() - start < 600 && !fired.flat().some((i) => i.path === 'busy')) {
    d.touch('busy');
    await sleep(5);
  }
  expect(fired.flat().some((i) => i.path === 'busy')).toBe(true);
  const flat = fired.flat();
  expect(flat.filter((i) => i.path === 'a')).toHaveLength(1);
  expect(flat.filter((i) => i.path === 'b')).toHaveLength(1);
  d.touch('c');
  expect(d.takeAll().map((i) => i.path)).toContain('c');
  expect(d.size).toBe(0);
  d.close();
});

it('keeps an earlier burst start when a path is touched again with it', () => {
  const d = new Debouncer(1000, 5000, () => {});
  d.touch('x');
  d.touch('y', performance.now() - 10_000);
  const all = d.takeAll();
  expect(defined(all[0], 'all[0]').path).toBe('y');
  d.close();
});
