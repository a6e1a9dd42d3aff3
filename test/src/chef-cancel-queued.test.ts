import { rmSync, writeFileSync } from 'node:fs';
import { type BuildResult, streams, subjects } from '@computepods/protocol';
import { sha256, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

/**
 * A build cancelled while its request waits in the chef's queue (the chef busy with others): the
 * chef does not hold it, so the cancel alone cannot stop it. MajorDomo's cancel names its last
 * request for the build (BuildCancel.upTo, the builds stream's sequence), and the chef answers
 * that request cancelled when it takes it up, running nothing; a request for the same build sent
 * after the cancel (MajorDomo asked again) runs. The chef handles one build at a time here and
 * the first build waits for a gate, so the second is surely queued when the cancel comes. Real
 * nats-server, chef and runner processes.
 */
describe('a build cancelled while its request waits in the chef queue', () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  const ledger = () => stack.ledger();
  const runs = () => ledger().read();
  const gate = () => stack.dir.join('gate');

  beforeAll(async () => {
    stack = await Stack.start('cancelqueued');
    results = await stack.startUpperChef(
      `if [ {stem} = x ]; then while [ ! -e ${gate()} ]; do sleep 0.05; done; fi; tr a-z A-Z < {in0} > {out0} && echo {stem} >> ${ledger().path}`,
      { CP_CHEF_CONCURRENCY: '1' },
    );
  }, 120_000);
  afterAll(async () => {
    writeFileSync(gate(), '');
    await stack?.[Symbol.asyncDispose]();
  });

  it('answers it cancelled when it comes, running nothing; a request sent after the cancel runs', async () => {
    stack.write('src/x.txt', 'x\n');
    stack.write('src/y.txt', 'y\n');
    const [x, y] = ['0a', '0b'].map((i) => `c0ffee${i}`.repeat(2)) as [string, string];
    await stack.requestUpper(x, 'x', sha256('x\n'));
    const upTo = await stack.requestUpper(y, 'y', sha256('y\n'));
    await stack.cancelBuild(y, 'cancelled by request', upTo);
    writeFileSync(gate(), '');
    await stack.untilResults(results, 2);
    const byId = new Map(results.map((r) => [r.buildId, r]));
    expect(byId.get(x)).toMatchObject({ status: 'succeeded' });
    expect(byId.get(y)).toMatchObject({
      status: 'cancelled',
      error: 'cancelled before it was taken up: cancelled by request',
    });
    expect(runs()).toBe('x\n');

    // Asked for again after the cancel: a later request, built.
    await stack.requestUpper(y, 'y', sha256('y\n'));
    await stack.untilResults(results, 3);
    expect(results[2]).toMatchObject({ buildId: y, status: 'succeeded' });
    expect(runs()).toBe('x\ny\n');
  });

  it('a chef killed -9 after the cancel answers the request cancelled once restarted, running nothing for it', async () => {
    rmSync(gate(), { force: true });
    results.length = 0;
    stack.write('src/x.txt', 'x2\n');
    stack.write('src/z.txt', 'z\n');
    const [x, z] = ['1a', '1b'].map((i) => `c0ffee${i}`.repeat(2)) as [string, string];
    await stack.requestUpper(x, 'x', sha256('x2\n'));
    const upTo = await stack.requestUpper(z, 'z', sha256('z\n'));
    await stack.cancelBuild(z, 'cancelled by request', upTo);
    // Kept in the stream beside it, a message that is no cancel: skipped when read again.
    stack.bus.nc.publish(subjects.buildCancel(stack.project), 'not a cancel');
    // Whether or not the cancel reached the chef before it died, the restarted one must know it.
    await stack.kill9('chef');
    writeFileSync(gate(), '');
    await stack.start('chef', {
      CP_CHEF: 'text',
      CP_CHEF_DEFINITION: stack.dir.join('chef.yaml'),
      CP_CHEF_CONCURRENCY: '1',
      CP_CHEF_ACK_WAIT_MS: '2000',
    });
    await until(
      () => [x, z].every((b) => results.some((r) => r.buildId === b)),
      'both builds answered',
      30_000,
      () => stack.logs(),
    );
    expect(results.find((r) => r.buildId === x)).toMatchObject({ status: 'succeeded' });
    expect(results.find((r) => r.buildId === z)).toMatchObject({
      status: 'cancelled',
      error: 'cancelled before it was taken up: cancelled by request',
    });
    expect(runs()).toBe('x\ny\nx\n');
    const chefLog =
      stack
        .logs(100_000)
        .split('--- ')
        .find((l) => l.startsWith('chef')) ?? '';
    expect(chefLog).toMatch(/stored build.cancel is not valid; skipped/);
    expect(chefLog).toMatch(/"cancels":2,.*stored build cancels replayed/);

    // With no request waiting for it, a restarted chef reads none: none could matter. The kill
    // waits for the chef's acks of both requests: a result is stored before its request's ack
    // goes, and an ack still on its way at the kill leaves a request unacknowledged, which the
    // restarted chef rightly replays the cancels for (fresh-clone CI run 176).
    await until(
      async () => {
        const info = await stack.bus.jsm.consumers.info(streams.builds(stack.project), 'chef-text');
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      "the chef's requests all acknowledged",
      30_000,
      () => stack.logs(),
    );
    await stack.kill9('chef');
    await stack.start('chef', {
      CP_CHEF: 'text',
      CP_CHEF_DEFINITION: stack.dir.join('chef.yaml'),
      CP_CHEF_CONCURRENCY: '1',
    });
    const again =
      stack
        .logs(100_000)
        .split('--- ')
        .find((l) => l.startsWith('chef')) ?? '';
    expect(again).toMatch(/rules declared/);
    expect(again).not.toMatch(/stored build cancels replayed|could not read the stored/);
  }, 120_000);
});
