import { type ArtefactRecord, subjects } from '@computepods/protocol';
import { until, untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'order';

/**
 * The fswatcher expects a build's outputs from their `queued` record on (services/fswatcher
 * reports.ts): MajorDomo announces it before the build request leaves, on the same connection,
 * so nobody hears the request (and writes the outputs) before the expectation. The artefact
 * changes of a turn are announced together at its end, except these, announced at once.
 */
describe("MajorDomo announces a build's queued outputs before its request", () => {
  const t = new TestMajorDomo(P);
  /** Every message of the project, as `type` or `type path=status ...`, in arrival order. */
  const seen: string[] = [];

  beforeAll(async () => {
    await t.open();
    t.bus.nc.subscribe(`cp.${P}.>`, {
      callback: (_e, m) => {
        if (m.subject === subjects.artefactState(P)) {
          const env = m.json() as { body: { records: ArtefactRecord[] } };
          seen.push(`states ${env.body.records.map((r) => `${r.path}=${r.status}`).join(' ')}`);
        } else if (m.subject.startsWith(`cp.${P}.build.request`)) seen.push('request');
      },
    });
    await t.start();
  }, 60_000);
  afterAll(() => t.close());

  it('sends out/a.up=queued, then the request', async () => {
    await t.files(t.changed('src/a.txt', 'a'));
    await untilDefined('the request', () => t.requests[0]);
    await until(() => seen.includes('request'), 'the request heard');
    const queued = seen.findIndex((s) => s.startsWith('states') && s.includes('out/a.up=queued'));
    expect(queued).toBeGreaterThanOrEqual(0);
    expect(queued).toBeLessThan(seen.indexOf('request'));
  });
});
