import { buckets, TaskRecord } from '@computepods/protocol';
import { GatedCopy } from './gated-copy.js';
import { Stack } from './stack.js';
import { BuildLog } from './watch-builds.js';

/**
 * The stack of the runner liveness tests: MajorDomo taking a runner unheard for 7 s for dead
 * (CP_RUNNER_DEAD_S), an fswatcher, the gated copy chef (gated-copy.ts) and a first runner,
 * `runner-1`, with the builds followed (BuildLog). Its runners serve the queue `local`, one task
 * at a time, their ack wait ten minutes: nothing a test waits for can come from JetStream handing
 * a message out again. Real nats-server (operator mode), each service its own process.
 */
export class LivenessStack implements AsyncDisposable {
  private constructor(
    readonly stack: Stack,
    readonly copy: GatedCopy,
    readonly log: BuildLog,
  ) {}

  /** The stack, `runner-1` started with `runner1` in its environment too. */
  static async start(project: string, runner1: Record<string, string> = {}) {
    const stack = await Stack.start(project);
    // Not returned when a service fails to start, so no afterAll can stop the others: stopped
    // here, once every start has settled (one still spawning would come after the stop), or
    // they outlived the test file's run, nats-server and all.
    const copy = new GatedCopy(stack);
    const started = await Promise.allSettled([
      stack.start('majordomo', { CP_RUNNER_DEAD_S: '7' }),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'copier', CP_CHEF_DEFINITION: copy.definition }),
      startRunner(stack, 'runner-1', runner1),
    ]);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await stack[Symbol.asyncDispose]();
      throw failed.reason;
    }
    return new LivenessStack(stack, copy, await BuildLog.start(stack.bus));
  }

  /** Another runner of the queue `local`. */
  runner(name: string, extra: Record<string, string> = {}) {
    return startRunner(this.stack, name, extra);
  }

  /** Waits until `ok`, failing after `timeoutMs` with the services' logs. */
  async until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 90_000) {
    const end = performance.now() + timeoutMs;
    while (!(await ok())) {
      if (performance.now() > end)
        throw new Error(`timed out waiting for ${what}\n${this.stack.logs()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  tasks() {
    return this.stack.bus.kv(buckets.tasks(this.stack.project), TaskRecord, { history: 5 });
  }

  /** The record of the task the first build of `copy:<stem>` made. */
  async taskOf(stem: string): Promise<TaskRecord | undefined> {
    const req = this.log.requestsFor(`copy:${stem}`)[0];
    return req ? (await (await this.tasks()).get(`b-${req.buildId}`))?.value : undefined;
  }

  async [Symbol.asyncDispose]() {
    this.log.close();
    await this.stack[Symbol.asyncDispose]();
  }
}

function startRunner(stack: Stack, name: string, extra: Record<string, string>) {
  return stack.start(
    'runner',
    { CP_RUNNER_ID: name, CP_PARALLEL: '1', CP_RUNNER_ACK_WAIT_MS: '600000', ...extra },
    name,
  );
}
