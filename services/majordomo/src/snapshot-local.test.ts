import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import type { Bus } from '@computepods/bus';
import { TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalSnapshot } from './snapshot-local.js';
import { readParts } from './snapshot-read.js';
import { type Loaded, SnapshotStore, type StoredMeta } from './snapshot-store.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'snaplocal';

/**
 * The local copy of the stored snapshot (snapshot-local.ts) against a real KV bucket: a restart
 * reads it only while it copies the head stored in KV now, through the checks of a read from KV;
 * a damaged, cut-short or stale copy is not used (the parts come from KV, and the copy is written
 * again from them).
 */
describe('the local snapshot copy', () => {
  // A real nats-server and the test's own connection; no chef played, no MajorDomo started.
  const t = new TestMajorDomo(P);
  let bus: Bus;
  const dir = new TempDir('cp-snaplocal-');
  const meta: StoredMeta = {
    passLimit: 5,
    records: {
      count: 0,
      strings: [],
      podLists: [],
      at: [],
      status: [],
      sha256: [],
      cutoff: [],
      producer: [],
      size: [],
      pods: [],
      updated: [],
      buildId: [],
      writtenPod: [],
      writtenMtime: [],
      rest: [],
    },
    passes: [],
    declarations: { gen: 'rules' },
    goals: [],
  };
  const marks = {
    artefacts: { created: 'a', revision: 3 },
    traces: { created: 't', revision: 4 },
  };
  /** Bytes compared by their sha256 (a diff of MBs of bytes would take minutes to print). */
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const snapshot = (loaded: Loaded) => {
    if ('why' in loaded) throw new Error(loaded.why);
    return loaded.snapshot;
  };

  beforeAll(async () => {
    await t.open({ chef: false });
    bus = t.bus;
  });
  afterAll(async () => {
    await t.close();
    dir[Symbol.dispose]();
  });

  /**
   * Waits until the copy's file holds `head`'s parts (written in the background), checked as a
   * restart reads them: a copy with a byte changed in a part opens (its trailer names the head),
   * and only the parts' sha256 tells it from the rewrite (fresh-clone CI run 125 saw the wait
   * end on the damaged file, before the rewrite came).
   */
  const copied = async (store: SnapshotStore) => {
    const head = await store.current();
    if (!head) throw new Error('no head');
    const local = LocalSnapshot.in(dir.path, P);
    for (let i = 0; i < 200; i++) {
      const copy = await local.open(head);
      if (!('why' in copy)) {
        const parts = await readParts(head, (key) => copy.get(key));
        await copy.close();
        if (!('why' in parts)) return head;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('the local copy was not written');
  };

  it('is read when it copies the stored head, and not when damaged, cut short or stale', async () => {
    const store = await SnapshotStore.open(bus, dir.path);
    // Over the part size (half the max payload): the graph takes several parts.
    const graph = randomBytes(2 * store.partBytes + 1234);
    await store.save(meta, graph, marks);
    const head = await copied(store);
    const local = LocalSnapshot.in(dir.path, P);
    const good = readFileSync(local.file);

    // A restart on this machine: the copy, equal to what KV holds.
    const restarted = await SnapshotStore.open(bus, dir.path);
    const fromCopy = snapshot(await restarted.load());
    expect(fromCopy.readFrom).toBe('local copy');
    expect(sha(fromCopy.graph)).toBe(sha(graph));
    expect(fromCopy.graph.byteOffset % 8).toBe(0); // depgraph reads its words in place
    expect(fromCopy.meta).toEqual(meta);

    // A byte of a graph part changed: refused by the parts' sha256, read from KV, copied again.
    const damaged = Buffer.from(good);
    damaged[store.partBytes + 7] = (damaged[store.partBytes + 7] ?? 0) ^ 0x01;
    writeFileSync(local.file, damaged);
    const open = await local.open(head);
    if ('why' in open) throw new Error(open.why);
    expect(await readParts(head, (key) => open.get(key))).toEqual({
      why: 'snapshot parts do not match their head (length or sha256)',
    });
    await open.close();
    const afterDamage = snapshot(await restarted.load());
    expect(afterDamage.readFrom).toBe('KV');
    expect(sha(afterDamage.graph)).toBe(sha(graph));
    await copied(restarted);
    expect(sha(readFileSync(local.file))).toBe(sha(good));
    expect(snapshot(await restarted.load()).readFrom).toBe('local copy');

    // Cut short: no trailer to read; from KV.
    truncateSync(local.file, Math.floor(good.length / 2));
    expect(await local.open(head)).toMatchObject({ why: expect.any(String) });
    const afterCut = snapshot(await restarted.load());
    expect(afterCut.readFrom).toBe('KV');
    expect(sha(afterCut.graph)).toBe(sha(graph));
    await copied(restarted);

    // Another MajorDomo (another state dir) stored a newer snapshot: the copy is stale, never
    // used; the new one comes from KV and replaces it.
    const elsewhere = await SnapshotStore.open(bus);
    const newer = randomBytes(store.partBytes + 99);
    const newHead = await elsewhere.save({ ...meta, goals: ['g'] }, newer, marks);
    expect(await local.open(newHead)).toEqual({ why: 'a copy of another snapshot' });
    const afterNewer = snapshot(await restarted.load());
    expect(afterNewer.readFrom).toBe('KV');
    expect(afterNewer.head.id).toBe(newHead.id);
    expect(sha(afterNewer.graph)).toBe(sha(newer));
    expect(afterNewer.meta.goals).toEqual(['g']);
    await copied(restarted);
    const again = snapshot(await restarted.load());
    expect(again.readFrom).toBe('local copy');
    expect(sha(again.graph)).toBe(sha(newer));
    expect(await local.open(head)).toEqual({ why: 'a copy of another snapshot' });
  });
});
