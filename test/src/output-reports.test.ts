import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Envelope, type FilesChanged, subjects } from '@computepods/protocol';
import { until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * The fswatcher leaves a build's output unannounced when MajorDomo recorded those very bytes from
 * the chef's report (services/fswatcher reports.ts), and still announces every other change to it:
 * an edit by hand, and bytes written again after the report even at its size and mtime. Real
 * processes: nats-server in operator mode (the fswatcher's own credentials read the artefact
 * states), MajorDomo, a chef, a runner, the fswatcher.
 */
describe("a build's outputs and the fswatcher", () => {
  let stack: Stack;
  const events: FilesChanged['events'] = [];
  const announced = (path: string) => events.filter((e) => e.path === path);
  /** MajorDomo took the bytes at `path`, or built them again since `mtimeNs` (a newer write). */
  const taken = (path: string, bytes: string, built: string, mtimeNs: string | undefined) =>
    stack.until(
      path,
      (a) => a.sha256 === sha(bytes) || (a.sha256 === sha(built) && a.written?.mtimeNs !== mtimeNs),
    );
  let first: string | undefined;
  /** On a timeout: the last file events and the services' logs (debug), to tell what happened. */
  const seen = () =>
    `last file events: ${JSON.stringify(events.slice(-20))}\n${stack.logs(20_000)}`;

  beforeAll(async () => {
    stack = await Stack.start('outrep');
    const chef = stack.writeUpperChef();
    const sub = stack.bus.nc.subscribe(subjects.filesChanged(stack.project, 'pod-test'));
    void (async () => {
      for await (const m of sub) events.push(...(m.json() as Envelope<FilesChanged>).body.events);
    })();
    await Promise.all([
      stack.start('majordomo'),
      stack.start('runner'),
      // No wait for a record runs out in this test: only the record decides.
      stack.start('fswatcher', { CP_REPORT_WAIT_MS: '600000' }),
      stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chef }),
    ]);
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  /** A file written after everything before it: once it is announced, so is all before it. */
  async function flushed(name: string): Promise<void> {
    stack.write(`src/${name}.flush`, name);
    await until(
      () => announced(`src/${name}.flush`).length > 0,
      `src/${name}.flush announced`,
      20_000,
      seen,
    );
  }

  it('records the built bytes with no file event for them', async () => {
    stack.write('src/t.txt', 'first\n');
    const rec = await stack.until('out/t.upper', (a) => a.sha256 === sha('FIRST\n'));
    expect(rec).toMatchObject({ status: 'up_to_date', pods: ['pod-test'] });
    expect(rec.written?.pod).toBe('pod-test');
    first = rec.written?.mtimeNs;
    await flushed('a');
    expect(announced('src/t.txt')).toHaveLength(1);
    expect(announced('out/t.upper')).toEqual([]);
  });

  it('announces an edit of the output by hand', async () => {
    stack.write('out/t.upper', 'BY HAND\n');
    await until(
      () => announced('out/t.upper').some((e) => e.sha256 === sha('BY HAND\n')),
      'the hand edit announced',
      20_000,
      seen,
    );
    // MajorDomo took it (and may build the output again from its unchanged source).
    await taken('out/t.upper', 'BY HAND\n', 'FIRST\n', first);
  });

  it('announces bytes written over the output after its report, at its size and mtime', async () => {
    stack.write('src/t.txt', 'second\n');
    const rec = await stack.until('out/t.upper', (a) => a.sha256 === sha('SECOND\n'));
    const mtimeNs = BigInt(rec.written?.mtimeNs ?? '0');
    const before = announced('out/t.upper').length;
    // Other bytes of the reported size, their mtime set back to the reported one (to the ns).
    const file = join(stack.workspace, 'out/t.upper');
    writeFileSync(file, 'THIRD!\n');
    const ns = String(mtimeNs % 1_000_000_000n).padStart(9, '0');
    execFileSync('touch', ['-m', '-d', `@${mtimeNs / 1_000_000_000n}.${ns}`, file]);
    await until(
      () => announced('out/t.upper').some((e) => e.sha256 === sha('THIRD!\n')),
      'the bytes written after the report announced',
      20_000,
      seen,
    );
    expect(announced('out/t.upper').length).toBeGreaterThan(before);
    await taken('out/t.upper', 'THIRD!\n', 'SECOND\n', rec.written?.mtimeNs);
  });
});
