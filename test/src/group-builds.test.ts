import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buckets, TaskRecord } from '@computepods/protocol';
import { sha256, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, stepsOf } from './watch-builds.js';

/**
 * Group builds (MajorDomo's CP_GROUP_BUILDS) with real processes: nats-server, MajorDomo, the
 * chef, the runner and the fswatcher. Ready steps of one rule go as a few builds, each step's
 * command run in turn by one task; a step that fails in a group is found when the group's steps
 * are built one by one; a chef killed -9 while a group's task runs is asked again by its queue
 * and joins that task, so every step's command completes once.
 */
describe('group builds', () => {
  let stack: Stack;
  let log: BuildLog;
  const gate = () => stack.dir.join('gate');
  const ledger = () => stack.ledger();
  /** How many times `out` was written by a command that ran to its end. */
  const completions = (out: string) =>
    ledger()
      .read()
      .split('\n')
      .filter((l) => l === out).length;
  const chefEnv = () => ({ CP_CHEF: 'text', CP_CHEF_DEFINITION: stack.dir.join('chef.yaml') });
  /** Writes `files` while no fswatcher runs: its start reports them in one batch, ready at once. */
  const writeAtOnce = async (files: Record<string, string>) => {
    await stack.kill9('fswatcher');
    for (const [path, text] of Object.entries(files)) stack.write(path, text);
    await stack.start('fswatcher');
  };
  const stems = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const upToDate = (stem: string) =>
    stack.until(
      `out/${stem}.upper`,
      (a) => a.status === 'up_to_date' && a.sha256 === sha256(`${stem.toUpperCase()}\n`),
      60_000,
    );

  /**
   * Six sources `<prefix>0..5` written at once with the gate shut: waits until the two groups
   * they make are requested and both their tasks run (held at the gate).
   */
  const twoGroupsRunning = async (prefix: string) => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const from = log.requests.length;
    rmSync(gate());
    const names = stems(prefix, 6);
    await writeAtOnce(Object.fromEntries(names.map((s) => [`src/${s}.txt`, `${s}\n`])));
    await until(
      () => log.requests.length - from >= 2,
      'the groups requested',
      30_000,
      () => stack.logs(),
    );
    const groups = log.requests.slice(from);
    await until(
      async () => {
        for (const r of groups)
          if ((await tasks.get(`b-${r.buildId}`))?.value.state !== 'running') return false;
        return true;
      },
      "both groups' tasks running",
      30_000,
      () => stack.logs(),
    );
    return { names, groups, from };
  };

  beforeAll(async () => {
    stack = await Stack.start('groups');
    log = await BuildLog.start(stack.bus);
    // Waits for the gate; a source saying `fail` fails its step; every completion is logged.
    stack.writeUpperChef(
      `while [ ! -e ${gate()} ]; do sleep 0.02; done; case $(cat {in0}) in fail*) echo "{in0} says fail" >&2; exit 3;; esac; tr a-z A-Z < {in0} > {out0} && echo {out0} >> ${ledger().path}`,
    );
    writeFileSync(gate(), '');
    await Promise.all([
      stack.start('majordomo', { CP_GROUP_BUILDS: '4', CP_GROUP_SPREAD: '2' }),
      stack.start('chef', chefEnv()),
      stack.start('runner', { CP_PARALLEL: '2' }),
      stack.start('fswatcher'),
    ]);
  }, 120_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('builds ten ready steps as four builds, each step once', async () => {
    const names = stems('a', 10);
    await writeAtOnce(Object.fromEntries(names.map((s) => [`src/${s}.txt`, `${s}\n`])));
    for (const s of names) await upToDate(s);
    // 10 steps, 2 lanes, at most 4 a build: 3, 3, 2, 2.
    const sizes = log.requests.map((r) => 1 + (r.group?.length ?? 0));
    expect(sizes).toEqual([3, 3, 2, 2]);
    for (const s of names) expect(completions(`out/${s}.upper`), s).toBe(1);
    // A step's record names the group's build, whose task has its log.
    const rec = await stack.artefact('out/a1.upper');
    expect(rec?.buildId).toBe(log.requestsFor('upper:a1')[0]?.buildId);
  }, 120_000);

  it('finds a failing step when its group is built again one by one; the others are built', async () => {
    const from = log.requests.length;
    const names = stems('b', 6);
    const files = Object.fromEntries(names.map((s) => [`src/${s}.txt`, `${s}\n`]));
    files['src/b1.txt'] = 'fail here\n';
    await writeAtOnce(files);
    const failed = await stack.status('out/b1.upper', 'failed');
    expect(failed.error).toMatch(/exit code 3/);
    for (const s of names.filter((s) => s !== 'b1')) await upToDate(s);
    // b1's group failed as a whole; each of its steps was then asked for alone.
    const group = log.requestsFor('upper:b1', from).find((r) => r.group);
    expect(group).toBeDefined();
    const alone = log.requestsFor('upper:b1', from).filter((r) => !r.group);
    expect(alone).toHaveLength(1);
    // Fixed, so no failed step waits for the next tests' restarts (a restart plans it again).
    stack.write('src/b1.txt', 'b1\n');
    await upToDate('b1');
  }, 120_000);

  it('a chef killed -9 while a group runs: the restarted chef joins its task, each step completes once', async () => {
    const { names, groups, from } = await twoGroupsRunning('c');
    expect(groups.map((r) => 1 + (r.group?.length ?? 0))).toEqual([3, 3]);
    await stack.kill9('chef');
    await stack.start('chef', chefEnv());
    writeFileSync(gate(), '');
    for (const s of names) await upToDate(s);
    for (const s of names) expect(completions(`out/${s}.upper`), s).toBe(1);
    for (const s of names)
      expect(readFileSync(join(stack.workspace, `out/${s}.upper`), 'utf8')).toBe(
        `${s.toUpperCase()}\n`,
      );
    // No other build of these steps was asked for: the restarted chef answered the groups.
    expect(log.requests.length - from).toBe(2);
  }, 120_000);

  it('MajorDomo killed -9 while groups run: restarted, it packs the same groups, whose chef joins their tasks', async () => {
    const { names, groups, from } = await twoGroupsRunning('d');
    await stack.kill9('majordomo');
    await stack.start('majordomo', { CP_GROUP_BUILDS: '4', CP_GROUP_SPREAD: '2' });
    // The restarted MajorDomo asks for the steps again, as the same two groups (task id order).
    await until(
      () => log.requests.length - from >= 4,
      'the groups asked again',
      30_000,
      () => stack.logs(),
    );
    const shown = log.requests.slice(from).map((r) => `${r.buildId.slice(0, 8)} ${stepsOf(r)}`);
    expect(
      log.requests
        .slice(from + 2)
        .map((r) => r.buildId)
        .sort(),
      shown.join('; '),
    ).toEqual(groups.map((r) => r.buildId).sort());
    writeFileSync(gate(), '');
    for (const s of names) await upToDate(s);
    for (const s of names) expect(completions(`out/${s}.upper`), s).toBe(1);
  }, 120_000);
});
