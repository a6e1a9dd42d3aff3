import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness, waitFor } from './test-helpers.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

function setup(): Harness {
  h = new Harness();
  mkdirSync(join(h.root, 'out'), { recursive: true });
  return h;
}

/** The file's mtime (ns) and size, as a producer's report carries them. */
function statOf(path: string): { mtimeNs: bigint; size: number } {
  const st = statSync(path, { bigint: true });
  return { mtimeNs: st.mtimeNs, size: Number(st.size) };
}

describe("FileWatcher and a producer's reports (expectWrite, reportWrite)", () => {
  it('records the reported bytes with no event, and announces a later edit of them', async () => {
    setup();
    // Long enough that no wait runs out here: the report ends it.
    const w = await h.start({ reportWaitMs: 600_000 });
    const file = join(h.root, 'out/a.o');
    w.expectWrite('out/a.o');
    writeFileSync(file, 'object-1');
    await waitFor(() => w.stats().parked === 1, 'the look parked until the report');
    expect(h.events).toEqual([]);
    w.reportWrite('out/a.o', { sha256: sha('object-1'), ...statOf(file) });
    await w.idle();
    expect(h.events).toEqual([]);
    expect(w.stats()).toMatchObject({ reported: 1, stamps: 1, parked: 0 });

    // Edited by hand afterwards (same size): announced against the recorded bytes.
    writeFileSync(file, 'object-X');
    await waitFor(() => h.events.length === 1, 'the edit announced');
    expect(h.events[0]).toMatchObject({
      kind: 'changed',
      path: 'out/a.o',
      sha256: sha('object-X'),
    });

    // The adopted stamp was persisted: a restart finds nothing to announce.
    await h.stop();
    h.clear();
    const again = await h.start();
    await again.idle();
    expect(h.events).toEqual([]);
  });

  it('announces bytes written again after the report, even at its size and mtime', async () => {
    setup();
    const w = await h.start({ reportWaitMs: 600_000 });
    const file = join(h.root, 'out/b.o');
    w.expectWrite('out/b.o');
    writeFileSync(file, 'version-1');
    await waitFor(() => w.stats().parked === 1, 'the look parked until the report');
    const first = statOf(file);
    // Other bytes of the same size, their mtime set back to the first write's (to the ns):
    // only the bytes tell them apart.
    writeFileSync(file, 'version-2');
    const ns = first.mtimeNs % 1_000_000_000n;
    const at = `@${first.mtimeNs / 1_000_000_000n}.${String(ns).padStart(9, '0')}`;
    execFileSync('touch', ['-m', '-d', at, file]);
    expect(statOf(file)).toEqual(first);
    w.reportWrite('out/b.o', { sha256: sha('version-1'), ...first });
    await waitFor(() => h.events.length === 1, 'the other bytes announced');
    expect(h.events[0]).toMatchObject({
      kind: 'created',
      path: 'out/b.o',
      sha256: sha('version-2'),
    });
    expect(w.stats().reported).toBe(0);
  });

  it('announces as usual when the record is another state, or never comes', async () => {
    setup();
    const w = await h.start({ reportWaitMs: 300 });
    // Another state (failed, written elsewhere): the look goes ahead at once.
    w.expectWrite('out/c.o');
    writeFileSync(join(h.root, 'out/c.o'), 'c');
    await waitFor(() => w.stats().parked === 1, 'the look parked until the report');
    w.reportWrite('out/c.o', undefined);
    await waitFor(() => h.events.length === 1, 'c.o announced');
    // No record at all: announced once the wait runs out.
    w.expectWrite('out/d.o');
    writeFileSync(join(h.root, 'out/d.o'), 'd');
    await waitFor(() => h.events.length === 2, 'd.o announced after the wait');
    expect(h.events.map((e) => [e.kind, e.path, e.sha256])).toEqual([
      ['created', 'out/c.o', sha('c')],
      ['created', 'out/d.o', sha('d')],
    ]);
    expect(w.stats()).toMatchObject({ reported: 0, parked: 0 });
  });
});
