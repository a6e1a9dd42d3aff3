import { Bus, ensureProjectStreams, quietLogger } from '@computepods/bus';
import { buckets, TaskRecord } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordConflictError } from './errors.js';
import { KvRecords } from './kv-records.js';

const P = 'kvrec';

describe('KvRecords over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('kv-records-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  const rec = (taskId: string, state: TaskRecord['state']): TaskRecord => ({
    task: { taskId, resource: 'local', command: 'true', cwd: '/', env: {}, gpu: false },
    state,
    history: [{ state, time: new Date().toISOString() }],
    updated: new Date().toISOString(),
  });

  it('creates, updates on the revision it wrote, and refuses a record someone else wrote', async () => {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    const records = new KvRecords(kv);
    await records.write(rec('a', 'created'));
    await records.write(rec('a', 'running'));
    expect((await kv.get('a'))?.value.state).toBe('running');
    // A second writer of the same task (another runner): its create fails, not retryable.
    const other = new KvRecords(kv);
    const conflict = await other.write(rec('a', 'created')).catch((err: unknown) => err);
    expect(conflict).toBeInstanceOf(RecordConflictError);
    expect(conflict).toMatchObject({ code: 'CP_RECORD_CONFLICT', retryable: false, taskId: 'a' });
    // An update on a revision someone else has moved past conflicts the same way.
    const stale = new KvRecords(kv);
    stale.known('a', 1);
    await expect(stale.write(rec('a', 'failed'))).rejects.toBeInstanceOf(RecordConflictError);
    await records.write(rec('a', 'finished'));
    expect((await kv.get('a'))?.value.state).toBe('finished');
  });

  it("keeps an ended task's revision for a late update, and lets it go once it is old", async () => {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    const keeping = new KvRecords(kv);
    await keeping.write(rec('k', 'created'));
    await keeping.write(rec('k', 'finished'));
    await keeping.write({ ...rec('k', 'finished'), stdoutPath: '/late' }); // a late update
    expect(keeping.size).toBe(1);
    const forgetting = new KvRecords(kv, 0);
    for (const id of ['f1', 'f2', 'f3']) {
      await forgetting.write(rec(id, 'created'));
      await forgetting.write(rec(id, 'running'));
    }
    expect(forgetting.size).toBe(3);
    await forgetting.write(rec('f1', 'failed'));
    await forgetting.write(rec('f2', 'killed'));
    expect(forgetting.size).toBe(1); // f3, still running
  });
});
