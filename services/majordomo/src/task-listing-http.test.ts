import { buckets, TaskRecord } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttp } from './http.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'tasklist';
const TOKEN = 'task-listing-http-test-token-0123456789';

function record(taskId: string, state: TaskRecord['state']): TaskRecord {
  return {
    task: { taskId, resource: 'local', command: 'true', cwd: '/', env: {}, gpu: false },
    state,
    history: [{ state, time: new Date().toISOString() }],
    updated: new Date().toISOString(),
  };
}

/**
 * GET /api/tasks reads the task records from memory, kept by a watch of the bucket that starts
 * with the first listing: until someone lists tasks, MajorDomo has no consumer on the bucket and
 * the server sends it none of the runners' record writes (three a task).
 */
describe('REST task listing, over a real nats-server', () => {
  const t = new TestMajorDomo(P);
  let base = '';
  let close: () => Promise<void> = async () => undefined;

  beforeAll(async () => {
    await t.open({ chef: false });
    await t.start();
    const http = await startHttp(t.mdBus, t.md, { host: '127.0.0.1', port: 0, token: TOKEN });
    close = () => http.close();
    const address = http.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }, 60_000);
  afterAll(async () => {
    await close();
    await t.close();
  });

  const list = async (query = '') => {
    const res = await fetch(`${base}/api/tasks${query}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as TaskRecord[]).map((r) => `${r.task.taskId}=${r.state}`).sort();
  };
  const watchers = async () =>
    (await t.bus.jsm.streams.info(`KV_${buckets.tasks(P)}`)).state.consumer_count;

  it('watches the bucket only from the first listing on, which holds what was written before', async () => {
    const kv = await t.bus.kv(buckets.tasks(P), TaskRecord, { history: 5 });
    await kv.put('t-1', record('t-1', 'created'));
    await kv.put('t-1', record('t-1', 'running'));
    await kv.put('t-2', record('t-2', 'finished'));
    expect(await watchers()).toBe(0);

    expect(await list()).toEqual(['t-1=running', 't-2=finished']);
    expect(await watchers()).toBe(1);

    // Followed from then on: later writes are in the next listing, through the same watch.
    await kv.put('t-1', record('t-1', 'finished'));
    await kv.put('t-3', record('t-3', 'failed'));
    expect(await list()).toEqual(['t-1=finished', 't-2=finished', 't-3=failed']);
    expect(await list('?state=failed')).toEqual(['t-3=failed']);
    expect(await watchers()).toBe(1);
  });
});
