import {
  type BuildCancel,
  type BuildRequested,
  BuildResult,
  buckets,
  subjects,
} from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildId, groupBuildId } from './build-id.js';
import { groupSizes } from './group-packing.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'groups';

/**
 * Group builds (CP_GROUP_BUILDS): ready steps of one rule go to its chef as one build when more
 * are ready than the lanes take (CP_GROUP_SPREAD). A real nats-server, MajorDomo in this process,
 * chef `gen` (rule up: src/{stem}.txt → out/{stem}.up) played by hand.
 */
describe('MajorDomo: group builds', () => {
  const t = new TestMajorDomo(P);
  const cancels: BuildCancel[] = [];
  /** The steps a request builds: its own, then its group's. */
  const stepsOf = (r: BuildRequested) => [r.taskId, ...(r.group ?? []).map((g) => g.taskId)];
  /** The requests sent since `from` that build `taskId`. */
  const requestsFor = (taskId: string, from = 0) =>
    t.requests.slice(from).filter((r) => stepsOf(r).includes(taskId));
  const until = (what: string, fn: () => boolean) =>
    untilDefined(what, () => (fn() ? true : undefined), 30_000);
  const upToDate = (paths: string[]) =>
    until(`${paths.join(', ')} up to date`, () =>
      paths.every((p) => t.md.queries.artefact(p).artefact.status === 'up_to_date'),
    );
  /** The chef's answer to `req` as the builds bucket holds it. */
  const answer = async (req: BuildRequested, result: Partial<BuildResult>) => {
    const kv = await t.bus.kv(buckets.builds(P), BuildResult);
    await kv.put(
      req.buildId,
      BuildResult.parse({
        buildId: req.buildId,
        taskId: req.taskId,
        chef: 'gen',
        pod: POD,
        status: 'succeeded',
        durationMs: 1,
        ...result,
      }),
    );
  };
  /** Every step of `req` built: each output's bytes its stem in capitals; a step's discoveries. */
  const succeed = (req: BuildRequested, steps = true) => {
    const outputs: BuildResult['outputs'] = {};
    const cutoff: BuildResult['cutoff'] = {};
    for (const s of [{ stem: req.stem }, ...(req.group ?? [])]) {
      const bytes = s.stem.toUpperCase();
      outputs[`out/${s.stem}.up`] = { sha256: sha(bytes), size: bytes.length };
      cutoff[`out/${s.stem}.up`] = sha(bytes);
    }
    return answer(req, {
      outputs,
      cutoff,
      ...(steps ? { steps: Object.fromEntries(stepsOf(req).map((id) => [id, []])) } : {}),
    });
  };
  const stems = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  beforeAll(async () => {
    await t.open();
    t.bus.listen(subjects.buildCancel(P), {
      accept: ['build.cancel'],
      project: P,
      handler: (m) => {
        cancels.push(m.body);
      },
    });
    await t.bus.nc.flush();
    // Ten minutes: only a chef's report lets a cancelled group's steps go again.
    await t.start({ CP_GROUP_BUILDS: '4', CP_GROUP_SPREAD: '2', CP_CANCEL_WAIT_MS: '600000' });
  }, 60_000);
  afterAll(() => t.close());

  it("packs ready steps of one rule into equal groups, as many as a multiple of the lanes; a group's success is each step's", async () => {
    const names = stems('a', 10);
    await t.files(...names.map((s) => t.changed(`src/${s}.txt`, s)));
    await until('every step requested', () => names.every((s) => requestsFor(`up:${s}`).length));
    // 10 steps over 2 lanes, at most 4 a build: 4 builds (a multiple of 2), of 3, 3, 2 and 2.
    expect(t.requests.map((r) => stepsOf(r).length)).toEqual(groupSizes(10, 4, 2));
    expect(groupSizes(10, 4, 2)).toEqual([3, 3, 2, 2]);
    const [group] = t.requests as [BuildRequested];
    expect(group.group?.map((g) => g.stem)).toEqual(['a1', 'a2']);
    expect(group.inputs).toEqual(
      Object.fromEntries(['a0', 'a1', 'a2'].map((s) => [`src/${s}.txt`, sha(s)])),
    );
    expect(group.buildId).toBe(
      groupBuildId(
        ['a0', 'a1', 'a2'].map((s) => buildId('up', `up:${s}`, { [`src/${s}.txt`]: sha(s) })),
      ),
    );
    for (const r of t.requests) await succeed(r);
    const outs = names.map((s) => `out/${s}.up`);
    await upToDate(outs);
    // Each step's record names the build that ran it (its task's log is the group's).
    const rec = await (await t.artefacts()).get('out/a2.up');
    expect(rec?.value).toMatchObject({
      sha256: sha('A2'),
      producer: 'up:a2',
      buildId: group.buildId,
    });
    const trace = await (await t.traces()).get('up:a2');
    expect(trace?.value).toMatchObject({
      inputs: { 'src/a2.txt': sha('a2') },
      buildId: group.buildId,
    });
  });

  it('builds the steps of a group that did not succeed again one by one', async () => {
    const from = t.requests.length;
    // 5 steps: 3 and 2. Ready again, the first group's three would make groups of 2 and 1.
    const names = stems('b', 5);
    await t.files(...names.map((s) => t.changed(`src/${s}.txt`, s)));
    await until('b requested', () => names.every((s) => requestsFor(`up:${s}`, from).length));
    const group = t.requests.slice(from).find((r) => r.group) as BuildRequested;
    expect(stepsOf(group)).toEqual(['up:b0', 'up:b1', 'up:b2']);
    await answer(group, { status: 'failed', error: 'task b-x failed: exit code 1' });
    await until('b0, b1 and b2 asked alone', () =>
      stepsOf(group).every((s) => requestsFor(s, from).some((r) => !r.group)),
    );
    for (const r of t.requests.slice(from).filter((r) => r !== group)) await succeed(r);
    await upToDate(names.map((s) => `out/${s}.up`));
  });

  it('builds them one by one too when the result does not say what each step discovered (a chef that does not build groups)', async () => {
    const from = t.requests.length;
    const names = stems('c', 5);
    await t.files(...names.map((s) => t.changed(`src/${s}.txt`, s)));
    await until('c requested', () => names.every((s) => requestsFor(`up:${s}`, from).length));
    const group = t.requests.slice(from).find((r) => r.group) as BuildRequested;
    await succeed(group, false);
    await until('c0, c1 and c2 asked alone', () =>
      stepsOf(group).every((s) => requestsFor(s, from).some((r) => !r.group)),
    );
    for (const r of t.requests.slice(from).filter((r) => r !== group)) await succeed(r);
    await upToDate(names.map((s) => `out/${s}.up`));
  });

  it("cancels a group when a step's input changes; its other steps wait for the group's end, then go again", async () => {
    const from = t.requests.length;
    const names = stems('d', 4);
    await t.files(...names.map((s) => t.changed(`src/${s}.txt`, s)));
    await until('d requested', () => names.every((s) => requestsFor(`up:${s}`, from).length));
    const group = t.requests.slice(from).find((r) => r.taskId === 'up:d0') as BuildRequested;
    expect(stepsOf(group)).toEqual(['up:d0', 'up:d1']);
    const other = t.requests.slice(from).find((r) => r !== group) as BuildRequested;
    await t.files(t.changed('src/d1.txt', 'd1 again'));
    await untilDefined('the group cancelled', () =>
      cancels.find((c) => c.buildId === group.buildId),
    );
    // MajorDomo handles file events in order: once e0's build is asked for, d1's change was
    // planned long before, and neither d0 nor d1 went again: the group's task may still run.
    await t.files(t.changed('src/e0.txt', 'e0'));
    await until('e0 requested', () => requestsFor('up:e0', from).length > 0);
    expect(requestsFor('up:d0', from)).toEqual([group]);
    expect(requestsFor('up:d1', from)).toEqual([group]);
    // The chef reports the group's end: both go again, d1 with its new bytes.
    await answer(group, { status: 'cancelled', error: 'cancelled: inputs changed; task killed' });
    await until('d0 and d1 again', () =>
      ['up:d0', 'up:d1'].every((s) => requestsFor(s, from).length === 2),
    );
    const again = t.requests.slice(from).filter((r) => r !== group && r !== other);
    expect(again.flatMap((r) => Object.entries(r.inputs))).toEqual(
      expect.arrayContaining([['src/d1.txt', sha('d1 again')]]),
    );
    for (const r of [other, ...again]) await succeed(r);
    await upToDate([...names, 'e0'].map((s) => `out/${s}.up`));
  });
});
