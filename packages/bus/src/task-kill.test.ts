import { buckets, Envelope, subjects, TaskControl, TaskRecord } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import { ensureProjectStreams } from './project.js';
import { killTask } from './task-kill.js';

const P = 'kills';

/** killTask over a real nats-server, against a runner that answers garbage before it kills. */
describe('killTask (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('kill-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'chef', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('asks again past answers that are not a task.control reply, and past a refusal, until killed', async () => {
    const answers = [
      'not json',
      JSON.stringify({ ok: 'yes' }),
      JSON.stringify({ ok: false, error: { code: 'CP_ILLEGAL_TRANSITION', message: 'wait' } }),
      JSON.stringify({ ok: true, result: { taskId: 't-1', state: 'killed' } }),
    ];
    const asked: string[] = [];
    const runner = bus.nc.subscribe(subjects.taskControl(P), {
      callback: (_e, m) => {
        const body = TaskControl.parse(Envelope.parse(m.json()).body);
        asked.push(`${body.action} ${body.taskId}`);
        m.respond(answers[asked.length - 1] ?? answers[answers.length - 1]);
      },
    });
    try {
      await bus.nc.flush();
      const tasks = await bus.kv(buckets.tasks(P), TaskRecord);
      const killed = await killTask(
        bus,
        async (id) => (await tasks.get(id))?.value.state,
        't-1',
        logger,
      );
      expect(killed).toBe(true);
      // { ok: 'yes' } is not a kill done (it was, read with a cast: truthy), nor is a refusal.
      expect(asked).toEqual(['kill t-1', 'kill t-1', 'kill t-1', 'kill t-1']);
    } finally {
      runner.unsubscribe();
    }
  });
});
