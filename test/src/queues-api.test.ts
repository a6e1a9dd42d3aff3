import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { settled } from './watch-builds.js';

interface QueueDepth {
  queue: string;
  resource: string;
  concurrency: number;
  waiting: number;
  pulled: number;
  pullRequests: number;
  lastPulled: string | null;
  served: boolean;
  runners: number;
}

/** GET /api/queues: where a project's work waits, and whether a runner listens for it. */
describe('GET /api/queues', () => {
  let stack: Stack;
  let url: string;
  const queues = async (): Promise<QueueDepth[]> => {
    const res = await fetch(`${url}/api/queues`, {
      headers: { authorization: `Bearer ${stack.apiToken}` },
    });
    const body = await res.text();
    expect(res.status, body).toBe(200);
    return JSON.parse(body) as QueueDepth[];
  };
  const until = async (what: string, ok: (q: QueueDepth) => boolean): Promise<QueueDepth> => {
    let last: QueueDepth[] = [];
    for (let end = performance.now() + 30_000; performance.now() < end; ) {
      last = await queues();
      const q = last.find((x) => x.queue === 'local');
      if (q && ok(q)) return q;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: never seen; last answer ${JSON.stringify(last)}`);
  };

  beforeAll(async () => {
    stack = await Stack.start('queues');
    const chef = stack.writeUpperChef();
    await Promise.all([
      stack.start('majordomo'),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chef }),
    ]);
    url = await stack.httpUrl();
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('counts a task waiting while no runner serves the queue, then none once one does', async () => {
    const before = await until('the local queue', () => true);
    expect(before).toMatchObject({ resource: 'local', waiting: 0, pulled: 0, served: false });
    stack.write('src/a.txt', 'hello\n');
    const waiting = await until('a task waiting', (q) => q.waiting === 1);
    expect(waiting).toMatchObject({ served: false, pullRequests: 0, runners: 0 });

    await stack.start('runner');
    await settled(stack.bus, (s) =>
      s.artefacts.some((a) => a.path === 'out/a.upper' && a.status === 'up_to_date'),
    );
    const served = await until('the queue served', (q) => q.served && q.waiting === 0);
    expect(served.pulled).toBe(0);
    // The runner keeps a pull open for the next task, and says it serves the queue.
    await until('a runner listening', (q) => q.pullRequests > 0);
    expect(served.runners).toBe(1);
    // A second runner of the queue is counted too; one gone is not.
    await stack.start('runner', {}, 'runner-2');
    await until('two runners', (q) => q.runners === 2);
    await stack.kill9('runner');
    await until('one runner left', (q) => q.runners === 1);
  });
});
