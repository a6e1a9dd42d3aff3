import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buckets,
  Envelope,
  FilesChanged,
  streams,
  subjects,
  TaskRecord,
} from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedCopy } from './gated-copy.js';
import { Stack } from './stack.js';
import { BuildLog } from './watch-builds.js';

/**
 * Replicas of the scaled-out services (issue #13): two chef processes of one name, two runners of
 * one queue, two fswatchers of one pod, each pair serving one project at once, and one of each
 * killed -9 in the middle of a build. Real nats-server (operator mode), every service its own
 * process. Counting is done by a ledger outside the workspace (nothing watches it): the rule's
 * command appends one line when it has run to its end, so a build run twice shows twice.
 */
describe('replicas: chefs of one name, runners of one queue, fswatchers of one pod', () => {
  let stack: Stack;
  let log: BuildLog;
  let copy: GatedCopy;
  let chefEnv: Record<string, string>;
  /** A runner restarted within CP_RUNNER_DEAD_S adopts its tasks; an hour here, so that is what
   * the runner case sees (runner-liveness.test.ts: one that does not come back). */
  const mdEnv = {
    CP_CHEF_TIMEOUT_MS: '3000',
    CP_CHEF_REPLICA_DEAD_S: '7',
    CP_RUNNER_DEAD_S: '3600',
  };
  /** Every batch of file changes published (core NATS sees each publish, deduplicated or not). */
  const batches: FilesChanged[] = [];
  let announced: { unsubscribe(): void } | undefined;
  const sha = (content: string) => createHash('sha256').update(content).digest('hex');
  /** How many published batches announced `path` holding `content`. */
  const announcements = (path: string, content: string) =>
    batches.filter((b) => b.events.some((e) => e.path === path && e.sha256 === sha(content)))
      .length;
  const ws = (p: string) => join(stack.workspace, p);
  const runs = (stem: string) => copy.runs(stem);
  const tasks = () => stack.bus.kv(buckets.tasks(stack.project), TaskRecord, { history: 5 });
  const until = async (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 60_000) => {
    const end = performance.now() + timeoutMs;
    while (!(await ok())) {
      if (performance.now() > end)
        throw new Error(`timed out waiting for ${what}\n${stack.logs()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  /** The record of the one task the build of `copy:<stem>` (the request at `from` on) made. */
  const taskOf = async (stem: string, from: number): Promise<TaskRecord | undefined> => {
    const req = log.requestsFor(`copy:${stem}`, from)[0];
    return req ? (await (await tasks()).get(`b-${req.buildId}`))?.value : undefined;
  };
  /** Up to date in MajorDomo's record with the bytes of `content`, and those bytes on disk. */
  const built = async (stem: string, content: string) => {
    await stack.until(
      `g/${stem}.out`,
      (a) => a.status === 'up_to_date' && a.sha256 === sha(content),
      60_000,
    );
    expect(readFileSync(ws(`g/${stem}.out`), 'utf8')).toBe(content);
  };

  beforeAll(async () => {
    stack = await Stack.start('replicas');
    copy = new GatedCopy(stack);
    // The chefs' ack wait is ten minutes: a build taken from a dead replica within the test's
    // time was handed on by MajorDomo's replica liveness, not by JetStream's redelivery.
    const chef = {
      CP_CHEF: 'copier',
      CP_CHEF_DEFINITION: copy.definition,
      CP_CHEF_HEARTBEAT_MS: '500',
      CP_CHEF_ACK_WAIT_MS: '600000',
    };
    await Promise.all([
      stack.start('majordomo', mdEnv),
      stack.start('runner', { CP_RUNNER_ID: 'runner-1' }, 'runner-1'),
      stack.start('runner', { CP_RUNNER_ID: 'runner-2' }, 'runner-2'),
      // One pod, two watchers of its workspace (their own stamp files: CP_STATE_DIR by name).
      stack.start('fswatcher', {}, 'fswatcher-1'),
      stack.start('fswatcher', {}, 'fswatcher-2'),
      stack.start('chef', chef, 'chef-1'),
    ]);
    // The second replica of chef "copier" is started by the first test, once chef-1 holds a build.
    announced = stack.bus.nc.subscribe(subjects.filesChangedAll(stack.project), {
      callback: (_e, m) => {
        const body = Envelope.parse(JSON.parse(new TextDecoder().decode(m.data))).body;
        batches.push(FilesChanged.parse(body));
      },
    });
    log = await BuildLog.start(stack.bus);
    chefEnv = chef;
  }, 180_000);
  afterAll(async () => {
    log?.close();
    announced?.unsubscribe();
    await stack?.[Symbol.asyncDispose]();
  });

  it('two chefs of one name: the build a replica held when killed -9 finishes on the other, once', async () => {
    const from = log.requests.length;
    stack.write('g/c1.in', 'pause c1\n');
    // chef-1 is the only replica yet: the build is its own.
    await until(
      'the build of c1 to run',
      async () => (await taskOf('c1', from))?.state === 'running',
    );
    await stack.start('chef', chefEnv, 'chef-2');
    const durable = await stack.bus.jsm.consumers.info(
      streams.builds(stack.project),
      'chef-copier',
    );
    expect(durable.config.ack_wait).toBeGreaterThanOrEqual(600_000 * 1_000_000);
    await stack.kill9('chef-1');
    copy.gate('c1');
    // MajorDomo hears chef-1 no more and has the request it held handed out again (not after the
    // ten-minute ack wait): chef-2 finds the task b-<buildId> already ran and reports it.
    await stack.procs
      .get('majordomo')!
      .waitForOutput(/chef replica stopped answering; the requests it held are handed out again/);
    await built('c1', 'pause c1\n');
    const req = log.requestsFor('copy:c1', from);
    expect(req).toHaveLength(1);
    await until('the result of c1', () => log.resultOf(req[0]!.buildId) !== undefined);
    expect(log.resultOf(req[0]!.buildId)).toMatchObject({ status: 'succeeded', chef: 'copier' });
    expect(runs('c1')).toEqual(['pause c1']);

    // The survivor builds new work alone.
    stack.write('g/c2.in', 'after c2\n');
    await built('c2', 'after c2\n');
    expect(runs('c2')).toEqual(['after c2']);
  }, 120_000);

  it('two runners of one queue: a task whose runner is killed -9 runs once; the survivor takes new work', async () => {
    const from = log.requests.length;
    stack.write('g/r1.in', 'pause r1\n');
    await until(
      'the task of r1 to run',
      async () => (await taskOf('r1', from))?.state === 'running',
    );
    // Recorded running comes before the spawn: kill the runner only once the command began.
    await until('the command of r1 to begin', () => copy.started('r1'));
    const victim = (await taskOf('r1', from))?.runner ?? '';
    expect(['runner-1', 'runner-2']).toContain(victim);
    const survivor = victim === 'runner-1' ? 'runner-2' : 'runner-1';
    await stack.kill9(victim);
    // The local task is not the runner's child to die with it: it runs on to its end.
    copy.gate('r1');
    await until('the task of r1 to run to its end', () => runs('r1').length === 1);

    // New work goes to the survivor alone.
    const next = log.requests.length;
    stack.write('g/r2.in', 'after r2\n');
    await built('r2', 'after r2\n');
    expect((await taskOf('r2', next))?.runner).toBe(survivor);
    expect(runs('r2')).toEqual(['after r2']);

    // No runner takes over another's tasks: the survivor neither ran r1 again nor recorded its
    // end, which only the runner of that id can see (its task folder). Its build waits.
    expect(await taskOf('r1', from)).toMatchObject({ state: 'running', runner: victim });
    expect((await stack.artefact('g/r1.out'))?.status).not.toBe('up_to_date');
    // Started again under its id, the runner adopts the task, finds it ended and records it;
    // the chef reports the build. The command ran once.
    await stack.start('runner', { CP_RUNNER_ID: victim }, victim);
    await built('r1', 'pause r1\n');
    expect(await taskOf('r1', from)).toMatchObject({ state: 'finished', runner: victim });
    expect(runs('r1')).toEqual(['pause r1']);
    const req = log.requestsFor('copy:r1', from);
    expect(req).toHaveLength(1);
    await until('the result of r1', () => log.resultOf(req[0]!.buildId) !== undefined);
    expect(log.resultOf(req[0]!.buildId)?.status).toBe('succeeded');
  }, 120_000);

  it('two fswatchers of one pod: an edit is built once; with one killed -9 edits are still built', async () => {
    const from = log.requests.length;
    stack.write('g/f1.in', 'one f1\n');
    await built('f1', 'one f1\n');
    await until(
      'both fswatchers to announce g/f1.in',
      () => announcements('g/f1.in', 'one f1\n') >= 2,
    );
    // The changes stream is ordered: once a later edit is built, both announcements of g/f1.in
    // were handled before it.
    stack.write('g/f2.in', 'two f2\n');
    await built('f2', 'two f2\n');
    await until(
      'both fswatchers to announce g/f2.in',
      () => announcements('g/f2.in', 'two f2\n') >= 2,
    );
    stack.write('g/f3.in', 'barrier f3\n');
    await built('f3', 'barrier f3\n');
    expect(log.requestsFor('copy:f1', from)).toHaveLength(1);
    expect(log.requestsFor('copy:f2', from)).toHaveLength(1);
    expect(runs('f1')).toEqual(['one f1']);
    expect(runs('f2')).toEqual(['two f2']);

    // Whether a duplicate was dropped by JetStream (the same batch: the same message id) or
    // reached MajorDomo (cut differently) is up to the watchers' timing. The second case, made
    // sure of: the events of g/f1.in and g/f3.in as the watchers announced them, in one batch
    // neither published (another message id). Nothing is built again.
    const eventOf = (path: string, content: string) =>
      batches.flatMap((b) => b.events).find((e) => e.path === path && e.sha256 === sha(content));
    const events = [eventOf('g/f1.in', 'one f1\n'), eventOf('g/f3.in', 'barrier f3\n')];
    expect(events.every((e) => e !== undefined)).toBe(true);
    const ack = await stack.bus.publish(
      'files.changed',
      subjects.filesChanged(stack.project, 'pod-test'),
      { pod: 'pod-test', events: events.filter((e) => e !== undefined) },
      { msgId: 'replicas-recut-batch' },
    );
    expect(ack.duplicate).toBe(false); // in the stream, for MajorDomo to read before g/f4.in
    stack.write('g/f4.in', 'barrier f4\n');
    await built('f4', 'barrier f4\n');
    expect(log.requestsFor('copy:f1', from)).toHaveLength(1);
    expect(log.requestsFor('copy:f3', from)).toHaveLength(1);
    expect(runs('f1')).toEqual(['one f1']);

    await stack.kill9('fswatcher-1');
    stack.write('g/f1.in', 'one f1 again\n');
    await built('f1', 'one f1 again\n');
    expect(runs('f1')).toEqual(['one f1', 'one f1 again']);
    expect(log.requestsFor('copy:f1', from)).toHaveLength(2);
  }, 120_000);

  it('a chef replica that died while MajorDomo was down: the build it held finishes on another, once', async () => {
    const from = log.requests.length;
    stack.write('g/c3.in', 'pause c3\n');
    await until('the command of c3 to begin', () => copy.started('c3'));
    // The chef replica left (chef-2 after the first test) holds the request and waits for its
    // task. MajorDomo goes, then that replica: the MajorDomo that comes back never heard it
    // answer a PING. What tells it of the replica is the declaration it wrote last (rules bucket,
    // with its $SRV id); without that the request would wait the ten-minute ack wait.
    const chefs = [...stack.procs].filter(([n, p]) => n.startsWith('chef-') && p.running);
    await stack.kill9('majordomo');
    for (const [name] of chefs) await stack.kill9(name);
    await stack.start('majordomo', mdEnv);
    await stack.start('chef', chefEnv, 'chef-3');
    copy.gate('c3');
    await stack.procs
      .get('majordomo')!
      .waitForOutput(/chef replica stopped answering; the requests it held are handed out again/);
    await built('c3', 'pause c3\n');
    // The restarted MajorDomo publishes the build it had in flight again: the same build id, which
    // JetStream takes as a duplicate. One build, one result, one run.
    const req = log.requestsFor('copy:c3', from);
    expect(new Set(req.map((r) => r.buildId)).size).toBe(1);
    await until('the result of c3', () => log.resultOf(req[0]!.buildId) !== undefined);
    expect(log.resultOf(req[0]!.buildId)).toMatchObject({ status: 'succeeded', chef: 'copier' });
    expect(runs('c3')).toEqual(['pause c3']);
  }, 120_000);
});
