import { Bus, quietLogger, thenClose } from '@computepods/bus';
import {
  type BuildRequested,
  BuildRequested as BuildRequestedSchema,
  buckets,
  Envelope,
  type FileEvent,
  RulesDeclared,
  subjects,
} from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { majorDomoConfig } from './config.js';
import { MajorDomo, type RunningMajorDomo } from './majordomo.js';
import { observeRestore } from './restore-compare.js';
import { SnapshotHead } from './snapshot-store.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';
import { WarmStandby } from './warm-standby.js';

const P = 'chefrestart';
type ChefSrv = { name: string; id: string };

const rule = (id: string, input: string, output: string) => ({
  id,
  inputs: [input],
  optionalInputs: [],
  outputs: [output],
  auxiliaries: [],
  onDemand: false,
  command: 'cp {in0} {out0}',
  resource: 'local',
  cutoffIgnore: [],
  discover: 'none' as const,
});
const RULES = [
  rule('up', 'src/{stem}.txt', 'out/{stem}.up'),
  rule('twice', 'out/{stem}.up', 'out/{stem}.twice'),
];

/**
 * A chef's declaration carries its $SRV identity, new each time the chef process starts (and
 * different in each replica). What MajorDomo plans with is the chef and its rules: a chef
 * restarted between two MajorDomo restarts (or before a standby's takeover) leaves the graph
 * snapshot usable, and the restore from it stands where a full restore does. Each chef here is a
 * real $SRV responder (its own connection), so MajorDomo's PINGs find it as they would a chef.
 */
describe('a chef restarted between MajorDomo restarts', () => {
  const t = new TestMajorDomo(P);
  const requests: BuildRequested[] = [];
  const running: Array<{ stop(): Promise<void> }> = [];
  let chef: Bus | undefined;

  const start = async (env: Record<string, string> = {}): Promise<RunningMajorDomo> => {
    const b = await t.connect('majordomo');
    // No heartbeats are played: no chef is retired for their silence meanwhile (its $SRV answers).
    const cfg = { CP_PROJECT: P, CP_CHEF_TIMEOUT_MS: '600000', ...env };
    const r = await MajorDomo.start(b, majorDomoConfig(cfg));
    running.push(thenClose(r, b));
    return r;
  };
  const stop = async () => running.pop()?.stop();
  const heads = () => t.bus.kv(buckets.snapshot(P), SnapshotHead, { history: 1 });
  const headId = async () => (await (await heads()).get('head'))?.value.id;
  const newSnapshot = (before: string | undefined) =>
    untilDefined('a new snapshot stored', async () => {
      const id = await headId();
      return id !== undefined && id !== before ? id : undefined;
    });

  /** The chef (re)started: a new process, a new $SRV id, its declaration put again. */
  const restartChef = async (pod = POD): Promise<ChefSrv> => {
    await chef?.close();
    const logger = quietLogger('chef');
    chef = await Bus.connect({ servers: t.nats.url, service: 'chef', project: P, logger });
    const srv = chef.srv;
    if (!srv) throw new Error('the chef connection has no $SRV identity');
    const id = { name: srv.identity.name, id: srv.id };
    await declare(id, pod);
    return id;
  };
  /** Chef gen's declaration put, as the chef process `srv` puts it. */
  const declare = async (srv: ChefSrv, pod: string, rules = RULES) => {
    await (await t.bus.kv(buckets.rules(P), RulesDeclared)).put('gen', {
      chef: 'gen',
      pod,
      types: [],
      rules,
      srv,
    });
  };
  const files = (...events: FileEvent[]) => t.files(...events);
  const changed = (path: string, content: string) => t.changed(path, content);
  const requested = (taskId: string, after = 0) =>
    untilDefined(`${taskId} requested`, () =>
      requests.slice(after).find((r) => r.taskId === taskId),
    );

  beforeAll(async () => {
    await t.open({ chef: false });
    t.bus.nc.subscribe(subjects.buildRequest(P, 'gen'), {
      callback: (_e, m) => {
        const env = Envelope.parse(JSON.parse(new TextDecoder().decode(m.data)));
        requests.push(BuildRequestedSchema.parse(env.body));
      },
    });
    const [artefacts, traces] = await Promise.all([t.artefacts(), t.traces()]);
    const updated = new Date().toISOString();
    for (const stem of ['a', 'b', 'c']) {
      const [src, out] = [`src/${stem}.txt`, `out/${stem}.up`];
      const common = { pods: [POD], updated, size: 1 };
      await artefacts.put(src, { path: src, status: 'source', sha256: sha(stem), ...common });
      await artefacts.put(out, {
        path: out,
        status: 'up_to_date',
        sha256: sha(`${stem} up`),
        producer: `up:${stem}`,
        ...common,
      });
      await traces.put(`up:${stem}`, {
        taskId: `up:${stem}`,
        inputs: { [src]: sha(stem) },
        outputs: { [out]: sha(`${stem} up`) },
        buildId: 'b',
        time: updated,
      });
    }
    await restartChef();
  }, 60_000);
  afterAll(async () => {
    while (running.length) await stop();
    await chef?.close();
    await t.close();
  });

  it('restores from the snapshot, as a full restore would', async () => {
    const first = await start();
    expect(first.restored.from).toBe('buckets');
    await newSnapshot(undefined);
    // A change since the snapshot, so the tail is not empty.
    const before = requests.length;
    await files(changed('src/a.txt', 'a edited'));
    await requested('up:a', before);
    await stop();

    const oldId = chef?.srv?.id;
    const { id: newId } = await restartChef();
    expect(newId).not.toBe(oldId);

    const again = await start();
    expect(again.restored.from).toBe('snapshot');
    const viaSnapshot = observeRestore(again.md);
    await stop();

    await (await heads()).delete('head');
    const full = await start();
    expect(full.restored.from).toBe('buckets');
    const viaBuckets = observeRestore(full.md);
    await newSnapshot(undefined); // stored for the next case before this MajorDomo stops
    await stop();
    expect(viaSnapshot).toEqual(viaBuckets);
    expect(viaBuckets.hashes['src/a.txt']).toBe(sha('a edited'));
    expect(viaBuckets.inFlight.map((b) => b.split(' ')[0])).toContain('up:a');
  });

  it('a warm standby takes over warm after a chef restart', async () => {
    const leader = await start();
    expect(leader.restored.from).toBe('snapshot');
    const b = await t.connect('majordomo');
    const cfg = majorDomoConfig({
      CP_PROJECT: P,
      CP_STANDBY_FOLLOW_MS: '600000',
      CP_CHEF_TIMEOUT_MS: '600000',
    });
    const warm = await WarmStandby.start(b, cfg);
    let closes = true;
    try {
      await warm.follow();
      expect(warm.warm).toBe(true);
      await restartChef();
      await stop();
      const took = await MajorDomo.start(b, cfg, undefined, warm);
      running.push(thenClose(took, b));
      closes = false;
      expect(took.restored.from).toBe('standby');
      const viaStandby = observeRestore(took.md);
      await stop();

      await (await heads()).delete('head');
      const full = await start();
      expect(full.restored.from).toBe('buckets');
      const viaBuckets = observeRestore(full.md);
      await stop();
      expect(viaStandby).toEqual(viaBuckets);
    } finally {
      await warm.take({ declarations: {}, goals: [] }).catch(() => undefined);
      if (closes) await b.close();
    }
  });

  it('a replica declaring from another pod neither cancels nor sends again a build in flight', async () => {
    const { md } = await start();
    const before = requests.length;
    await files(changed('src/b.txt', 'b edited'));
    const upB = await requested('up:b', before);
    const inFlight = () => md.queries.builds().find((x) => x.taskId === 'up:b')?.buildId;
    expect(inFlight()).toBe(upB.buildId);
    // Another process of chef gen, on another pod: its heartbeat puts the declaration with its
    // own $SRV id and pod. Then that replica upgraded with one rule more: once MajorDomo has it,
    // it has applied the put before it (one watch, one queue).
    const replica = await restartChef('pod-b');
    await declare(replica, 'pod-b', [
      ...RULES,
      rule('thrice', 'out/{stem}.twice', 'out/{stem}.thrice'),
    ]);
    await untilDefined('rule thrice applied', () => md.inspect().rules.get('thrice'));
    expect(inFlight()).toBe(upB.buildId);
    expect(requests.slice(before).filter((r) => r.taskId === 'up:b')).toHaveLength(1);
    await stop();
  });
});
