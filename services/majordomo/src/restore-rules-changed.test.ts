import { thenClose } from '@computepods/bus';
import {
  type BuildRequested,
  BuildRequested as BuildRequestedSchema,
  buckets,
  CanBuildFrom,
  Envelope,
  type FileEvent,
  type RuleInput,
  RulesDeclared,
  subjects,
} from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { majorDomoConfig } from './config.js';
import { goalRuleId } from './goals.js';
import { MajorDomo, type RunningMajorDomo } from './majordomo.js';
import { observeRestore } from './restore-compare.js';
import { SnapshotHead } from './snapshot-store.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'ruleschanged';

const rule = (id: string, input: string, output: string, extra: Partial<RuleInput> = {}) => ({
  id,
  inputs: [input],
  outputs: [output],
  command: 'cp {in0} {out0}',
  ...extra,
});
const UP = rule('up', 'src/{stem}.txt', 'out/{stem}.up');
const TWICE = rule('twice', 'out/{stem}.up', 'out/{stem}.twice');
const THRICE = rule('thrice', 'out/{stem}.twice', 'out/{stem}.thrice');
const COPY = rule('copy', 'src/{stem}.txt', 'cp/{stem}.copy');

/**
 * A chef upgraded while MajorDomo was down (a rule more or less, a rule changed, a chef gone):
 * the restart loads the graph snapshot and applies the change of rules to it as a running
 * MajorDomo applies a changed declaration (its registry as the snapshot was planned, then the
 * declarations now), and ends where a full restore from every record does. Each case makes
 * changes after the snapshot too (edits, a new source, a deletion, a build result): the tail the
 * restart reads besides the change of rules. The snapshot that restart stores, and the restart
 * after it, stand where a full restore does too.
 */
describe('MajorDomo restores from its snapshot when the declared rules changed', () => {
  const t = new TestMajorDomo(P);
  const requests: BuildRequested[] = [];
  const running: Array<{ stop(): Promise<void> }> = [];

  const start = async (): Promise<RunningMajorDomo> => {
    const b = await t.connect('majordomo');
    // No chef heartbeats are played: no chef is retired for their silence meanwhile.
    const env = { CP_PROJECT: P, CP_CHEF_TIMEOUT_MS: '600000' };
    const r = await MajorDomo.start(b, majorDomoConfig(env));
    running.push(thenClose(r, b));
    return r;
  };
  const stop = async () => running.pop()?.stop();
  const heads = () => t.bus.kv(buckets.snapshot(P), SnapshotHead, { history: 1 });
  const headId = async () => (await (await heads()).get('head'))?.value.id;
  const rulesKv = () => t.bus.kv(buckets.rules(P), RulesDeclared);
  const declare = async (chef: string, rules: RuleInput[]) =>
    (await rulesKv()).put(chef, { chef, pod: POD, rules });
  const files = (...events: FileEvent[]) => t.files(...events);
  const changed = (path: string, content: string) => t.changed(path, content);
  const deleted = (path: string) => t.deleted(path);
  const requested = (taskId: string, after: number) =>
    untilDefined(`${taskId} requested`, () =>
      requests.slice(after).find((r) => r.taskId === taskId),
    );
  /** A build of `taskId` requested since `after`, answered: its one output with `content`. */
  const succeed = async (taskId: string, after: number, output: string, content: string) => {
    const req = await requested(taskId, after);
    await t.bus.publish('build.result', subjects.buildResult(P), {
      buildId: req.buildId,
      taskId,
      chef: req.chef,
      pod: POD,
      status: 'succeeded',
      outputs: { [output]: { sha256: sha(content), size: content.length } },
      cutoff: { [output]: sha(content) },
      durationMs: 1,
    });
    const artefacts = await t.artefacts();
    await untilDefined(`${output} recorded`, async () =>
      (await artefacts.get(output))?.value.sha256 === sha(content) ? true : undefined,
    );
  };

  /**
   * MajorDomo running on a snapshot planned with the rules declared now; `mutate` while it runs;
   * stopped; `upgrade` (the declarations changed); then a restart from the snapshot and one
   * from every record: what each restored.
   */
  const across = async (mutate: () => Promise<void>, upgrade: () => Promise<void>) => {
    const before = await headId();
    const first = await start();
    if (first.restored.from === 'buckets')
      await untilDefined('a snapshot stored', async () => {
        const id = await headId();
        return id !== undefined && id !== before ? id : undefined;
      });
    await mutate();
    await stop();
    await upgrade();
    const planned = await headId();
    const fromSnapshot = await start();
    const viaSnapshot = { from: fromSnapshot.restored.from, ...observeRestore(fromSnapshot.md) };
    // It stores a snapshot planned with the rules now, taken at the end of its restore (before
    // its watch of the rules bucket has applied anything): the restart after stands on it.
    await untilDefined('a snapshot planned with the new rules', async () => {
      const id = await headId();
      return id !== undefined && id !== planned ? id : undefined;
    });
    await stop();
    const next = await start();
    const viaNext = { from: next.restored.from, ...observeRestore(next.md) };
    await stop();
    await (await heads()).delete('head');
    const full = await start();
    const viaBuckets = { from: full.restored.from, ...observeRestore(full.md) };
    await stop();
    expect(viaNext).toEqual({ ...viaBuckets, from: 'snapshot' });
    return { viaSnapshot, viaBuckets };
  };

  beforeAll(async () => {
    await t.open({ chef: false });
    for (const chef of ['gen', 'extra'])
      t.bus.nc.subscribe(subjects.buildRequest(P, chef), {
        callback: (_e, m) => {
          const env = Envelope.parse(JSON.parse(new TextDecoder().decode(m.data)));
          requests.push(BuildRequestedSchema.parse(env.body));
        },
      });
    const [artefacts, traces] = await Promise.all([t.artefacts(), t.traces()]);
    const updated = new Date().toISOString();
    for (const stem of ['a', 'b', 'c', 'd']) {
      const [src, up, twice] = [`src/${stem}.txt`, `out/${stem}.up`, `out/${stem}.twice`];
      const common = { pods: [POD], updated, size: 1 };
      await artefacts.put(src, { path: src, status: 'source', sha256: sha(stem), ...common });
      for (const [path, task, input] of [
        [up, `up:${stem}`, src],
        [twice, `twice:${stem}`, up],
      ] as const) {
        await artefacts.put(path, {
          path,
          status: 'up_to_date',
          sha256: sha(path),
          producer: task,
          ...common,
        });
        const inHash = input === src ? sha(stem) : sha(input);
        await traces.put(task, {
          taskId: task,
          inputs: { [input]: inHash },
          outputs: { [path]: sha(path) },
          buildId: 'b',
          time: updated,
        });
      }
    }
    await declare('gen', [UP, TWICE]);
  }, 60_000);
  afterAll(async () => {
    while (running.length) await stop();
    await t.close();
  });

  it('a rule added, and a chef added', async () => {
    const { viaSnapshot, viaBuckets } = await across(
      async () => {
        const n = requests.length;
        await files(changed('src/a.txt', 'a edited'));
        await succeed('up:a', n, 'out/a.up', 'A EDITED');
        await requested('twice:a', n);
      },
      async () => {
        await declare('gen', [UP, TWICE, THRICE]);
        await declare('extra', [COPY]);
      },
    );
    expect(viaSnapshot.from).toBe('snapshot');
    expect(viaBuckets.from).toBe('buckets');
    expect(viaSnapshot).toEqual({ ...viaBuckets, from: 'snapshot' });
    expect(viaBuckets.rules.map((r) => r.id)).toEqual(['copy', 'thrice', 'twice', 'up']);
    expect(viaBuckets.inFlight.map((b) => b.split(' ')[0])).toEqual(
      expect.arrayContaining(['copy:a', 'thrice:b', 'twice:a']),
    );
  });

  it("a rule's inputs changed, and one's command only", async () => {
    const { viaSnapshot, viaBuckets } = await across(
      async () => {
        const n = requests.length;
        await files(changed('src/e.txt', 'e'), deleted('src/c.txt'));
        await requested('up:e', n);
      },
      () =>
        declare('gen', [
          rule('up', 'src/{stem}.txt', 'out/{stem}.up', { optionalInputs: ['src/{stem}.opt'] }),
          { ...TWICE, command: 'cat {in0} {in0} > {out0}' },
          THRICE,
        ]).then(() => undefined),
    );
    expect(viaSnapshot.from).toBe('snapshot');
    expect(viaSnapshot).toEqual({ ...viaBuckets, from: 'snapshot' });
    expect(viaBuckets.hashes['src/c.txt']).toBeUndefined();
    expect(viaBuckets.hashes['src/e.txt']).toBe(sha('e'));
  });

  it('a rule removed, and a chef gone', async () => {
    const { viaSnapshot, viaBuckets } = await across(
      async () => {
        const n = requests.length;
        await files(changed('src/b.txt', 'b edited'));
        await succeed('up:b', n, 'out/b.up', 'B EDITED');
      },
      async () => {
        await declare('gen', [UP, THRICE]);
        await (await rulesKv()).delete('extra');
      },
    );
    expect(viaSnapshot.from).toBe('snapshot');
    expect(viaSnapshot).toEqual({ ...viaBuckets, from: 'snapshot' });
    expect(viaBuckets.rules.map((r) => r.id)).toEqual(['thrice', 'up']);
  });

  it('a chef gone whose on-demand goal is stored: the goal leaves the graph, as at a full restore', async () => {
    // A goal chef extra answered for (its rule as one concrete rule in the graph, kept in KV).
    await declare('extra', [COPY]);
    const answer = {
      goal: 'special/a.out',
      chef: 'extra',
      pod: POD,
      canBuild: true,
      from: ['src/a.txt'],
      outputs: ['special/a.out'],
      rule: 'copy',
      stem: 'a',
    };
    await (await t.bus.kv(buckets.goals(P), CanBuildFrom)).put(answer.goal, answer);
    const goalRule = goalRuleId(CanBuildFrom.parse(answer));
    const before = await headId();
    const first = await start();
    expect(
      first.md
        .inspect()
        .dm.exportState()
        .rules.map((r) => r.id),
    ).toContain(goalRule);
    await untilDefined('a snapshot with the goal', async () => {
      const id = await headId();
      return id !== undefined && id !== before ? id : undefined;
    });
    await stop();

    await (await rulesKv()).delete('extra');
    const fromSnapshot = await start();
    expect(fromSnapshot.restored.from).toBe('snapshot');
    const viaSnapshot = observeRestore(fromSnapshot.md);
    await stop();
    await (await heads()).delete('head');
    const full = await start();
    expect(full.restored.from).toBe('buckets');
    const viaBuckets = observeRestore(full.md);
    await stop();
    expect(viaSnapshot).toEqual(viaBuckets);
    expect(viaBuckets.rules.map((r) => r.id)).toEqual(['thrice', 'up']);
  });
});
