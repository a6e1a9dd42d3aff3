import { rmSync } from 'node:fs';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedCopy } from './gated-copy.js';
import { haEnv, SHORT_LEASE, startLeaderAndStandby } from './ha-stack.js';
import { Stack } from './stack.js';
import { BuildLog } from './watch-builds.js';

/**
 * A build cancelled on request stays cancelled: recorded `cancelled` and not requested again by
 * the planning other changes cause, by a standby that takes over (kill -9 of the leader), or by
 * a MajorDomo started afresh; until its input changes, or a rebuild is asked for
 * (`cpctrl build`). Every build request of the project is counted as it crosses NATS.
 */
describe('a build cancelled on request', () => {
  let stack: Stack;
  let copy: GatedCopy;
  let log: BuildLog;
  const requestsOf = (taskId: string) => log.requestsFor(taskId).length;
  /** An unrelated edit that makes MajorDomo plan (and build `copy:b`) once more. */
  let edits = 0;
  const unrelatedEdit = async () => {
    const content = `b ${++edits}\n`;
    stack.write('g/b.in', content);
    await stack.until(
      'g/b.out',
      (a) => a.status === 'up_to_date' && copy.runs('b').includes(content.trim()),
    );
  };

  beforeAll(async () => {
    stack = await Stack.start('cancelhold');
    copy = new GatedCopy(stack);
    log = await BuildLog.start(stack.bus);
    await startLeaderAndStandby(stack, {
      env: { CP_CHEF: 'copier', CP_CHEF_DEFINITION: copy.definition },
    });
  }, 120_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('is held through other changes, a takeover and a restart, until its input changes', async () => {
    stack.write('g/a.in', 'pause one\n');
    await untilDefined('copy:a to run', async () => (copy.started('a') ? true : undefined));
    const cancel = await stack.cpctrl(['cancel', 'copy:a']);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(/^cancelled copy:a \(held:/);
    const held = await stack.status('g/a.out', 'cancelled');
    expect(held).toMatchObject({ producer: 'copy:a', error: 'build cancelled by request' });
    expect(requestsOf('copy:a')).toBe(1);

    // Other changes make MajorDomo plan: copy:a is not asked for again.
    await unrelatedEdit();
    expect(requestsOf('copy:a')).toBe(1);
    const listed = await stack.cpctrl(['artefact', 'list', '--status', 'cancelled']);
    expect(listed.stdout).toContain('g/a.out');
    expect((await stack.cpctrl(['status'])).stdout).toMatch(/artefact\(s\): .*\b1 cancelled\b/);

    // The leader killed -9: the standby takes over and keeps the hold.
    await stack.kill9('md-a');
    await untilDefined('md-b to lead', async () =>
      stack.procs.get('md-b')?.output.includes('"msg":"graph restored') ? true : undefined,
    );
    await unrelatedEdit();
    expect(requestsOf('copy:a')).toBe(1);
    expect((await stack.artefact('g/a.out'))?.status).toBe('cancelled');

    // That one killed -9 too, and a MajorDomo started afresh (from its snapshot and buckets).
    await stack.kill9('md-b');
    await stack.start('majordomo', haEnv('md-c', SHORT_LEASE), 'md-c');
    await unrelatedEdit();
    expect(requestsOf('copy:a')).toBe(1);
    expect((await stack.artefact('g/a.out'))?.status).toBe('cancelled');
    // The cancelled command never ran to its end.
    expect(copy.runs('a')).toEqual([]);

    // Its input edited: built.
    stack.write('g/a.in', 'two\n');
    await stack.until(
      'g/a.out',
      (a) => a.status === 'up_to_date' && copy.runs('a').includes('two'),
    );
    expect(requestsOf('copy:a')).toBe(2);
    expect(copy.runs('a')).toEqual(['two']);
  }, 180_000);

  it('is built again when a rebuild is asked for', async () => {
    rmSync(stack.dir.join('started-a'), { force: true });
    stack.write('g/a.in', 'pause three\n');
    await untilDefined('copy:a to run', async () => (copy.started('a') ? true : undefined));
    const before = requestsOf('copy:a');
    expect((await stack.cpctrl(['cancel', 'copy:a'])).code).toBe(0);
    await stack.status('g/a.out', 'cancelled');
    await unrelatedEdit();
    expect(requestsOf('copy:a')).toBe(before);
    // Not forced: the hold is released and the same inputs are asked for again.
    const build = await stack.cpctrl(['build', '--no-wait', 'g/a.out']);
    expect(build.code).toBe(0);
    copy.gate('a');
    await stack.until(
      'g/a.out',
      (a) => a.status === 'up_to_date' && copy.runs('a').includes('pause three'),
    );
    // Asked for again, in one publish: the same build as the cancelled one (the same inputs),
    // under a message id of its own (services/majordomo dispatcher.ts), so JetStream keeps it.
    expect(requestsOf('copy:a')).toBe(before + 1);
  }, 120_000);
});
