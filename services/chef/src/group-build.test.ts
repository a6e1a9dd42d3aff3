import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bus, ensureProjectStreams, quietLogger, type TypedKv } from '@computepods/bus';
import {
  type BuildRequested,
  BuildResult,
  buckets,
  Rule,
  type RuleInput,
  subjects,
  TaskRecord,
  type TaskSubmitted,
} from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ChefContext, handleBuild } from './build.js';
import { InFlightBuilds } from './cancel.js';
import { fillCommand } from './command.js';
import { chefConfig } from './config.js';
import { InputFetcher } from './fetch-inputs.js';
import { HashCache } from './hash-cache.js';
import { resultOut } from './result-out.js';
import { TaskView } from './task-view.js';

const P = 'groups';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * A compile as cheap as `printf`: the object, and a depfile naming the source and a header of
 * the step's own (inc/<stem>.h). Each run appends its stem to `ran`, so a test sees which steps
 * ran, in which order; stem `bad` fails after that.
 */
const cc = (r: Partial<RuleInput> = {}) =>
  Rule.parse({
    id: 'cc',
    inputs: ['src/{stem}.c'],
    outputs: ['obj/{stem}.o', 'obj/{stem}.d'],
    command:
      "echo {stem} >> ran && test {stem} != bad && printf 'object %s\\n' {stem} > {out0} && printf '%s: %s inc/%s.h\\n' {out0} {in0} {stem} > {out1} # the depfile",
    discover: 'makedepend',
    ...r,
  });

/**
 * handleBuild over a real nats-server, a runner's part played here: each task.submitted on the
 * queue is recorded running, its command run by /bin/sh in its cwd, and its end recorded, as the
 * runner records them (the chef waits on those records).
 */
describe('a chef building a group request (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let ctx: ChefContext;
  let ws: string;
  const submitted: TaskSubmitted[] = [];
  const logger = quietLogger('chef-test');
  let stopRunner = () => {};

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'chef', project: P, logger });
    await ensureProjectStreams(bus, P);
    ws = mkdtempSync(join(tmpdir(), 'cp-group-'));
    const records = await bus.kv(buckets.tasks(P), TaskRecord);
    const results = await bus.kv(buckets.builds(P), BuildResult);
    const hashes = new HashCache();
    ctx = {
      bus,
      project: P,
      chef: 'c',
      pod: 'here',
      workspace: ws,
      rules: new Map(
        [
          cc(),
          // Every step's depfile is one file: two steps of a group would write it.
          cc({ id: 'shared', outputs: ['obj/{stem}.o', 'obj/shared.d'] }),
          cc({ id: 'ccp', projections: [{ input: 'src/{stem}.c', lines: '^int' }] }),
        ].map((r) => [r.id, r]),
      ),
      tasks: await bus.kv(buckets.tasks(P), TaskView, { history: 5 }),
      results,
      resultOut: resultOut(results),
      fetcher: new InputFetcher({}, 'here', ws, logger, hashes),
      hashes,
      inflight: new InFlightBuilds(async () => undefined),
      queues: { route: () => ({ queue: 'local' }) },
      taskWait: chefConfig({}).taskWait,
    };
    stopRunner = playRunner(bus, records, submitted);
  });
  afterAll(async () => {
    stopRunner();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    if (ws) rmSync(ws, { recursive: true, force: true });
  });
  beforeEach(() => {
    submitted.length = 0;
    rmSync(join(ws, 'ran'), { force: true });
    rmSync(join(ws, 'obj'), { recursive: true, force: true });
  });

  /** Writes each stem's source and gives the request for them, the first stem its own. */
  let builds = 0;
  function request(stems: readonly string[], r: Partial<BuildRequested> = {}): BuildRequested {
    mkdirSync(join(ws, 'src'), { recursive: true });
    const inputs: Record<string, string> = {};
    for (const s of stems) {
      writeFileSync(join(ws, `src/${s}.c`), `int ${s};\n`);
      inputs[`src/${s}.c`] = sha(`int ${s};\n`);
    }
    const step = (s: string) => ({
      taskId: `cc:${s}`,
      stem: s,
      outputs: [`obj/${s}.o`, `obj/${s}.d`],
    });
    const [first, ...others] = stems.map(step);
    return {
      // A build id of its own for every request: results are kept by build id.
      buildId: sha(`build ${++builds}`).slice(0, 16),
      ...(first as ReturnType<typeof step>),
      ruleId: 'cc',
      chef: 'c',
      inputs,
      pass: 1,
      locations: {},
      ...(others.length ? { group: others } : {}),
      ...r,
    };
  }
  async function build(req: BuildRequested): Promise<BuildResult> {
    await handleBuild(ctx, req, { id: `m-${req.buildId}`, cid: 'test' }, logger);
    const result = (await ctx.results.get(req.buildId))?.value;
    if (!result) throw new Error(`no result stored for build ${req.buildId}`);
    return result;
  }
  const ran = () => (existsSync(join(ws, 'ran')) ? readFileSync(join(ws, 'ran'), 'utf8') : '');

  it("runs a group's steps in one task, in order, and says what each step's run discovered", async () => {
    const req = request(['a', 'b', 'c']);
    const result = await build(req);
    expect(result).toMatchObject({ status: 'succeeded', taskId: 'cc:a' });
    expect(ran()).toBe('a\nb\nc\n');
    expect(submitted).toHaveLength(1);
    const [task] = submitted;
    expect(task?.step).toEqual({ id: 'cc:a', pass: 1, chef: 'c', also: ['cc:b', 'cc:c'] });
    const alone = (s: string) =>
      fillCommand(cc().command, {
        stem: s,
        inputs: [`src/${s}.c`],
        outputs: [`obj/${s}.o`, `obj/${s}.d`],
      });
    expect(task?.command).toBe(`(\n${alone('a')}\n) && (\n${alone('b')}\n) && (\n${alone('c')}\n)`);
    const outputs = ['a', 'b', 'c'].flatMap((s) => [`obj/${s}.o`, `obj/${s}.d`]);
    expect(task?.files).toEqual({
      inputs: ['src/a.c', 'src/b.c', 'src/c.c'],
      outputs,
      auxiliaries: [],
    });
    expect(Object.keys(result.outputs)).toEqual(outputs);
    expect(result.outputs['obj/b.o']?.sha256).toBe(sha('object b\n'));
    expect(result.steps).toEqual({
      'cc:a': ['inc/a.h'],
      'cc:b': ['inc/b.h'],
      'cc:c': ['inc/c.h'],
    });
    expect(result.discovered).toEqual(['inc/a.h', 'inc/b.h', 'inc/c.h']);
  });

  it('builds a lone request as ever: its own command, no also, no steps', async () => {
    const result = await build(request(['lone']));
    expect(result).toMatchObject({ status: 'succeeded', discovered: ['inc/lone.h'] });
    expect(result.steps).toBeUndefined();
    expect(submitted.map((t) => [t.step, t.command.startsWith('echo ')])).toEqual([
      [{ id: 'cc:lone', pass: 1, chef: 'c' }, true],
    ]);
  });

  it('supersedes an earlier build of any of its steps, and runs once that build ended', async () => {
    const earlier = ctx.inflight.begin('e'.repeat(16), 'cc:b');
    const building = build(request(['a', 'b']));
    await new Promise((r) => setTimeout(r, 50));
    expect(earlier.aborted).toBe(true);
    expect(String(earlier.reason)).toMatch(/^superseded by build [0-9a-f]{16}$/);
    // Nothing runs while the superseded build winds down.
    expect(submitted).toEqual([]);
    ctx.inflight.end('e'.repeat(16), earlier);
    expect((await building).status).toBe('succeeded');
    expect(ran()).toBe('a\nb\n');
    expect(ctx.inflight.size).toBe(0);
  });

  it('fails the group at its first failing step: the steps after it do not run', async () => {
    const result = await build(request(['a', 'bad', 'c']));
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/^task b-[0-9a-f]+ failed: exit 1/);
    expect(ran()).toBe('a\nbad\n');
    expect(existsSync(join(ws, 'obj/c.o'))).toBe(false);
  });

  it.each<[string, (req: BuildRequested) => BuildRequested, RegExp]>([
    [
      'lastRun',
      (req) => ({ ...req, lastRun: { inputs: {}, outputs: {} } }),
      /step "cc:a" \(the request’s own\): lastRun/,
    ],
    [
      'two steps with one task id',
      (req) => ({ ...req, group: req.group?.map((s) => ({ ...s, taskId: 'cc:a' })) }),
      /step "cc:a" \(group\[0\]\): another step has the same task id/,
    ],
    [
      'a rule with projections',
      (req) => ({ ...req, ruleId: 'ccp' }),
      /step "cc:a" \(the request’s own\): rule ccp projects inputs/,
    ],
    [
      "a step's output another step's too",
      (req) => ({
        ...req,
        ruleId: 'shared',
        outputs: ['obj/a.o', 'obj/shared.d'],
        group: [{ taskId: 'cc:b', stem: 'b', outputs: ['obj/b.o', 'obj/shared.d'] }],
      }),
      /step "cc:b" \(group\[0\]\): its output "obj\/shared\.d" is step cc:a's too/,
    ],
    [
      "a step's outputs not its rule's",
      (req) => ({ ...req, group: req.group?.map((s) => ({ ...s, outputs: ['src/main.c'] })) }),
      /step "cc:b" \(group\[0\]\): .*outputs differ .*not the rule's \["src\/main\.c"\]/,
    ],
    [
      "a step's required input without a hash",
      (req) => ({ ...req, inputs: { 'src/a.c': req.inputs['src/a.c'] as string } }),
      /step "cc:b" \(group\[0\]\): inputs has no hash for its required inputs \["src\/b\.c"\]/,
    ],
    [
      "another step's output among the inputs",
      (req) => ({ ...req, inputs: { ...req.inputs, 'obj/b.o': sha('x') } }),
      /inputs \["obj\/b\.o"\] are no step's rule inputs.*step cc:b writes/,
    ],
  ])('answers a group with %s failed, nothing fetched, written or run', async (_, edit, why) => {
    const result = await build(edit(request(['a', 'b'])));
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/^CP_CHEF_REQUEST_MISMATCH: group: /);
    expect(result.error).toMatch(why);
    expect(submitted).toEqual([]);
    expect(ran()).toBe('');
    expect(existsSync(join(ws, 'obj'))).toBe(false);
  });
});

/**
 * Plays the runner of queue `local`: each task is recorded running, run by /bin/sh in its cwd,
 * and recorded finished (exit 0) or failed, as the runner records its tasks.
 */
function playRunner(
  bus: Bus,
  records: TypedKv<typeof TaskRecord>,
  submitted: TaskSubmitted[],
): () => void {
  const listener = bus.listen(subjects.tasks(P, 'local'), {
    accept: ['task.submitted'],
    handler: async (msg) => {
      const task = msg.body;
      submitted.push(task);
      const now = () => new Date().toISOString();
      await records.put(task.taskId, { task, state: 'running', updated: now() });
      const run = spawnSync('/bin/sh', ['-c', task.command], { cwd: task.cwd, encoding: 'utf8' });
      const ok = run.status === 0;
      await records.put(task.taskId, {
        task,
        state: ok ? 'finished' : 'failed',
        exitCode: run.status,
        ...(ok ? {} : { reason: `exit ${run.status}: ${run.stderr.slice(0, 200)}` }),
        updated: now(),
      });
    },
  });
  return () => listener.unsubscribe();
}
