import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Bus } from '@computepods/bus';
import { buckets } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readParts, readWhole } from './snapshot-read.js';
import { SNAPSHOT_FORMAT, SnapshotHead } from './snapshot-store.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'snapread';
const PART = 1024;

/**
 * A snapshot's parts read from a real KV bucket a window at a time: what comes out is what went
 * in, a part missing or changed is refused as before, and never more than the window is asked
 * for at once (what bounds the memory a restart holds in parts, issue #13).
 */
describe('readParts', () => {
  // A real nats-server and the test's own connection; no chef played, no MajorDomo started.
  const t = new TestMajorDomo(P);
  let bus: Bus;
  let raw: Awaited<ReturnType<typeof store>>['kv'];
  const store = async () => bus.kv(buckets.snapshot(P), SnapshotHead, { history: 1 });
  // Random hashes (gzip halves them at best): the meta takes several parts too.
  const meta = JSON.stringify({
    records: Array.from({ length: 600 }, (_, i) => ({ i, é: randomBytes(16).toString('hex') })),
  });
  const zipped = gzipSync(meta);
  const graph = randomBytes(30 * PART + 17);
  const cut = (b: Uint8Array) => {
    const out: Uint8Array[] = [];
    for (let at = 0; at < b.length; at += PART) out.push(b.subarray(at, at + PART));
    return out;
  };
  const metaParts = cut(zipped);
  const parts = [...metaParts, ...cut(graph)];
  const head: SnapshotHead = {
    format: SNAPSHOT_FORMAT,
    id: '00000000-0000-4000-8000-000000000000',
    parts: parts.length,
    metaParts: metaParts.length,
    graphBytes: graph.length,
    bytes: parts.reduce((n, p) => n + p.length, 0),
    sha256: createHash('sha256').update(Buffer.concat(parts)).digest('hex'),
    artefacts: { created: 'x', revision: 1 },
    traces: { created: 'x', revision: 1 },
    artefactCount: 600,
    recordSchema: 'x',
    taken: new Date(0).toISOString(),
  };
  /** The bucket's get, counting how many are in flight at most. */
  const counted = () => {
    let now = 0;
    const seen = { most: 0, asked: 0 };
    const get = async (key: string) => {
      now++;
      seen.asked++;
      seen.most = Math.max(seen.most, now);
      try {
        return await raw.get(key);
      } finally {
        now--;
      }
    };
    return { get, seen };
  };

  beforeAll(async () => {
    await t.open({ chef: false });
    bus = t.bus;
    raw = (await store()).kv;
    for (const [n, p] of parts.entries()) await raw.put(`part.${n}`, p);
  });
  afterAll(async () => {
    await t.close();
  });

  it('gives the meta unzipped and the graph whole, asking for 16 parts at most at once', async () => {
    expect(metaParts.length).toBeGreaterThan(5);
    expect(parts.length).toBeGreaterThan(40);
    const { get, seen } = counted();
    const read = await readParts(head, get);
    if ('why' in read) throw new Error(read.why);
    expect(read.metaText).toBe(meta);
    expect(Buffer.from(read.graph)).toEqual(graph);
    expect(seen.asked).toBe(parts.length);
    expect(seen.most).toBe(16);
  });

  it('refuses a part missing, parts that do not hash to the head, a graph of another length', async () => {
    const missing = parts.length - 5;
    expect(await readParts({ ...head, parts: parts.length + 1 }, counted().get)).toEqual({
      why: `snapshot part ${parts.length} of ${parts.length + 1} missing`,
    });
    expect(await readParts({ ...head, sha256: '0'.repeat(64) }, counted().get)).toEqual({
      why: 'snapshot parts do not match their head (length or sha256)',
    });
    expect(await readParts({ ...head, graphBytes: graph.length - 1 }, counted().get)).toEqual({
      why: 'snapshot graph parts do not add up to its length',
    });
    const changed = Uint8Array.from(metaParts[1] ?? []);
    changed[5] = (changed[5] ?? 0) ^ 0xff;
    await raw.put('part.1', changed);
    const hash = createHash('sha256');
    for (const [n, p] of parts.entries()) hash.update(n === 1 ? changed : p);
    // Hashing to its head (a writer's own bug): the gzip says what is wrong.
    expect(await readParts({ ...head, sha256: hash.digest('hex') }, counted().get)).toMatchObject({
      why: expect.stringMatching(/^snapshot meta does not unzip: /),
    });
    expect(await readParts(head, counted().get)).toEqual({
      why: 'snapshot parts do not match their head (length or sha256)',
    });
    await raw.delete(`part.${missing}`);
    expect(await readParts(head, counted().get)).toEqual({
      why: `snapshot part ${missing} of ${parts.length} missing`,
    });
  });

  it('readWhole: the same from the parts as one run of bytes, refused for the same reasons', async () => {
    const data = Buffer.concat(parts);
    const read = await readWhole(head, data, zipped.length);
    if ('why' in read) throw new Error(read.why);
    expect(read.metaText).toBe(meta);
    expect(Buffer.from(read.graph)).toEqual(graph);
    expect(await readWhole({ ...head, sha256: '0'.repeat(64) }, data, zipped.length)).toEqual({
      why: 'snapshot parts do not match their head (length or sha256)',
    });
    expect(await readWhole(head, data.subarray(1), zipped.length)).toEqual({
      why: 'snapshot parts do not match their head (length or sha256)',
    });
    expect(await readWhole(head, data, zipped.length + 1)).toEqual({
      why: 'snapshot graph parts do not add up to its length',
    });
    const changed = Buffer.from(data);
    changed[PART + 5] = (changed[PART + 5] ?? 0) ^ 0xff;
    const sha256 = createHash('sha256').update(changed).digest('hex');
    // Hashing to its head (a writer's own bug): the gzip says what is wrong.
    expect(await readWhole({ ...head, sha256 }, changed, zipped.length)).toMatchObject({
      why: expect.stringMatching(/^snapshot meta does not unzip: /),
    });
  });
});
