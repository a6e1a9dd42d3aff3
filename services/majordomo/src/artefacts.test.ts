import { type ArtefactRecord, subjects } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtefactManager } from './artefacts.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'records';

/**
 * What the ArtefactManager writes to KV (the truth after a restart) and announces (the UI,
 * cpctrl --watch): every change is announced; a change to `queued` alone is not written (a
 * restart plans the build again), unless it drops what a restart reads (a hold's key, a cycle's
 * passes); a change of projections alone is written.
 */
describe('ArtefactManager: what is written, what is announced', () => {
  const t = new TestMajorDomo(P);
  const announced: ArtefactRecord[] = [];
  /** Each message's records, as path=status. */
  const messages: string[][] = [];

  beforeAll(async () => {
    await t.open({ chef: false });
    t.bus.nc.subscribe(subjects.artefactState(P), {
      callback: (_e, m) => {
        const env = m.json() as { type: string; body: { records: ArtefactRecord[] } };
        messages.push(env.body.records.map((r) => `${r.path}=${r.status}`));
        announced.push(...env.body.records);
      },
    });
  }, 60_000);
  afterAll(() => t.close());

  const stored = async (path: string) => (await (await t.artefacts()).get(path))?.value;
  const announcedFor = async (path: string, n: number) => {
    await t.bus.nc.flush();
    for (let i = 0; i < 200 && announced.filter((a) => a.path === path).length < n; i++)
      await new Promise((r) => setTimeout(r, 10));
    return announced.filter((a) => a.path === path).map((a) => a.status);
  };

  it('announces a queued output and keeps it in memory, writing only the states after it', async () => {
    const m = await ArtefactManager.fromRecords(t.bus, []);
    await m.update('out/a.up', { status: 'queued', producer: 'up:a' });
    expect(m.get('out/a.up')?.status).toBe('queued');
    expect(await stored('out/a.up')).toBeUndefined();
    await m.update('out/a.up', {
      status: 'up_to_date',
      sha256: sha('A'),
      size: 1,
      producer: 'up:a',
      pods: [POD],
    });
    expect(await stored('out/a.up')).toMatchObject({ status: 'up_to_date', sha256: sha('A') });
    // Rebuilt: queued again, the KV record keeps the bytes it has.
    await m.update('out/a.up', { status: 'queued', producer: 'up:a' });
    expect(await stored('out/a.up')).toMatchObject({ status: 'up_to_date', sha256: sha('A') });
    expect(await announcedFor('out/a.up', 3)).toEqual(['queued', 'up_to_date', 'queued']);
  });

  it("announces a path's changes in the order they were made, a write in flight or not", async () => {
    const m = await ArtefactManager.fromRecords(t.bus, []);
    // A build's result (written, then announced) and the next build's queued output (not
    // written) in one turn: the queued one is announced after the result, its last state.
    const built = m.update('out/o.up', {
      status: 'up_to_date',
      sha256: sha('O'),
      size: 1,
      producer: 'up:o',
      pods: [POD],
    });
    const queued = m.update('out/o.up', { status: 'queued', producer: 'up:o' });
    await Promise.all([built, queued]);
    expect(m.get('out/o.up')?.status).toBe('queued');
    expect(await announcedFor('out/o.up', 2)).toEqual(['up_to_date', 'queued']);
    // A deletion in flight, then the path built again.
    const gone = m.removals();
    const removed = gone.remove('out/o.up');
    const again = m.update('out/o.up', { status: 'queued', producer: 'up:o' });
    gone.close();
    await Promise.all([removed, again]);
    expect(await announcedFor('out/o.up', 4)).toEqual([
      'up_to_date',
      'queued',
      'missing',
      'queued',
    ]);
  });

  it('writes a queued record that drops a hold or a verdict a restart would read', async () => {
    const m = await ArtefactManager.fromRecords(t.bus, []);
    const held = 'f'.repeat(32);
    await m.update('out/h.up', {
      status: 'cancelled',
      error: 'build cancelled by request',
      producer: 'up:h',
      held,
    });
    expect(await stored('out/h.up')).toMatchObject({ status: 'cancelled', held });
    await m.update('out/h.up', { status: 'queued', producer: 'up:h' });
    expect(await stored('out/h.up')).toMatchObject({ status: 'queued' });
    expect(await stored('out/h.up')).not.toHaveProperty('held');

    await m.update('out/n.up', { status: 'not_converging', error: 'still changing', passes: 3 });
    await m.update('out/n.up', { status: 'queued' });
    expect(await stored('out/n.up')).toMatchObject({ status: 'queued' });
    expect(await stored('out/n.up')).not.toHaveProperty('passes');
  });

  it('writes a change of projections alone', async () => {
    const m = await ArtefactManager.fromRecords(t.bus, []);
    await m.update('src/p.txt', { status: 'source', sha256: sha('p'), size: 1, pods: [POD] });
    const projections = { '0123456789abcdef': sha('projected') };
    await m.update('src/p.txt', { status: 'source', projections });
    expect(await stored('src/p.txt')).toMatchObject({ projections });
  });

  it('announces the changes of one event-loop turn in one message, in order', async () => {
    const m = await ArtefactManager.fromRecords(t.bus, []);
    // One turn: three outputs queued (announced, not written), one of them failed after.
    const turn = Promise.all([
      m.update('out/t1.up', { status: 'queued', producer: 'up:t1' }),
      m.update('out/t2.up', { status: 'queued', producer: 'up:t2' }),
      m.update('out/t3.up', { status: 'queued', producer: 'up:t3' }),
    ]);
    await turn;
    await new Promise((r) => setImmediate(r));
    // The next turn's change: a message of its own.
    await m.update('out/t2.up', { status: 'failed', producer: 'up:t2', error: 'no' });
    expect(await announcedFor('out/t2.up', 2)).toEqual(['queued', 'failed']);
    expect(messages.filter((paths) => paths.some((p) => p.startsWith('out/t')))).toEqual([
      ['out/t1.up=queued', 'out/t2.up=queued', 'out/t3.up=queued'],
      ['out/t2.up=failed'],
    ]);
  });

  it('holds the changes of a turn while builds are in flight, for the next announcement', async () => {
    const m = await ArtefactManager.fromRecords(t.bus, []);
    let busy = true;
    m.holdWhile(() => busy, 60_000);
    // A build's output stored up to date while another build is in flight: held.
    await m.update('out/held1.up', {
      status: 'up_to_date',
      sha256: sha('h1'),
      size: 1,
      pods: [POD],
    });
    await new Promise((r) => setTimeout(r, 100));
    await t.bus.nc.flush();
    expect(announced.filter((a) => a.path === 'out/held1.up')).toEqual([]);
    // The next request's queued output: announced with it, in one message (announceNow).
    await m.update('out/held2.up', { status: 'queued', producer: 'up:h2' });
    m.announceNow();
    expect(await announcedFor('out/held2.up', 1)).toEqual(['queued']);
    // Nothing in flight (the last result): its change goes at the end of its turn.
    busy = false;
    await m.update('out/held2.up', {
      status: 'up_to_date',
      sha256: sha('h2'),
      size: 1,
      pods: [POD],
    });
    expect(await announcedFor('out/held2.up', 2)).toEqual(['queued', 'up_to_date']);
    expect(messages.filter((paths) => paths.some((p) => p.startsWith('out/held')))).toEqual([
      ['out/held1.up=up_to_date', 'out/held2.up=queued'],
      ['out/held2.up=up_to_date'],
    ]);
  });

  it('refuses an invalid record: not kept, written or announced', async () => {
    const m = await ArtefactManager.fromRecords(t.bus, []);
    await expect(
      m.update('out/bad.up', { status: 'up_to_date', sha256: 'not a hash', size: 1 }),
    ).rejects.toThrow(/invalid artefact record for out\/bad.up/);
    expect(m.get('out/bad.up')).toBeUndefined();
    expect(await stored('out/bad.up')).toBeUndefined();
    await m.update('out/bad.up', { status: 'queued', producer: 'up:bad' });
    expect(await announcedFor('out/bad.up', 1)).toEqual(['queued']);
  });
});
