import { StatusRequest, subjects } from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { POD, sha, startedMajorDomo } from './test-majordomo.js';

const P = 'idle';

/**
 * "idle" is what tests and `cpctrl build` wait for before they read artefact records. MajorDomo
 * applies a build result in steps (the graph first, then the records in KV); a status asked in
 * between said idle while the records still had the state before the result (seen in the e2e
 * cycle test under load: c/x.a read as stale after MajorDomo had reported the cycle as not
 * converging). Here one record write is held back, so the in-between is there every time.
 */
describe('MajorDomo status while it applies a result', () => {
  const t = startedMajorDomo(P);
  const requests = t.requests;

  it('is not idle until the records of a result are written', async () => {
    const m = t.md;
    await t.bus.publish(
      'files.changed',
      subjects.filesChanged(P, POD),
      {
        pod: POD,
        events: [{ kind: 'changed', path: 'src/a.txt', size: 3, mtimeNs: '1', sha256: sha('abc') }],
      },
      { msgId: 'files-1' },
    );
    const req = await untilDefined('the request', () => requests[0]);

    // Hold back the write that records the output as up to date.
    const { dm, artefacts } = m.inspect();
    const status = () => m.queries.status(StatusRequest.parse({}));
    const update = artefacts.update.bind(artefacts);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let holding = false;
    artefacts.update = async (path, change, cid) => {
      if (path === 'out/a.up' && change.status === 'up_to_date') {
        holding = true;
        await held;
      }
      return update(path, change, cid);
    };
    try {
      await t.bus.publish('build.result', subjects.buildResult(P), {
        buildId: req.buildId,
        taskId: req.taskId,
        chef: 'gen',
        pod: POD,
        status: 'succeeded',
        outputs: { 'out/a.up': { sha256: sha('ABC'), size: 3, mtimeNs: '2' } },
        cutoff: { 'out/a.up': sha('ABC') },
        durationMs: 1,
      });
      await untilDefined('the record write to start', () => (holding ? true : undefined));
      // The graph has the result (nothing runs, nothing is ready); the record is not written.
      expect(dm.status().idle).toBe(true);
      expect(artefacts.get('out/a.up')?.status).not.toBe('up_to_date');
      expect(status().idle).toBe(false);
    } finally {
      // Also when an expectation failed: MajorDomo's stop() waits for the held write.
      release();
    }
    await untilDefined('idle', () => (status().idle ? true : undefined));
    expect(artefacts.get('out/a.up')?.status).toBe('up_to_date');
  });
});
