import { streams } from '@computepods/protocol';
import { defined, untilDefined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { sha, startedMajorDomo } from './test-majordomo.js';

const P = 'redeliver';

/**
 * A watcher's batch whose acknowledgement was lost (a NATS node killed, a dropped connection)
 * comes back after the ack wait, after the batches that followed it were applied. Taken as news,
 * it set a source back to bytes it no longer had: MajorDomo asked for a build of the old bytes,
 * and the chef's refusal of it (its input had changed) replaced that build's earlier success in
 * the builds bucket (fresh-clone CI runs 122, 126 and 134, test/src/nats-cluster.test.ts, about
 * 30 s, the ack wait, after the edit). A delete came back to life the same way. Now a batch's
 * stream sequence orders it: an event older than the one a path's state came from is ignored.
 * Here the lost ack is a delivery the test takes from MajorDomo's durable and gives back (nak)
 * once the later batch is applied.
 */
describe('MajorDomo and a file batch delivered again after later ones', () => {
  const t = startedMajorDomo(P);
  const record = async (path: string) => (await (await t.artefacts()).get(path))?.value;
  /** Waits until MajorDomo has handled everything published so far (its consumer is in order). */
  const drained = async (marker: string) => {
    await t.files(t.changed(marker, marker));
    await untilDefined(`${marker} recorded`, async () =>
      (await record(marker))?.sha256 === sha(marker) ? true : undefined,
    );
  };
  /** Publishes `older` then `newer`; the first is taken from MajorDomo, then handed back late. */
  const lateAfter = async (
    older: Parameters<typeof t.files>,
    newer: Parameters<typeof t.files>,
    marker: string,
  ) => {
    await t.stop();
    await t.files(...older);
    await t.files(...newer);
    const consumer = await t.bus.js.consumers.get(streams.files(P), 'majordomo-files');
    const taken = defined(await consumer.next({ expires: 5_000 }), 'the older batch');
    await t.start();
    await drained(`${marker}-1`);
    taken.nak();
    await drained(`${marker}-2`);
  };

  it('keeps the newer bytes of a source', async () => {
    await lateAfter([t.changed('src/a.txt', 'old')], [t.changed('src/a.txt', 'new')], 'm/a');
    expect((await record('src/a.txt'))?.sha256).toBe(sha('new'));
  });

  it('keeps a source deleted', async () => {
    await t.files(t.changed('src/b.txt', 'here'));
    await untilDefined('src/b.txt recorded', async () =>
      (await record('src/b.txt')) ? true : undefined,
    );
    await lateAfter([t.changed('src/b.txt', 'edited')], [t.deleted('src/b.txt')], 'm/b');
    expect(await record('src/b.txt')).toBeUndefined();
  });

  // MajorDomo keeps the stream sequence of a deleted path's batch in memory only: restarted
  // between the delete and the late batch, it has neither a record nor that sequence, and once
  // took the late batch's event as news. The stream still holds the later batch.
  it('keeps a source deleted when MajorDomo restarted before the late batch came back', async () => {
    await t.files(t.changed('src/e.txt', 'here'));
    await untilDefined('src/e.txt recorded', async () =>
      (await record('src/e.txt')) ? true : undefined,
    );
    await t.stop();
    await t.files(t.changed('src/e.txt', 'edited'));
    await t.files(t.deleted('src/e.txt'));
    const consumer = await t.bus.js.consumers.get(streams.files(P), 'majordomo-files');
    const taken = defined(await consumer.next({ expires: 5_000 }), 'the older batch');
    await t.start();
    await drained('m/e-1');
    expect(await record('src/e.txt')).toBeUndefined();
    await t.stop();
    await t.start();
    taken.nak();
    await drained('m/e-2');
    expect(await record('src/e.txt')).toBeUndefined();
    expect(t.md.inspect().dm.strings('src/e.txt')?.hash).toBeUndefined();
  });

  it('takes each side of a move on its own: a path changed since keeps its state, the other is news', async () => {
    await t.files(t.changed('src/c.txt', 'moving'));
    await untilDefined('src/c.txt recorded', async () =>
      (await record('src/c.txt')) ? true : undefined,
    );
    const moved = {
      ...t.changed('src/d.txt', 'moving'),
      kind: 'moved' as const,
      from: 'src/c.txt',
    };
    await lateAfter([moved], [t.changed('src/c.txt', 'again')], 'm/c');
    expect((await record('src/c.txt'))?.sha256).toBe(sha('again'));
    expect((await record('src/d.txt'))?.sha256).toBe(sha('moving'));
  });
});
