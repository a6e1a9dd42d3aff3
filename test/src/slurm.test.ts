import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buckets, type TaskRecord, TaskRecord as TaskRecordSchema } from '@computepods/protocol';
import {
  ensureSystemUser,
  runCommand,
  Slurm,
  Sshd,
  sha256,
  shareDirs,
  TempDir,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const USER = 'cpuser';

/**
 * Chef builds on SLURM over real processes: a saved file reaches MajorDomo, the chef sends the
 * task to the runner of the resource its rule names, the job runs on a real single-node SLURM
 * as another user (through sudo, or over a real sshd with the job folder staged by SFTP), and
 * the outputs come back into the pod's workspace, which that user cannot even enter.
 */
describe('chef builds on slurm_sudo and slurm_ssh, end to end', { timeout: 300_000 }, () => {
  let stack: Stack;
  let slurm: Slurm;
  let sshd: Sshd;
  // Where the job user may write: job folders, counters, gates. The pod's own dirs stay root's.
  const shared = new TempDir('cp-e2e-slurm-');
  const dirs = {
    sudoJobs: shared.join('sudo-jobs'),
    sshRemoteJobs: shared.join('ssh-remote-jobs'),
    sshRemoteTasks: shared.join('ssh-remote-tasks'),
    counts: shared.join('counts'),
    gates: shared.join('gates'),
  };
  const count = (name: string) => {
    const f = join(dirs.counts, name);
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0;
  };
  const read = (path: string) => readFileSync(join(stack.workspace, path), 'utf8');

  const runnerEnv = (kind: 'sudo' | 'ssh') => ({
    CP_RESOURCE: `hpc-${kind}`,
    CP_PROFILE: `hpc-${kind}-profile`,
  });

  beforeAll(async () => {
    await ensureSystemUser(USER);
    shareDirs(shared, Object.values(dirs));
    [stack, slurm, sshd] = await Promise.all([
      Stack.start('slurm-e2e'),
      Slurm.start(),
      Sshd.start({ users: [USER] }),
    ]);
    const t = sshd.target(USER);
    const slurmConfig = {
      default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '50M' },
      // No GRES on the test node: a GPU task's job carries this comment instead, read back.
      gpu_slurm_config: { extra_lines: ['#SBATCH --comment=cp-gpu-job'] },
      batching_config: {
        target_cpus_per_job: 2,
        max_cpus_per_job: 2,
        target_mem_per_job: 200,
        max_mem_per_job: 200,
        target_num_jobs: 4,
        max_num_jobs: 4,
      },
    };
    const common = {
      jobs_runner_config: slurmConfig,
      jobs_poll_interval: 0.3,
      tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
      tasks_pixi_config: {},
      slurm_client_env: slurm.env,
    };
    const files: Record<string, object> = {
      'sudo-resource.json': {
        type: 'slurm_sudo',
        name: 'HPC via sudo',
        id: 'hpc-sudo',
        jobs_local_dir: dirs.sudoJobs,
        tasks_local_dir: shared.join('sudo-tasks'),
        ...common,
      },
      'ssh-resource.json': {
        type: 'slurm_ssh',
        name: 'HPC via SSH',
        id: 'hpc-ssh',
        host: t.host,
        port: t.port,
        jobs_local_dir: stack.dir.join('ssh-local-jobs'),
        tasks_local_dir: stack.dir.join('ssh-local-tasks'),
        ...common,
      },
      'sudo-profile.json': {
        name: 'HPC sudo profile',
        id: 'hpc-sudo-profile',
        resource: 'hpc-sudo',
        resource_type: 'slurm_sudo',
        username: USER,
      },
      'ssh-profile.json': {
        name: 'HPC SSH profile',
        id: 'hpc-ssh-profile',
        resource: 'hpc-ssh',
        resource_type: 'slurm_ssh',
        username: USER,
        ssh_key_path: t.privateKeyPath,
        known_hosts_path: t.knownHostsPath,
        jobs_remote_dir: dirs.sshRemoteJobs,
        tasks_remote_dir: dirs.sshRemoteTasks,
      },
    };
    for (const [name, body] of Object.entries(files)) {
      writeFileSync(stack.dir.join(name), JSON.stringify(body));
      const kind = name.includes('profile') ? 'profile' : 'resource';
      const res = await stack.cpctrl(['-o', 'json', kind, 'create', '-f', stack.dir.join(name)]);
      expect(res.code, res.stdout + res.stderr).toBe(0);
    }
    // The project's queues: a rule's resource + profile lead its tasks to one, and the runner
    // serving it takes the resource and the one profile it grants from there.
    for (const kind of ['sudo', 'ssh'] as const) {
      const { CP_RESOURCE: queue, CP_PROFILE: profile } = runnerEnv(kind);
      const res = await stack.cpctrl([
        '-o',
        'json',
        'queue',
        'create',
        queue,
        '--resource',
        queue,
        '--profile',
        profile,
      ]);
      expect(res.code, res.stdout + res.stderr).toBe(0);
    }
    // One generic rule per resource, and gated ones whose command waits for a file we create.
    const rule = (id: string, kind: 'sudo' | 'ssh', dir: string, gated: boolean) => [
      `  - id: ${id}`,
      `    inputs: ['${dir}/{stem}.txt']`,
      `    outputs: ['${dir}-out/{stem}.upper']`,
      `    auxiliaries: ['${dir}-out/{stem}.log']`,
      `    resource: hpc-${kind}`,
      `    profile: hpc-${kind}-profile`,
      `    command: >-`,
      `      ${gated ? `while [ ! -e ${dirs.gates}/${id}-{stem} ]; do sleep 0.2; done; ` : ''}tr a-z A-Z < {in0} > {out0} && echo run >> ${dirs.counts}/${id}-{stem} && echo logged > ${dir}-out/{stem}.log`,
    ];
    const chefFile = stack.dir.join('chef.yaml');
    writeFileSync(
      chefFile,
      [
        'rules:',
        ...rule('up-sudo', 'sudo', 'sudo', false),
        ...rule('up-ssh', 'ssh', 'ssh', false),
        ...rule('gate-sudo', 'sudo', 'gated-sudo', true),
        ...rule('gate-ssh', 'ssh', 'gated-ssh', true),
        // asks for a GPU: its job reads back the comment only gpu_slurm_config adds
        ...['sudo', 'ssh'].flatMap((kind) => [
          `  - id: gpu-${kind}`,
          `    inputs: ['gpu-${kind}/{stem}.txt']`,
          `    outputs: ['gpu-${kind}-out/{stem}.job']`,
          `    resource: hpc-${kind}`,
          `    profile: hpc-${kind}-profile`,
          '    gpu: true',
          `    command: >-`,
          `      scontrol show job "$SLURM_JOB_ID" | grep -o 'Comment=[^ ]*' > {out0}`,
        ]),
        // declares an output its command never writes
        ...['sudo', 'ssh'].flatMap((kind) => [
          `  - id: none-${kind}`,
          `    inputs: ['none-${kind}/{stem}.txt']`,
          `    outputs: ['none-${kind}-out/{stem}.upper']`,
          `    resource: hpc-${kind}`,
          `    command: cat {in0} > /dev/null`,
        ]),
        '',
      ].join('\n'),
    );
    await Promise.all([
      stack.start('majordomo'),
      stack.start('chef', { CP_CHEF: 'hpc', CP_CHEF_DEFINITION: chefFile }),
      stack.start('runner', runnerEnv('sudo'), 'runner-sudo'),
      stack.start('runner', runnerEnv('ssh'), 'runner-ssh'),
      stack.start('fswatcher'),
    ]);
  }, 240_000);

  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
    await Promise.allSettled([sshd?.[Symbol.asyncDispose](), slurm?.[Symbol.asyncDispose]()]);
    shared[Symbol.dispose]();
  });

  async function tasks(): Promise<TaskRecord[]> {
    const kv = await stack.bus.kv(buckets.tasks(stack.project), TaskRecordSchema);
    return [...(await kv.entries()).values()].map((e) => e.value);
  }

  async function taskFor(output: string, ok: (r: TaskRecord) => boolean): Promise<TaskRecord> {
    const end = performance.now() + 120_000;
    for (;;) {
      const found = (await tasks()).find((r) => r.task.files?.outputs.includes(output) && ok(r));
      if (found) return found;
      if (performance.now() > end)
        throw new Error(`no task for ${output} as expected\n${stack.logs()}\n${slurm.output}`);
      await sleep(100);
    }
  }

  async function showsUpToDate(path: string, content: string): Promise<void> {
    const shown = await stack.cpctrl(['-o', 'json', 'artefact', 'show', path]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).artefact).toMatchObject({
      path,
      status: 'up_to_date',
      sha256: sha256(content),
    });
  }

  /** Every file named `name` under these folders (an injected command would have made one). */
  const findNamed = (name: string, roots: string[]): string[] =>
    roots.flatMap((root) =>
      existsSync(root)
        ? (readdirSync(root, { recursive: true }) as string[])
            .filter((p) => p.split('/').pop() === name)
            .map((p) => join(root, p))
        : [],
    );

  for (const kind of ['sudo', 'ssh'] as const) {
    it(`builds on slurm_${kind}: a saved source becomes an up-to-date artefact with the right bytes`, async () => {
      stack.write(`${kind}/a.txt`, `hello ${kind}\n`);
      // The premise: the job user cannot even read the pod's workspace, so the job only sees
      // what was staged for it.
      const peek = await runCommand('sudo', [
        '-n',
        '-u',
        USER,
        'cat',
        join(stack.workspace, `${kind}/a.txt`),
      ]);
      expect(peek.code).not.toBe(0);
      const rec = await stack.until(`${kind}-out/a.upper`, undefined, 120_000);
      const want = `HELLO ${kind.toUpperCase()}\n`;
      expect(read(`${kind}-out/a.upper`)).toBe(want);
      // the auxiliary the job wrote came back with the output
      expect(read(`${kind}-out/a.log`)).toBe('logged\n');
      expect(rec.sha256).toBe(sha256(want));
      expect(rec.producer).toBe(`up-${kind}:a`);
      await showsUpToDate(`${kind}-out/a.upper`, want);
      // it ran as the profile's user on SLURM, in its own folder, from staged inputs
      const task = await taskFor(`${kind}-out/a.upper`, (r) => r.state === 'finished');
      expect(task).toMatchObject({
        state: 'finished',
        exitCode: 0,
        task: { resource: `hpc-${kind}` },
      });
      expect(task.jobId).toMatch(/^\d+$/);
      const job = await slurm.showJob(task.jobId!);
      expect(job.UserId).toMatch(new RegExp(`^${USER}\\(`));
      expect(count(`up-${kind}-a`)).toBe(1);

      // an edit is rebuilt the same way
      stack.write(`${kind}/a.txt`, `again ${kind}\n`);
      const again = `AGAIN ${kind.toUpperCase()}\n`;
      await stack.until(
        `${kind}-out/a.upper`,
        (a) => a.status === 'up_to_date' && a.sha256 === sha256(again),
        120_000,
      );
      expect(read(`${kind}-out/a.upper`)).toBe(again);
      expect(count(`up-${kind}-a`)).toBe(2);
    });

    it(`runs a rule that asks for a GPU with the resource's gpu_slurm_config on slurm_${kind}`, async () => {
      stack.write(`gpu-${kind}/g.txt`, 'g\n');
      await stack.until(`gpu-${kind}-out/g.job`, undefined, 120_000);
      expect(read(`gpu-${kind}-out/g.job`)).toBe('Comment=cp-gpu-job\n');
      const task = await taskFor(`gpu-${kind}-out/g.job`, (r) => r.state === 'finished');
      expect(task.task.gpu).toBe(true);
    });

    it(`keeps a hostile target name quoted all the way to sbatch on slurm_${kind}`, async () => {
      const stem = `x $(touch PWN);\`touch PWN\`'"; touch PWN`;
      stack.write(`${kind}/${stem}.txt`, 'odd name\n');
      await stack.until(`${kind}-out/${stem}.upper`, undefined, 120_000);
      expect(read(`${kind}-out/${stem}.upper`)).toBe('ODD NAME\n');
      await showsUpToDate(`${kind}-out/${stem}.upper`, 'ODD NAME\n');
      expect(count(`up-${kind}-${stem}`)).toBe(1);
      const roots = [stack.workspace, dirs.sudoJobs, dirs.sshRemoteJobs, dirs.counts];
      expect(findNamed('PWN', roots)).toEqual([]);
    });

    it(`fails a build on slurm_${kind} whose command does not write its declared output, saying so`, async () => {
      stack.write(`none-${kind}/n.txt`, 'n\n');
      const rec = await stack.until(
        `none-${kind}-out/n.upper`,
        (a) => a.status === 'failed',
        120_000,
      );
      expect(rec.error).toMatch(
        new RegExp(`declared output none-${kind}-out/n\\.upper was not written by the command`),
      );
      const shown = await stack.cpctrl([
        '-o',
        'json',
        'artefact',
        'show',
        `none-${kind}-out/n.upper`,
      ]);
      expect(JSON.parse(shown.stdout).artefact).toMatchObject({ status: 'failed' });
      expect(existsSync(join(stack.workspace, `none-${kind}-out/n.upper`))).toBe(false);
    });

    it(`completes a build exactly once on slurm_${kind} when its runner is SIGKILLed while the job runs`, async () => {
      const source = `gated-${kind}/k.txt`;
      const output = `gated-${kind}-out/k.upper`;
      stack.write(source, `gated ${kind}\n`);
      const running = await taskFor(output, (r) => r.state === 'running');
      expect(running.jobId).toMatch(/^\d+$/);
      await stack.kill9(`runner-${kind}`);
      await stack.start('runner', runnerEnv(kind), `runner-${kind}`);
      writeFileSync(join(dirs.gates, `gate-${kind}-k`), '');
      const want = `GATED ${kind.toUpperCase()}\n`;
      await stack.until(
        output,
        (a) => a.status === 'up_to_date' && a.sha256 === sha256(want),
        120_000,
      );
      expect(read(output)).toBe(want);
      await showsUpToDate(output, want);
      expect(count(`gate-${kind}-k`)).toBe(1);
      // the same job was adopted, not submitted again
      const done = await taskFor(output, (r) => r.state === 'finished');
      expect(done.task.taskId).toBe(running.task.taskId);
      expect(done.jobId).toBe(running.jobId);
      expect(done.history.filter((h) => h.state === 'submitted')).toHaveLength(1);
      const jobsDir = kind === 'sudo' ? dirs.sudoJobs : dirs.sshRemoteJobs;
      const staged = readdirSync(jobsDir).filter((job) =>
        readdirSync(join(jobsDir, job)).some((f) =>
          existsSync(join(jobsDir, job, f, `gated-${kind}`, 'k.txt')),
        ),
      );
      expect(staged).toHaveLength(1);
      const others = (await tasks()).filter((r) => r.task.files?.outputs.includes(output));
      expect(others).toHaveLength(1);
    });
  }
});
