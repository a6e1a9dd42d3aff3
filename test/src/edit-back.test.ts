import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, settled } from './watch-builds.js';

/**
 * A source edited back to bytes it had before: its build (same rule, stem and input hashes: the
 * same build id) has run already, but another build of the target wrote its outputs since. The
 * chef reused the earlier, finished task and reported the other build's bytes as this build's
 * (found by test/chaos: the workspace kept B's output while its sources said A).
 */
describe('an edit back to earlier bytes rebuilds its target', () => {
  let stack: Stack;
  let log: BuildLog;
  const ledger = () => readFileSync(stack.dir.join('ran.txt'), 'utf8');

  beforeAll(async () => {
    stack = await Stack.start('editback');
    writeFileSync(stack.dir.join('ran.txt'), '');
    const chef = stack.writeUpperChef(
      `tr a-z A-Z < {in0} > {out0} && cat {in0} >> ${stack.dir.join('ran.txt')}`,
    );
    await Promise.all([
      stack.start('majordomo'),
      stack.start('runner'),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chef }),
    ]);
    log = await BuildLog.start(stack.bus);
  }, 120_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('runs the build again and records its own bytes (A, B, then A again)', async () => {
    const out = join(stack.workspace, 'out/t.upper');
    const upTo = (text: string) =>
      settled(
        stack.bus,
        (s) =>
          s.artefacts.some((a) => a.path === 'out/t.upper' && a.status === 'up_to_date') &&
          readFileSync(out, 'utf8') === text,
        30_000,
        () => `${JSON.stringify(log.results)}\n${stack.logs()}`,
      );
    stack.write('src/t.txt', 'first\n');
    await upTo('FIRST\n');
    const first = await stack.artefact('out/t.upper');
    stack.write('src/t.txt', 'second\n');
    await upTo('SECOND\n');
    stack.write('src/t.txt', 'first\n');
    await upTo('FIRST\n');
    const again = await stack.artefact('out/t.upper');
    expect(again?.buildId).toBe(first?.buildId);
    expect(again?.sha256).toBe(first?.sha256);
    // Each edit ran the command once: the third is a new run of the first build.
    expect(ledger()).toBe('first\nsecond\nfirst\n');
  });
});
