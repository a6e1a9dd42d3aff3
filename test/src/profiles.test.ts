import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buckets, subjects, TaskRecord } from '@computepods/protocol';
import {
  ensureSystemUser,
  Slurm,
  shareDirs,
  startTogether,
  TempDir,
  until,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const USERS = { one: 'cpuser', two: 'cpuser2' } as const;

/**
 * Two profiles on one SLURM resource, as a lab shares a cluster: each bound to the project by
 * its own queue, each queue served by its own runner. A rule's profile picks the queue, and the
 * job runs as that profile's user, never the other's, even when a task on the wire says so.
 */
describe('two profiles on one slurm_sudo resource', { timeout: 300_000 }, () => {
  let stack: Stack;
  let slurm: Slurm;
  const shared = new TempDir('cp-e2e-profiles-');

  beforeAll(async () => {
    await Promise.all(Object.values(USERS).map((u) => ensureSystemUser(u)));
    shareDirs(shared, [shared.join('jobs')]);
    [stack, slurm] = await startTogether([Stack.start('profiles'), Slurm.start()]);
    const resource = {
      type: 'slurm_sudo',
      name: 'Lab cluster',
      id: 'lab',
      jobs_local_dir: shared.join('jobs'),
      tasks_local_dir: shared.join('tasks'),
      jobs_poll_interval: 0.3,
      tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
      tasks_pixi_config: {},
      slurm_client_env: slurm.env,
      jobs_runner_config: {
        default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '50M' },
        batching_config: {
          target_cpus_per_job: 1,
          max_cpus_per_job: 1,
          target_mem_per_job: 100,
          max_mem_per_job: 100,
          target_num_jobs: 2,
          max_num_jobs: 2,
        },
      },
    };
    const files: Record<string, object> = { 'lab.json': resource };
    for (const [k, user] of Object.entries(USERS))
      files[`${k}.json`] = {
        name: `Lab as ${user}`,
        id: `lab-${k}`,
        resource: 'lab',
        resource_type: 'slurm_sudo',
        username: user,
      };
    for (const [name, body] of Object.entries(files)) {
      writeFileSync(stack.dir.join(name), JSON.stringify(body));
      const kind = name === 'lab.json' ? 'resource' : 'profile';
      const res = await stack.cpctrl(['-o', 'json', kind, 'create', '-f', stack.dir.join(name)]);
      expect(res.code, res.stdout + res.stderr).toBe(0);
    }
    for (const k of Object.keys(USERS)) {
      const res = await stack.cpctrl([
        '-o',
        'json',
        'queue',
        'create',
        `q-${k}`,
        '--resource',
        'lab',
        '--profile',
        `lab-${k}`,
      ]);
      expect(res.code, res.stdout + res.stderr).toBe(0);
    }
    const chefFile = stack.dir.join('chef.yaml');
    writeFileSync(
      chefFile,
      [
        'rules:',
        ...Object.keys(USERS).flatMap((k) => [
          `  - id: who-${k}`,
          `    inputs: ['${k}/{stem}.txt']`,
          `    outputs: ['${k}-out/{stem}.who']`,
          '    resource: lab',
          `    profile: lab-${k}`,
          '    command: id -un > {out0}',
        ]),
        '',
      ].join('\n'),
    );
    await Promise.all([
      stack.start('majordomo'),
      stack.start('chef', { CP_CHEF: 'lab', CP_CHEF_DEFINITION: chefFile }),
      stack.start('runner', { CP_QUEUE: 'q-one', CP_RESOURCE: 'lab' }, 'runner-one'),
      stack.start('runner', { CP_QUEUE: 'q-two', CP_RESOURCE: 'lab' }, 'runner-two'),
      stack.start('fswatcher'),
    ]);
  }, 240_000);

  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
    await slurm?.[Symbol.asyncDispose]();
    shared[Symbol.dispose]();
  });

  it("runs each rule's task as its own profile's user", async () => {
    stack.write('one/a.txt', 'a\n');
    stack.write('two/a.txt', 'a\n');
    await stack.until('one-out/a.who', undefined, 120_000);
    await stack.until('two-out/a.who', undefined, 120_000);
    const read = (p: string) => readFileSync(join(stack.workspace, p), 'utf8');
    expect(read('one-out/a.who')).toBe(`${USERS.one}\n`);
    expect(read('two-out/a.who')).toBe(`${USERS.two}\n`);
    const kv = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const byProfile = [...(await kv.entries()).values()].map((e) => [
      e.value.task.profile,
      e.value.runner,
    ]);
    expect(byProfile).toEqual(
      expect.arrayContaining([
        ['lab-one', expect.stringContaining('q-one')],
        ['lab-two', expect.stringContaining('q-two')],
      ]),
    );
  });

  it("refuses a task sent to one profile's queue that asks for the other's", async () => {
    const out = stack.dir.join('never-run');
    await stack.bus.publish('task.submitted', subjects.tasks(stack.project, 'q-one'), {
      taskId: 'forged-profile',
      resource: 'lab',
      profile: 'lab-two',
      command: `touch ${out}`,
      cwd: stack.workspace,
    });
    const kv = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    let rec: TaskRecord | undefined;
    await until(
      async () => {
        rec = (await kv.get('forged-profile'))?.value;
        return rec?.state === 'failed';
      },
      'the forged task recorded failed',
      60_000,
      () => stack.logs(),
    );
    if (!rec) throw new Error('unreachable');
    expect(rec.reason).toMatch(/lab-two/);
    expect(rec.reason).toMatch(/lab-one/);
    expect(rec.runner).toContain('q-one');
    expect(existsSync(out)).toBe(false);
  });
});
