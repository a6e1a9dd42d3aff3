import { StatusRequest } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'restore';

/**
 * A restart rebuilds the graph from KV in one batch (the reads at once, dirtiness evaluated once
 * at the end, as DependencyManager.fromState does): what was up to date stays so, what changed
 * while MajorDomo was away is planned, and a trace that cannot be restored is skipped, its task
 * rebuilt. Here: a and b built; src/b.txt changed since b's trace; c's trace names an invalid path.
 */
describe('MajorDomo restores its graph from KV', () => {
  const t = new TestMajorDomo(P);
  const requests = t.requests;

  beforeAll(async () => {
    await t.open();
    const artefacts = await t.artefacts();
    const traces = await t.traces();
    const updated = new Date().toISOString();
    const put = (path: string, sha256: string, producer?: string) =>
      artefacts.put(path, {
        path,
        status: producer ? 'up_to_date' : 'source',
        sha256,
        size: 1,
        pods: [POD],
        updated,
        ...(producer ? { producer } : {}),
      });
    const trace = (stem: string, input: string, output: string, extra = {}) =>
      traces.put(`up:${stem}`, {
        taskId: `up:${stem}`,
        inputs: { [`src/${stem}.txt`]: input, ...extra },
        outputs: { [`out/${stem}.up`]: output },
        buildId: 'b',
        time: updated,
      });
    for (const stem of ['a', 'b', 'c'])
      await put(`out/${stem}.up`, sha(`${stem} up`), `up:${stem}`);
    await put('src/a.txt', sha('a'));
    await put('src/b.txt', sha('b edited while away'));
    await put('src/c.txt', sha('c'));
    await trace('a', sha('a'), sha('a up'));
    await trace('b', sha('b'), sha('b up'));
    await trace('c', sha('c'), sha('c up'), { '/abs/path': sha('x') });
    await t.start();
  }, 60_000);
  afterAll(() => t.close());

  it('keeps what is up to date, plans what changed, rebuilds what it cannot restore', async () => {
    const m = t.md;
    // The restore's own plan is dispatched before start() returns; the requests are in flight.
    const running = m.queries.status(StatusRequest.parse({})).running.sort();
    expect(running).toEqual(['up:b', 'up:c']);
    expect(m.inspect().dm.artefactState('out/a.up')).toBe('up_to_date');
    expect(m.inspect().dm.trace('up:a')?.inputs).toEqual({ 'src/a.txt': sha('a') });
    const deadline = performance.now() + 20_000;
    while (requests.length < 2 && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(requests.map((r) => r.taskId).sort()).toEqual(['up:b', 'up:c']);
  });
});
