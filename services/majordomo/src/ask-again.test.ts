import { streams, subjects } from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { startedMajorDomo } from './test-majordomo.js';

const P = 'askagain';

/**
 * A build asked for again (a source edited and edited back: the same inputs, the same build id,
 * its outputs another build's since) goes to its chef in one publish. Its request was published
 * under `<chef>.<build id>` first, which JetStream took as a duplicate of the build's first
 * request and dropped, then again under a fresh id: two publishes and their acks for one request
 * (pnpm bench cbuild's warm clean build: 24 of 202 builds). The played chef hears the subject,
 * so it sees every publish, stored or dropped.
 */
describe('MajorDomo asks for a build it asked for before', () => {
  const t = startedMajorDomo(P);
  const requests = t.requests;

  const lastStored = async () =>
    (
      await t.bus.jsm.streams.getMessage(streams.builds(P), {
        last_by_subj: subjects.buildRequest(P, 'gen'),
      })
    )?.seq ?? 0;
  const nth = (n: number) => untilDefined(`request ${n}`, () => requests[n]);

  it('in one publish, stored once', async () => {
    await t.files(t.changed('src/r.txt', 'r1'));
    const first = await nth(0);
    await t.succeed(first, 'R1');
    await t.files(t.changed('src/r.txt', 'r2'));
    await t.succeed(await nth(1), 'R2');
    const before = await lastStored();
    await t.files(t.changed('src/r.txt', 'r1'));
    const again = await nth(2);
    expect(again.buildId).toBe(first.buildId);
    // Stored: each publish of it is past, and a copy of each went to the played chef before the
    // store; the flush brings the copies here.
    await untilDefined('the request stored', async () =>
      (await lastStored()) > before ? true : undefined,
    );
    await t.bus.nc.flush();
    expect(requests.map((r) => r.buildId)).toEqual([
      first.buildId,
      requests[1]?.buildId,
      first.buildId,
    ]);
  });
});
