import { subjects } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttp } from './http.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'taskctl';
const TOKEN = 'task-control-http-test-token-0123456789';

/**
 * POST /api/tasks/:taskId/:action asks the runner holding the task over task.control and
 * answers with its reply, checked: a reply that is not a task-control reply is a clear 502,
 * not a crash or a pass-through. The runner is played by hand.
 */
describe('REST task control and the runner’s answer, over a real nats-server', () => {
  const t = new TestMajorDomo(P);
  let port = 0;
  let close: () => Promise<void> = async () => undefined;
  const answers: string[] = [];

  beforeAll(async () => {
    await t.open();
    await t.start();
    const http = await startHttp(t.mdBus, t.md, { host: '127.0.0.1', port: 0, token: TOKEN });
    close = () => http.close();
    const address = http.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
    t.bus.nc.subscribe(subjects.taskControl(P), {
      callback: (_err, m) => {
        m.respond(answers.shift() ?? '');
      },
    });
    await t.bus.nc.flush();
  }, 60_000);
  afterAll(async () => {
    await close();
    await t.close();
  });

  const kill = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/tasks/t-1/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('answers 502 naming the task for a reply that is not JSON or not a reply, and passes a good one on', async () => {
    answers.push('not json', JSON.stringify({ ok: 'yes' }));
    for (let i = 0; i < 2; i++)
      expect(await kill()).toMatchObject({
        status: 502,
        body: { error: { code: 'CP_UNAVAILABLE', message: expect.stringContaining('t-1') } },
      });
    answers.push(JSON.stringify({ ok: true, result: { taskId: 't-1', state: 'killed' } }));
    expect(await kill()).toEqual({ status: 200, body: { taskId: 't-1', state: 'killed' } });
    answers.push(
      JSON.stringify({ ok: false, error: { code: 'CP_ILLEGAL_TRANSITION', message: 'no' } }),
    );
    expect(await kill()).toMatchObject({
      status: 409,
      body: { error: { code: 'CP_ILLEGAL_TRANSITION' } },
    });
  });
});
