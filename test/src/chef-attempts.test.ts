import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { buckets, TaskRecord } from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * A chef killed -9 while a build's second attempt (task `b-<build>-1`: the same inputs built
 * before, then others, then these again) runs, and a chef started in its place that is asked for
 * the build again: it joins that task, found by its numbered name, and the command runs once.
 * With attempt names only their chef knew, the new chef started another attempt beside the
 * running one and both ran to their end (pnpm bench chaos: a duplicated completion).
 */
describe('a chef restarted while an attempt of a build runs', () => {
  let stack: Stack;
  const gate = () => stack.dir.join('gate');
  const ledger = () => stack.dir.join('ledger');
  /** The command runs of `upper` that ran to their end, by the input's content. */
  const runs = (text: string) =>
    existsSync(ledger())
      ? readFileSync(ledger(), 'utf8')
          .split('\n')
          .filter((l) => l === sha(text).slice(0, 16)).length
      : 0;
  const chefEnv = () => ({ CP_CHEF: 'text', CP_CHEF_DEFINITION: stack.dir.join('chef.yaml') });

  beforeAll(async () => {
    stack = await Stack.start('attempts');
    stack.writeUpperChef(
      `while [ ! -e ${gate()} ]; do sleep 0.05; done; tr a-z A-Z < {in0} > {out0} && sha256sum < {in0} | cut -c1-16 >> ${ledger()}`,
    );
    await Promise.all([
      stack.start('majordomo'),
      stack.start('chef', chefEnv()),
      stack.start('runner'),
      stack.start('fswatcher'),
    ]);
  }, 120_000);
  afterAll(async () => {
    writeFileSync(gate(), '');
    await stack?.[Symbol.asyncDispose]();
  });

  it('joins the running attempt instead of starting another beside it', async () => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord, { history: 5 });
    writeFileSync(gate(), '');
    stack.write('src/a.txt', 'one\n');
    const first = await stack.until('out/a.upper', (a) => a.sha256 === sha('ONE\n'));
    stack.write('src/a.txt', 'two\n');
    await stack.until('out/a.upper', (a) => a.sha256 === sha('TWO\n'));
    expect([runs('one\n'), runs('two\n')]).toEqual([1, 1]);

    // The first inputs again: the same build, whose first task ran and was reported, and whose
    // output another build has overwritten since. Its second attempt is held running.
    rmSync(gate());
    stack.write('src/a.txt', 'one\n');
    const attempts = async () =>
      [...(await tasks.entries()).entries()]
        .filter(([id]) => id.startsWith(`b-${first.buildId}`))
        .map(([id, { value }]) => ({ id, state: value.state }));
    await untilDefined('its second attempt to run', async () =>
      (await attempts()).some((a) => a.state === 'running') ? true : undefined,
    );

    await stack.kill9('chef');
    const chef = await stack.start('chef', chefEnv());
    // The new chef is asked for the build (re-sent, or the old request redelivered): it joins
    // the held attempt (it says so), where it started another beside it before.
    await untilDefined('the new chef to take the build up', async () =>
      chef.output.includes("joining the build's attempt under way") ||
      (await attempts()).filter((a) => a.state === 'running').length > 1
        ? true
        : undefined,
    );
    writeFileSync(gate(), '');
    const done = await stack.until('out/a.upper', (a) => a.sha256 === sha('ONE\n'), 90_000);
    expect(done.status).toBe('up_to_date');
    expect(done.buildId).toBe(first.buildId);
    // Once with these inputs before, once now: the held attempt, joined; no third one.
    expect(runs('one\n')).toBe(2);
    expect((await attempts()).sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual([
      { id: `b-${first.buildId}`, state: 'finished' },
      { id: `b-${first.buildId}-1`, state: 'finished' },
    ]);
  }, 180_000);
});
