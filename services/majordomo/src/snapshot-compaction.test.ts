import { createHash } from 'node:crypto';
import { Bus, quietLogger, thenClose } from '@computepods/bus';
import { ArtefactRecord, buckets, type FileEvent, subjects } from '@computepods/protocol';
import { NatsServer, untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { majorDomoConfig } from './config.js';
import { MajorDomo, type RunningMajorDomo } from './majordomo.js';
import { SnapshotHead } from './snapshot-store.js';

const P = 'compact';
const POD = 'pod-a';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * A running MajorDomo takes its snapshot again once the buckets moved past it (here after one
 * write, checked every second), from the stored snapshot and the keys written since: the next
 * restart reads no tail, and holds the records a full restore does.
 */
describe('MajorDomo takes its graph snapshot again while it runs', () => {
  let nats: NatsServer;
  let bus: Bus;
  let seq = 0;
  const running: Array<{ stop(): Promise<void> }> = [];
  const env = { CP_PROJECT: P, CP_SNAPSHOT_EVERY_S: '1', CP_SNAPSHOT_TAIL: '1' };

  const connect = (service: string) => {
    const logger = quietLogger(service);
    return Bus.connect({ servers: nats.url, service, project: P, logger, discoverable: false });
  };
  const start = async (): Promise<RunningMajorDomo> => {
    const b = await connect('majordomo');
    const r = await MajorDomo.start(b, majorDomoConfig(env));
    running.push(thenClose(r, b));
    return r;
  };
  const stop = async () => running.pop()?.stop();
  const event = (path: string, content: string | null): FileEvent => ({
    kind: content === null ? 'deleted' : 'changed',
    path,
    size: content?.length ?? 0,
    mtimeNs: String(++seq),
    sha256: content === null ? null : sha(content),
  });
  const records = (md: MajorDomo) =>
    md
      .inspect()
      .artefacts.all()
      .map(({ updated: _, ...r }) => r);

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await connect('test');
    const artefacts = await bus.kv(buckets.artefacts(P), ArtefactRecord);
    for (const name of ['a', 'b', 'c'])
      await artefacts.put(`src/${name}.txt`, {
        path: `src/${name}.txt`,
        status: 'source',
        sha256: sha(name),
        size: 1,
        pods: [POD],
        updated: new Date().toISOString(),
      });
  }, 60_000);
  afterAll(async () => {
    while (running.length) await stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('after writes past the threshold, the next restart reads no tail and equals a full restore', async () => {
    const heads = await bus.kv(buckets.snapshot(P), SnapshotHead, { history: 1 });
    const first = await start();
    expect(first.restored.from).toBe('buckets');
    const taken = await untilDefined(
      'the first snapshot',
      async () => (await heads.get('head'))?.value,
    );

    await bus.publish(
      'files.changed',
      subjects.filesChanged(P, POD),
      {
        pod: POD,
        events: [event('src/a.txt', 'a edited'), event('src/d.txt', 'd'), event('src/c.txt', null)],
      },
      { msgId: 'compact-1' },
    );
    const again = await untilDefined('the snapshot taken again', async () => {
      const h = (await heads.get('head'))?.value;
      return h && h.id !== taken.id ? h : undefined;
    });
    expect(again.artefacts.revision).toBeGreaterThan(taken.artefacts.revision);
    expect(again.artefactCount).toBe(3);
    await stop();

    const restarted = await start();
    expect(restarted.restored).toEqual({ from: 'snapshot', tail: { artefacts: 0, traces: 0 } });
    const viaSnapshot = records(restarted.md);
    await stop();
    await heads.delete('head');
    const full = await start();
    expect(full.restored.from).toBe('buckets');
    expect(viaSnapshot).toEqual(records(full.md));
    expect(viaSnapshot.map((r) => r.path)).toEqual(['src/a.txt', 'src/b.txt', 'src/d.txt']);
  });
});
