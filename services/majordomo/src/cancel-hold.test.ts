import { type BuildCancel, StatusRequest, streams, subjects } from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildId } from './build-id.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'cancelhold';

/**
 * A start puts back the holds of builds cancelled on request, from the outputs' records, only
 * while the task's inputs still give the key the cancelled build was asked with. Here two tasks
 * were cancelled by a user, with src/a.txt at a2 and src/c.txt at c1. src/a.txt is still a2: up:a
 * stays held. src/c.txt is now c2 (an edit whose input record was written, the output's record
 * not yet, when MajorDomo was killed): up:c is planned. A rebuild asked for releases up:a.
 */
describe('MajorDomo restores holds of builds cancelled on request', () => {
  const t = new TestMajorDomo(P);
  const requests = t.requests;

  beforeAll(async () => {
    await t.open();
    const artefacts = await t.artefacts();
    const traces = await t.traces();
    const updated = new Date().toISOString();
    for (const [stem, now, cancelledWith] of [
      ['a', 'a2', 'a2'],
      ['c', 'c2', 'c1'],
    ] as const) {
      const input = `src/${stem}.txt`;
      await artefacts.put(input, {
        path: input,
        status: 'source',
        sha256: sha(now),
        size: 2,
        pods: [POD],
        updated,
      });
      // Built once from the first bytes; a build of later ones cancelled on request.
      await traces.put(`up:${stem}`, {
        taskId: `up:${stem}`,
        inputs: { [input]: sha(`${stem}0`) },
        outputs: { [`out/${stem}.up`]: sha(`${stem}0 up`) },
        buildId: 'b',
        time: updated,
      });
      await artefacts.put(`out/${stem}.up`, {
        path: `out/${stem}.up`,
        status: 'cancelled',
        sha256: sha(`${stem}0 up`),
        size: 2,
        producer: `up:${stem}`,
        pods: [POD],
        updated,
        error: 'build cancelled by request',
        held: buildId('up', `up:${stem}`, { [input]: sha(cancelledWith) }),
      });
    }
    await t.start();
  }, 60_000);
  afterAll(() => t.close());

  it('holds a task whose inputs are unchanged, plans one whose inputs changed', async () => {
    const m = t.md;
    // The restore's own plan is dispatched before start() returns.
    expect(m.queries.status(StatusRequest.parse({})).running).toEqual(['up:c']);
    expect(m.inspect().dm.artefactState('out/a.up')).toBe('cancelled');
    expect(m.queries.artefact('out/a.up').artefact.status).toBe('cancelled');
    await untilDefined('the request for up:c', () => requests[0]);
    expect(requests.map((r) => r.taskId)).toEqual(['up:c']);
    expect(requests[0]?.inputs).toEqual({ 'src/c.txt': sha('c2') });

    // Its output written from outside (a killed build's partial bytes): still held, recorded so.
    await t.bus.publish(
      'files.changed',
      subjects.filesChanged(P, POD),
      {
        pod: POD,
        events: [
          { kind: 'changed', path: 'out/a.up', size: 1, mtimeNs: '1', sha256: sha('partial') },
        ],
      },
      { msgId: 'files-1' },
    );
    await untilDefined('the partial output recorded', () =>
      m.queries.artefact('out/a.up').artefact.sha256 === sha('partial') ? true : undefined,
    );
    expect(m.queries.artefact('out/a.up').artefact).toMatchObject({
      status: 'cancelled',
      error: 'build cancelled by request',
      held: buildId('up', 'up:a', { 'src/a.txt': sha('a2') }),
    });
    expect(m.inspect().dm.artefactState('out/a.up')).toBe('cancelled');
    expect(requests.map((r) => r.taskId)).toEqual(['up:c']);

    // A rebuild asked for, not forced: the hold is released, the same inputs asked for.
    const reply = await m.queries.requestBuild('out/a.up', false, 'test');
    expect(reply.status).toBe('queued');
    await untilDefined('the request for up:a', () => requests[1]);
    expect(requests.map((r) => r.taskId)).toEqual(['up:c', 'up:a']);
    expect(requests[1]?.inputs).toEqual({ 'src/a.txt': sha('a2') });
    expect(m.queries.artefact('out/a.up').artefact).not.toHaveProperty('held');
  });

  it('names the request it cancels: the builds stream sequence of its last request for the build', async () => {
    const cancels: BuildCancel[] = [];
    const sub = t.bus.listen(subjects.buildCancel(P), {
      accept: ['build.cancel'],
      project: P,
      handler: (m) => {
        cancels.push(m.body);
      },
    });
    await t.bus.nc.flush();
    // up:a was asked for last (the case before); a chef that has not pulled that request yet
    // answers it cancelled when it does (services/chef cancel.ts).
    const last = await t.bus.jsm.streams.getMessage(streams.builds(P), {
      last_by_subj: subjects.buildRequest(P, 'gen'),
    });
    expect(await t.md.queries.cancelBuild('up:a', 'test')).toBe(true);
    await untilDefined('the cancel', () => cancels[0]);
    sub.unsubscribe();
    expect(cancels).toEqual([
      { buildId: requests[1]?.buildId, reason: 'cancelled by request', upTo: last?.seq },
    ]);
  });
});
