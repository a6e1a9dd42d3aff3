import { buckets, TaskRecord } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenTasks } from './open-tasks.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'opentasks';

function record(taskId: string, state: TaskRecord['state']): TaskRecord {
  const time = new Date().toISOString();
  return {
    task: { taskId, resource: 'local', command: 'true', cwd: '/', env: {}, gpu: false },
    state,
    runner: 'r1',
    history: [{ state, time }],
    updated: time,
  };
}

/**
 * The runner-liveness sweep's view of the records not ended (open-tasks.ts): the tasks bucket is
 * read whole once, then only what was written since. Real nats-server; the JetStream gets the
 * reads make are counted on the wire (each message read is one `$JS.API.STREAM.MSG.GET`).
 */
describe('OpenTasks: the task records not ended, read from their changes', () => {
  const t = new TestMajorDomo(P);
  let gets = 0;

  beforeAll(async () => {
    await t.open({ chef: false });
    t.bus.nc.subscribe(`$JS.API.STREAM.MSG.GET.KV_${buckets.tasks(P)}`, {
      callback: () => {
        gets++;
      },
    });
  }, 60_000);
  afterAll(() => t.close());

  const kv = () => t.bus.kv(buckets.tasks(P), TaskRecord, { history: 5 });
  /** The gets made by `read`, once the server has echoed them all to this connection. */
  const counted = async <T>(read: () => Promise<T>): Promise<{ value: T; gets: number }> => {
    await t.bus.nc.flush();
    const before = gets;
    const value = await read();
    await t.bus.nc.flush();
    return { value, gets: gets - before };
  };
  const ids = (m: ReadonlyMap<string, unknown>) => [...m.keys()].sort();

  it('reads the bucket once, then only the records written since', async () => {
    const tasks = await kv();
    for (let i = 0; i < 30; i++) await tasks.put(`done-${i}`, record(`done-${i}`, 'finished'));
    await tasks.put('a', record('a', 'submitted'));
    await tasks.put('b', record('b', 'running'));
    const open = new OpenTasks(tasks);
    const first = await counted(() => open.refresh());
    expect(ids(first.value)).toEqual(['a', 'b']);
    expect(first.gets).toBeGreaterThanOrEqual(32);

    // Nothing written since: nothing read.
    const idle = await counted(() => open.refresh());
    expect(ids(idle.value)).toEqual(['a', 'b']);
    expect(idle.gets).toBeLessThanOrEqual(1);

    // One ends, one is deleted, one is new: three messages read (a get each, and one more per
    // walker to find its end), not the bucket again.
    await tasks.put('a', record('a', 'finished'));
    await tasks.delete('b');
    await tasks.put('c', record('c', 'created'));
    const after = await counted(() => open.refresh());
    expect(ids(after.value)).toEqual(['c']);
    expect(after.value.get('c')?.value.state).toBe('created');
    expect(after.gets).toBeLessThanOrEqual(6);
  });

  it('forgets a record until it is written again', async () => {
    const tasks = await kv();
    const open = new OpenTasks(tasks);
    await tasks.put('f', record('f', 'running'));
    expect((await open.refresh()).has('f')).toBe(true);
    open.forget('f');
    expect((await open.refresh()).has('f')).toBe(false);
    await tasks.put('f', record('f', 'running'));
    expect((await open.refresh()).has('f')).toBe(true);
  });

  it('reads a bucket made again whole, holding nothing of the one before', async () => {
    const tasks = await kv();
    const open = new OpenTasks(tasks);
    await tasks.put('old', record('old', 'running'));
    expect((await open.refresh()).has('old')).toBe(true);
    await t.bus.jsm.streams.delete(`KV_${buckets.tasks(P)}`);
    const again = await kv();
    await again.put('new', record('new', 'submitted'));
    const open2 = await open.refresh();
    expect(ids(open2)).toEqual(['new']);
  });
});
