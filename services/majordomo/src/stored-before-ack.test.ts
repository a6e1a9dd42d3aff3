import {
  type BuildRequested,
  StatusReply,
  statusWithAllArtefacts,
  streams,
} from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from './api.js';
import { sha, TestMajorDomo } from './test-majordomo.js';

const P = 'storedack';

/**
 * A build result is applied and the next build requested while its records are being written;
 * it is acknowledged only once they are stored (majordomo.ts, STORED). Shown with one build at a
 * time (CP_PARALLEL_BUILDS=1) and the first result's trace write held back: the second build is
 * requested meanwhile and its result applied, the first result stays unacknowledged (a MajorDomo
 * killed -9 now gets it again), and MajorDomo does not call itself idle until the write lands.
 */
describe('MajorDomo: a result is acknowledged once its records are stored', () => {
  const t = new TestMajorDomo(P);
  const requests = t.requests;
  // The first result's trace write waits for this (let go at the end, or when a check failed).
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });

  const status = () => statusWithAllArtefacts((req) => t.bus.request('status', req, StatusReply));
  const resultsAckPending = async () =>
    (await t.bus.jsm.consumers.info(streams.buildRecords(P), 'majordomo-builds')).num_ack_pending;
  const succeed = (req: BuildRequested, bytes: string) => t.succeed(req, bytes);

  beforeAll(async () => {
    await t.open();
    const md = await t.start({ CP_PARALLEL_BUILDS: '1' });
    serveApi(t.mdBus, md);
  }, 120_000);
  afterAll(() => {
    release();
    return t.close();
  });

  it('requests the next build before the trace is stored, and acks the result after', async () => {
    await t.files(t.changed('src/a.txt', 'a'), t.changed('src/b.txt', 'b'));
    const first = await untilDefined('the first request', async () => requests[0]);

    const traces = t.md.inspect().traces;
    const put = traces.put.bind(traces);
    let held = 0;
    traces.put = async (...args: Parameters<typeof put>) => {
      if (args[0] === first.taskId) {
        held++;
        await gate;
      }
      return put(...args);
    };
    await succeed(first, 'A\n');

    // The other build is requested while the first result's trace is not stored yet.
    const second = await untilDefined('the second request', async () => requests[1], 10_000);
    expect(held).toBe(1);
    expect(second.taskId).not.toBe(first.taskId);
    // The second result is applied (and acknowledged) meanwhile; the first is not acknowledged
    // (checked for a while: a plain ack is sent and forgotten), and MajorDomo is not idle.
    await succeed(second, 'B\n');
    await untilDefined('the second output up to date', async () =>
      (await status()).artefacts.some(
        (a) => a.path === second.outputs[0] && a.status === 'up_to_date',
      )
        ? true
        : undefined,
    );
    // Its records are stored, then it is acknowledged: the status may show it first.
    await untilDefined('the second result acknowledged', async () =>
      (await resultsAckPending()) === 1 ? true : undefined,
    );
    for (let i = 0; i < 5; i++) {
      expect(await resultsAckPending()).toBe(1);
      await new Promise((r) => setTimeout(r, 50));
    }
    const busy = await status();
    expect(busy.idle).toBe(false);
    expect(busy.running).toEqual([]);

    release();
    await untilDefined('the first result acknowledged', async () =>
      (await resultsAckPending()) === 0 ? true : undefined,
    );
    const trace = await untilDefined(
      'the first trace stored',
      async () => (await (await t.traces()).get(first.taskId))?.value,
    );
    expect(trace.buildId).toBe(first.buildId);
    const done = await untilDefined('idle', async () => {
      const s = await status();
      return s.idle ? s : undefined;
    });
    expect(done.artefacts.find((a) => a.path === first.outputs[0])).toMatchObject({
      status: 'up_to_date',
      sha256: sha('A\n'),
    });
  });
});
