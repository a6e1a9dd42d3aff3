import { userInfo } from 'node:os';
import { Bus, ensureProjectStreams, quietLogger } from '@computepods/bus';
import { SudoHost } from '@computepods/executors';
import { buckets, DeadLetter, Envelope, subjects, TaskRecord } from '@computepods/protocol';
import { NatsServer, TempDir, untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PilotStagingServer, servePilotStaging } from './pilot-staging.js';

const P = 'stagetest';
const QUEUE = 'q';

/**
 * The runner's side of pilot staging over a real nats-server, for requests that never reach the
 * cluster (those are pilot.test's staged cases, on real SLURM): a malformed request is answered
 * CP_MESSAGE_INVALID naming the field and dead-lettered, and the subscription still answers.
 */
describe('pilot staging requests (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let server: PilotStagingServer;
  const dir = new TempDir('cp-stage-');
  const letters: DeadLetter[] = [];
  const logger = quietLogger('stage-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    await ensureProjectStreams(bus, P);
    bus.nc.subscribe(subjects.deadLetter(P, 'runner'), {
      callback: (_e, m) => {
        letters.push(DeadLetter.parse(Envelope.parse(m.json()).body));
      },
    });
    server = servePilotStaging({
      bus,
      kv: await bus.kv(buckets.tasks(P), TaskRecord),
      queue: QUEUE,
      resource: 'cluster',
      // Never asked here: every request below is answered before anything is copied.
      host: new SudoHost({ username: userInfo().username }),
      jobsDir: '/jobs',
      workspaceRoots: [dir.path],
      log: logger,
    });
    await bus.nc.flush();
  });
  afterAll(async () => {
    server?.close();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  const ask = async (data: string) => {
    const m = await bus.nc.request(subjects.pilotStage(P, QUEUE), data, { timeout: 5_000 });
    return JSON.parse(new TextDecoder().decode(m.data)) as {
      ok: boolean;
      error?: { code: string; message: string; field?: string };
    };
  };

  it('answers a malformed request CP_MESSAGE_INVALID naming the field, dead-letters it, and goes on', async () => {
    const bad: Array<[string, string]> = [
      ['{"op":', ''],
      [JSON.stringify({ op: 'sideways', taskId: 't-1', stageDir: '/x' }), 'op'],
      [JSON.stringify({ op: 'in', taskId: 't-1' }), 'stageDir'],
      [JSON.stringify([1, 2]), ''],
    ];
    for (const [data, field] of bad) {
      const answer = await ask(data);
      expect(answer.ok).toBe(false);
      expect(answer.error).toMatchObject({ code: 'CP_MESSAGE_INVALID', field });
    }
    await untilDefined('4 dead letters', async () => (letters.length === 4 ? true : undefined));
    expect(letters.map((l) => l.data)).toEqual(bad.map(([data]) => data));
    expect(letters.map((l) => l.issues[0]?.path)).toEqual(bad.map(([, field]) => field));

    // Valid requests still reach the handler, which refuses these (no such task; a folder
    // that is not a stage folder of this queue's pilots) with its reasons.
    expect(
      await ask(
        JSON.stringify({ op: 'in', taskId: 't-1', stageDir: '/jobs/pilot-q-0123abcd/stage/t-1' }),
      ),
    ).toEqual({
      ok: false,
      error: { code: 'CP_STAGE_REFUSED', message: 'task t-1: not running in a pilot of queue q' },
    });
    const elsewhere = await ask(
      JSON.stringify({ op: 'out', taskId: 't-1', stageDir: '/etc/stage/t-1' }),
    );
    expect(elsewhere.error?.code).toBe('CP_STAGE_REFUSED');
    expect(elsewhere.error?.message).toMatch(/is not a stage folder of this queue's pilots/);
  });
});
