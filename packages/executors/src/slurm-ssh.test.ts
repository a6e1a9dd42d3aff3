import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Profile,
  parseProfile,
  parseResource,
  type Resource,
  type TaskSubmitted,
} from '@computepods/protocol';
import { freePort, Slurm, Sshd, TempDir } from '@computepods/testkit';
import { SshPool } from '@computepods/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExecutor } from './create-executor.js';
import { slurmHandle } from './handle.js';
import { RecordingHooks } from './test-hooks.js';

// A real sshd and a real single-node SLURM, once for the file. The runner (root, here) reaches
// the cluster only as cpuser over SSH; job folders go up and come back by verified SFTP.
let sshd: Sshd;
let slurm: Slurm;
let pool: SshPool;
const tmp = new TempDir('cp-slurm-ssh-');
const remoteJobs = tmp.join('remote-jobs');
const remoteTasks = tmp.join('remote-tasks');
const localJobs = tmp.join('local-jobs');

beforeAll(async () => {
  chmodSync(tmp.path, 0o755);
  for (const d of [remoteJobs, remoteTasks]) {
    mkdirSync(d);
    chmodSync(d, 0o1777);
  }
  [sshd, slurm] = await Promise.all([Sshd.start({ users: ['cpuser'] }), Slurm.start()]);
  pool = new SshPool();
});
afterAll(async () => {
  await pool?.close();
  await Promise.allSettled([sshd?.[Symbol.asyncDispose](), slurm?.[Symbol.asyncDispose]()]);
  tmp[Symbol.dispose]();
});

function config(port?: number): { resource: Resource; profile: Profile } {
  const t = sshd.target('cpuser');
  const resource = parseResource({
    type: 'slurm_ssh',
    name: 'Remote SLURM cluster',
    host: t.host,
    port: port ?? t.port,
    jobs_local_dir: localJobs,
    jobs_runner_config: {
      default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '50M' },
      batching_config: {
        target_cpus_per_job: 2,
        max_cpus_per_job: 2,
        target_mem_per_job: 200,
        max_mem_per_job: 200,
        target_num_jobs: 1,
        max_num_jobs: 2,
      },
    },
    jobs_poll_interval: 0.3,
    tasks_local_dir: tmp.join('tasks'),
    tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
    tasks_pixi_config: {},
    slurm_client_env: slurm.env,
  });
  const profile = parseProfile({
    name: 'SLURM/SSH profile',
    resource_type: 'slurm_ssh',
    username: t.username,
    ssh_key_path: t.privateKeyPath,
    known_hosts_path: t.knownHostsPath,
    jobs_remote_dir: remoteJobs,
    tasks_remote_dir: remoteTasks,
  });
  return { resource, profile };
}

const task = (
  taskId: string,
  command: string,
  extra: Partial<TaskSubmitted> = {},
): TaskSubmitted => ({
  taskId,
  resource: 'remote-slurm-cluster',
  command,
  cwd: remoteTasks,
  env: {},
  gpu: false,
  ...extra,
});

describe('slurm_ssh on a real sshd and SLURM', { timeout: 120000 }, () => {
  it('stages the job by SFTP, runs a batch as the SSH user, and fetches the outputs back', async () => {
    const hooks = new RecordingHooks();
    const ex = createExecutor({
      ...config(),
      hooks,
      sshPool: pool,
      backendOptions: { batchWindowMs: 100, retry: { attempts: 3, baseMs: 100, maxMs: 400 } },
    });
    const pwned = tmp.join('pwned');
    const hostile = `$(touch ${pwned}); \`touch ${pwned}\`\n'"`;
    const tasks = [
      task('ssh-1', 'id -un; echo e >&2'),
      task('ssh-2', 'printf %s "$H"; exit 5', { env: { H: hostile } }),
    ];
    for (const t of tasks) await ex.submit(t);
    // while the job runs or right after, logs come from the cluster
    const [a, b] = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    expect([a?.state, a?.exitCode, b?.state, b?.exitCode]).toEqual(['finished', 0, 'failed', 5]);
    expect(a?.jobId).toBe(b?.jobId);
    expect(existsSync(pwned)).toBe(false);
    // once every task of the job ended, its folder is fetched, verified, and logs are local
    const end = Date.now() + 30_000;
    while (!slurmHandle(ex.get('ssh-2')?.handle)?.localDir) {
      if (Date.now() > end) throw new Error('job folder was not fetched');
      await new Promise((r) => setTimeout(r, 50));
    }
    const h = slurmHandle(ex.get('ssh-2')!.handle)!;
    expect(h.localDir).toBe(join(localJobs, h.jobKey));
    expect(readFileSync(join(h.localDir!, `${h.index}.out`), 'utf8')).toBe(hostile);
    expect(readFileSync(join(h.localDir!, `${h.index}.exit`), 'utf8')).toBe('5\n');
    expect(await ex.logs('ssh-1')).toBe('cpuser\n');
    expect(await ex.logs('ssh-1', 'stderr')).toBe('e\n');
    expect(await ex.logs('ssh-2')).toBe(hostile);
    expect(ex.stats().sbatch).toBe(1);
    expect(hooks.recordedBeforePublished()).toBe(true);
    await ex.close();
  });

  it('pauses tasks with the reason when the cluster cannot be reached, after retries', async () => {
    const closedPort = await freePort();
    const hooks = new RecordingHooks();
    const own = new SshPool({ connectRetries: 0, connectTimeoutMs: 2_000 });
    const ex = createExecutor({
      ...config(closedPort),
      hooks,
      sshPool: own,
      backendOptions: { batchWindowMs: 50, retry: { attempts: 2, baseMs: 50, maxMs: 100 } },
    });
    await ex.submit(task('ssh-unreachable', 'true'));
    const end = Date.now() + 30_000;
    while (ex.get('ssh-unreachable')?.state !== 'paused') {
      if (Date.now() > end) throw new Error('task was not paused');
      await new Promise((r) => setTimeout(r, 50));
    }
    const rec = ex.get('ssh-unreachable')!;
    expect(rec.pausedFrom).toBe('submitted');
    expect(rec.reason).toMatch(
      /paused after retries; resume the task once the resource is reachable again/,
    );
    expect(rec.reason).toMatch(/refused|connect/i);
    expect(hooks.states('ssh-unreachable')).toEqual(['created', 'submitted', 'paused']);
    await ex.close();
    await own.close();
  });
});
