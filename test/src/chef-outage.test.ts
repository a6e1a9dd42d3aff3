import { rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { buckets, RulesDeclared, streams, subjects, TaskRecord } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

// A chef's heartbeat put left hanging by the outage ends with its 5 s JetStream timeout: a
// live chef is heard again some seconds after NATS returns, well within this. A dead chef is
// retired by its unanswered PINGs (CP_CHEF_PING_MS, 1 s) sooner.
const CHEF_TIMEOUT_MS = 10_000;
const PING_MS = 1_000;

/**
 * The sole chef of a rule dies while NATS is down and never comes back: once NATS returns,
 * MajorDomo must still retire it. Its retirement used to forget the chef before deleting its
 * declaration; the delete failed while NATS was away, so the chef was followed no more and its
 * rules and held build stayed for ever. A second chef, alive through the outage, must not be
 * retired for the silence NATS's absence caused.
 */
describe('a chef killed during a NATS outage', () => {
  let stack: Stack;
  const gate = () => stack.dir.join('gate');

  const poll = async (what: string, ok: () => Promise<boolean>, timeoutMs = 60_000) => {
    const end = performance.now() + timeoutMs;
    while (!(await ok())) {
      if (performance.now() > end)
        throw new Error(`timed out waiting for ${what}\n${stack.logs()}`);
      await sleep(50);
    }
  };

  beforeAll(async () => {
    stack = await Stack.start('outage');
    const chefFile = stack.writeUpperChef(
      `while [ ! -e ${gate()} ]; do sleep 0.05; done; tr a-z A-Z < {in0} > {out0}`,
    );
    const aliveFile = stack.dir.join('alive.yaml');
    writeFileSync(
      aliveFile,
      [
        'rules:',
        '  - id: lower',
        "    inputs: ['src/{stem}.big']",
        "    outputs: ['out/{stem}.lower']",
        '    command: tr A-Z a-z < {in0} > {out0}',
        '',
      ].join('\n'),
    );
    const chef = (name: string, definition: string) => ({
      CP_CHEF: name,
      CP_CHEF_DEFINITION: definition,
      CP_CHEF_HEARTBEAT_MS: '500',
    });
    await Promise.all([
      stack.start('majordomo', {
        CP_CHEF_TIMEOUT_MS: String(CHEF_TIMEOUT_MS),
        CP_CHEF_PING_MS: String(PING_MS),
      }),
      stack.start('chef', chef('text', chefFile)),
      stack.start('chef', chef('alive', aliveFile), 'chef-alive'),
      stack.start('runner'),
      stack.start('fswatcher'),
    ]);
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('is retired once NATS is back, though it never returns; a live chef is kept', async () => {
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord, { history: 5 });
    writeFileSync(gate(), '');
    stack.write('src/a.txt', 'built before\n');
    await stack.until('out/a.upper');
    // A build the chef holds (its task running) when everything goes down.
    rmSync(gate());
    stack.write('src/b.txt', 'held\n');
    await poll('out/b.upper’s task to run', async () =>
      [...(await tasks.entries()).values()].some(({ value }) => value.state === 'running'),
    );
    expect((await rules.keys()).sort()).toEqual(['alive', 'text']);

    const md = stack.procs.get('majordomo')!;
    const mark = md.output.length;
    await stack.nats.kill9();
    await md.waitForOutput('NATS disconnected', 10_000, mark);
    await stack.kill9('chef');
    // Longer than three PINGs: whatever MajorDomo tries while NATS is away, it tries.
    await sleep(PING_MS * 6);
    await stack.nats.start();

    await poll('the dead chef to be retired after NATS returned', async () => {
      const keys = await rules.keys().catch(() => ['text']);
      return !keys.includes('text');
    });
    const after = md.output.slice(mark);
    expect(after.indexOf('NATS reconnected')).toBeGreaterThan(-1);
    expect(after.slice(after.indexOf('NATS reconnected'))).toMatch(
      /"chef":"text".*"msg":"chef not heard from; its rules are retired and its work re-planned"/,
    );
    // Its queue purged (MajorDomo may: the purge was refused in the secure default before).
    // The purge follows the retirement's log line: wait for its own.
    await md.waitForOutput(
      /its queued build requests purged|could not purge its queue/,
      30_000,
      mark,
    );
    expect(md.output.slice(mark)).not.toMatch(/could not purge its queue/);
    const queue = await stack.bus.jsm.streams.info(streams.builds(stack.project), {
      subjects_filter: subjects.buildRequest(stack.project, 'text'),
    });
    expect(queue.state.messages).toBe(0);
    // Its rule gone: the output it had built is a plain file now, the one it held is missing
    // (no longer queued or building for a chef that will never answer).
    await stack.until('out/a.upper', (a) => a.status === 'source');
    await stack.until('out/b.upper', (a) => a.status === 'missing');

    // The chef alive through the outage is still declared, never retired, and builds.
    expect(await rules.keys()).toEqual(['alive']);
    expect(md.output).not.toMatch(/"chef":"alive".*"msg":"chef not heard from/);
    stack.write('src/c.big', 'ABC\n');
    await stack.until('out/c.lower');
  }, 180_000);
});
