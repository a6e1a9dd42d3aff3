import {
  type BuildRequested,
  BuildResult,
  buckets,
  type FileEvent,
  subjects,
} from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { buildId } from './build-id.js';
import { POD, sha, startedMajorDomo } from './test-majordomo.js';

const P = 'rescache';

/**
 * MajorDomo's result cache (the results it stored, by build id, in memory: recent-results.ts): a
 * build of a task built before whose result still matches the outputs' records is answered from
 * it, with nothing sent to the chef. A task never built, or a result only the builds bucket holds
 * (recorded by an earlier chef, say), is sent to the chef (which answers a recorded result itself
 * when its outputs are intact). The chef is played by hand; it records each result in the builds
 * bucket, as a chef does.
 */
describe('MajorDomo: the result cache', () => {
  const t = startedMajorDomo(P);
  const requests = t.requests;
  let seq = 0;

  const event = (path: string, content: string): FileEvent => ({
    kind: 'changed',
    path,
    size: content.length,
    mtimeNs: String(++seq * 1000),
    sha256: sha(content),
  });
  const files = (...events: FileEvent[]) => t.files(...events);
  const resultOf = (id: string, taskId: string, out: string): BuildResult =>
    BuildResult.parse({
      buildId: id,
      taskId,
      chef: 'gen',
      pod: POD,
      status: 'succeeded',
      outputs: { 'out/a.up': { sha256: sha(out), size: out.length } },
      cutoff: { 'out/a.up': sha(out) },
      durationMs: 1,
    });
  /** The chef's part: records the result in the builds bucket, then publishes it. */
  const answer = async (req: BuildRequested, out: string) => {
    const result = resultOf(req.buildId, req.taskId, out);
    await (await t.bus.kv(buckets.builds(P), BuildResult)).put(req.buildId, result);
    await t.bus.publish('build.result', subjects.buildResult(P), result);
  };
  const record = async (path: string) => (await (await t.artefacts()).get(path))?.value;

  it('sends a never-built task to the chef, and answers a built one from a matching recorded result', async () => {
    // A result recorded for the first build of up:a (by an earlier chef, say) before any trace.
    const first = buildId('up', 'up:a', { 'src/a.txt': sha('one') });
    await (await t.bus.kv(buckets.builds(P), BuildResult)).put(
      first,
      resultOf(first, 'up:a', 'ONE'),
    );
    await files(event('src/a.txt', 'one'));
    // Never built by this graph: asked of the chef, not taken from the cache.
    const req1 = await untilDefined('the first request', async () => requests[0]);
    expect(req1).toMatchObject({ taskId: 'up:a', buildId: first });
    await answer(req1, 'ONE');
    await untilDefined('the first output', async () =>
      (await record('out/a.up'))?.status === 'up_to_date' ? true : undefined,
    );

    // An edit whose build makes the same bytes (its trace now the second build's), then the edit
    // undone: the build of the first bytes is the first build again, and its recorded result
    // still matches the output's record.
    await files(event('src/a.txt', 'two'));
    const req2 = await untilDefined('the second request', async () => requests[1]);
    expect(req2.buildId).not.toBe(first);
    await answer(req2, 'ONE');
    await untilDefined('the second build recorded', async () =>
      (await record('out/a.up'))?.buildId === req2.buildId ? true : undefined,
    );
    await files(event('src/a.txt', 'one'));
    await untilDefined('the output up to date from the cache', async () => {
      const r = await record('out/a.up');
      return r?.status === 'up_to_date' && r.buildId === first && r.sha256 === sha('ONE')
        ? true
        : undefined;
    });
    // Answered from the cache: nothing more sent to the chef.
    await files(event('notes/marker', 'm'));
    await untilDefined('the marker recorded', async () =>
      (await record('notes/marker'))?.sha256 === sha('m') ? true : undefined,
    );
    expect(requests).toHaveLength(2);
  });

  it('sends a build whose output was removed to the chef: no record, no bytes to reuse', async () => {
    // The output deleted from the workspace (a clean): its record goes, and the cached result
    // of the build that made it names bytes nobody has any more.
    const first = buildId('up', 'up:a', { 'src/a.txt': sha('one') });
    await files({
      kind: 'deleted',
      path: 'out/a.up',
      size: 0,
      mtimeNs: String(++seq),
      sha256: null,
    });
    const req = await untilDefined('the rebuild request', async () => requests[2]);
    expect(req).toMatchObject({ taskId: 'up:a', buildId: first });
    await answer(req, 'ONE');
    await untilDefined('the output up to date again', async () =>
      (await record('out/a.up'))?.status === 'up_to_date' ? true : undefined,
    );
  });
});
