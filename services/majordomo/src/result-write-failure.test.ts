import { type BuildRequested, StatusReply, statusWithAllArtefacts } from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from './api.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'halfapplied';

/**
 * A build result whose records could not all be written (a KV write timing out while NATS is
 * down) must not leave the graph calling the output up to date with the record's older bytes:
 * the redelivered result is ignored (its build is no longer in flight), so the task is planned
 * again and built. Fresh-clone CI saw the other ending in the chaos test's mixed storm:
 * "out/c.sum: bytes right, MajorDomo's record has" an older hash.
 */
describe('MajorDomo: a build result it could not record', () => {
  const t = new TestMajorDomo(P);
  const requests = t.requests;

  const record = async (path: string) =>
    (
      await statusWithAllArtefacts((req) => t.bus.request('status', req, StatusReply))
    ).artefacts.find((a) => a.path === path);
  const succeed = (req: BuildRequested, bytes: string) => t.succeed(req, bytes);

  beforeAll(async () => {
    await t.open();
    await (await t.artefacts()).put('src/a.txt', {
      path: 'src/a.txt',
      status: 'source',
      sha256: sha('a'),
      size: 1,
      pods: [POD],
      updated: new Date().toISOString(),
    });
    const md = await t.start();
    serveApi(t.mdBus, md);
  }, 120_000);
  afterAll(() => t.close());

  it('plans the task again and records the output once it is built', async () => {
    const first = await untilDefined('the build request', async () => requests[0]);
    expect(first.taskId).toBe('up:a');
    // The trace's write, the first of the result's, times out once.
    const traces = t.md.inspect().traces;
    const put = traces.put.bind(traces);
    let failures = 0;
    traces.put = async (...args: Parameters<typeof put>) => {
      // As nats.js names a request nobody answered in time.
      if (failures++ === 0) throw Object.assign(new Error('TIMEOUT'), { name: 'TimeoutError' });
      return put(...args);
    };
    await succeed(first, 'A\n');

    // Planned again: the same build asked for once more (its result was never recorded).
    const again = await untilDefined('the build asked for again', async () => requests[1]);
    expect(failures).toBe(1);
    expect(again).toMatchObject({ taskId: 'up:a', buildId: first.buildId });
    // Meanwhile the output is not called up to date with bytes it was never recorded with.
    const meanwhile = await record('out/a.up');
    expect(meanwhile?.status === 'up_to_date' && meanwhile.sha256 !== sha('A\n')).toBe(false);

    await succeed(again, 'A\n');
    const done = await untilDefined('the output recorded', async () => {
      const r = await record('out/a.up');
      return r?.status === 'up_to_date' ? r : undefined;
    });
    expect(done.sha256).toBe(sha('A\n'));
  });
});
