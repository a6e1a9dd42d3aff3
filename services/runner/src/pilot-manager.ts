import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bus } from '@computepods/bus';
import { type SlurmHost, SudoHost, sbatchArgs, shq } from '@computepods/executors';
import {
  type LocalResource,
  type Profile,
  type SlurmSudoResource,
  streams,
  subjects,
} from '@computepods/protocol';
import type { RunnerConfig } from './config.js';

const WORKER = fileURLToPath(new URL('./pilot-worker.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

// scontrol states of a job that still holds (or waits for) an allocation.
const ALIVE = new Set([
  'PENDING',
  'CONFIGURING',
  'RUNNING',
  'COMPLETING',
  'SUSPENDED',
  'REQUEUED',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
  'RESIZING',
  'SIGNALING',
  'STAGE_OUT',
  'STOPPED',
]);

interface Pilot {
  readonly jobId: string;
  readonly dir: string;
  /** Last state squeue or scontrol gave (PENDING until seen). */
  state: string;
}

export interface PilotManager {
  /** SLURM job ids of the pilots queued or running, with their last known state. */
  pilots(): ReadonlyMap<string, string>;
  stop(): Promise<void>;
}

export interface PilotManagerOptions {
  readonly bus: Bus;
  readonly cfg: RunnerConfig;
  readonly resource: SlurmSudoResource;
  readonly profile: Profile | undefined;
  /** The durable consumer the workers share (the runner's own). */
  readonly durable: string;
  /** Consumer settings, the same as the runner's, so workers and manager never disagree. */
  readonly consumer: { maxDeliver: number; ackWaitMs: number; maxAckPending: number };
  /** The SLURM host (default: sudo as the profile's user with the resource's client env). */
  readonly host?: SlurmHost;
  /** NATS URL the workers connect to (default NATS_URL). */
  readonly natsUrl?: string;
}

/**
 * HyperQueue-like pilot jobs for a slurm_sudo resource with `pilot_config`: while the task
 * queue has work (consumer num_pending + num_ack_pending) and fewer than max_workers pilots
 * are queued or running, one more pilot job is submitted. Each pilot runs a runner worker
 * (pilot-worker.ts, a `local` executor with the allocation's CPUs) on the same work queue,
 * which exits after idle_timeout_s without tasks, ending its allocation. Pilots are tracked
 * by SLURM job id with squeue; a job missing from squeue is only dropped once
 * `scontrol show job` says it ended (or no longer knows it).
 */
export async function startPilotManager(options: PilotManagerOptions): Promise<PilotManager> {
  const { bus, cfg, resource } = options;
  const pc = resource.pilot_config;
  if (!pc) throw new Error(`resource ${cfg.resource} has no pilot_config`);
  const profile = options.profile;
  if (!options.host && profile?.resource_type !== 'slurm_sudo')
    throw new Error(`pilot mode needs a slurm_sudo profile for resource ${cfg.resource}`);
  const host =
    options.host ??
    new SudoHost({
      username: (profile as { username: string }).username,
      clientEnv: resource.slurm_client_env ?? {},
    });
  const natsUrl = options.natsUrl ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  const cpus = pc.cpus_per_worker ?? 1;
  const jobName = `cp-pilot-${cfg.project}-${cfg.resource}`;
  const stream = streams.tasks(cfg.project);
  const log = bus.logger.child({ pilots: cfg.resource });
  const pilots = new Map<string, Pilot>();
  const pollMs = Math.max(200, Math.min(5_000, resource.jobs_poll_interval * 1000));

  await bus.ensureConsumer({
    stream,
    durable: options.durable,
    filterSubject: subjects.tasks(cfg.project, cfg.resource),
    ...options.consumer,
  });

  // Pilots submitted before a restart of the runner: found by their job name.
  const before = await host.slurm(['squeue', '--noheader', `--name=${jobName}`, '--format=%i|%T']);
  if (before.code === 0)
    for (const [id, state] of parseSqueue(before.stdout))
      pilots.set(id, { jobId: id, dir: '', state });

  async function pending(): Promise<number> {
    const info = await bus.jsm.consumers.info(stream, options.durable);
    return info.num_pending + info.num_ack_pending;
  }

  async function refresh(): Promise<void> {
    if (!pilots.size) return;
    const ids = [...pilots.keys()];
    const res = await host.slurm([
      'squeue',
      '--noheader',
      `--jobs=${ids.join(',')}`,
      '--format=%i|%T',
    ]);
    // squeue fails this way when none of the ids is known any more: an answer, not an error.
    if (res.code !== 0 && !/Invalid job id/i.test(res.stderr))
      throw new Error(`squeue failed: ${res.stderr.trim()}`);
    const seen = res.code === 0 ? parseSqueue(res.stdout) : new Map<string, string>();
    for (const id of ids) {
      const pilot = pilots.get(id)!;
      const state = seen.get(id);
      if (state) {
        pilot.state = state;
        continue;
      }
      const sc = await host.slurm(['scontrol', 'show', 'job', id]);
      const m = /JobState=(\S+)/.exec(sc.stdout);
      if (m) {
        pilot.state = m[1]!;
        if (ALIVE.has(pilot.state)) continue;
      } else if (!/Invalid job id/i.test(`${sc.stderr}${sc.stdout}`)) {
        continue; // no answer: ask again next time, never assume it ended
      }
      pilots.delete(id);
      log.info({ jobId: id, state: m?.[1] ?? 'purged' }, 'pilot job ended');
    }
  }

  async function submit(): Promise<void> {
    const key = randomUUID().slice(0, 8);
    const dir = posix.join(resource.jobs_local_dir, `pilot-${cfg.resource}-${key}`);
    const local: LocalResource = {
      type: 'local',
      name: `${resource.name} (pilot)`,
      id: cfg.resource,
      jobs_local_dir: posix.join(dir, 'tasks'),
      jobs_runner_config: { parallel_tasks_per_job: cpus },
      jobs_poll_interval: 0,
      tasks_local_dir: resource.tasks_local_dir,
      tasks_python_config: resource.tasks_python_config,
      tasks_pixi_config: resource.tasks_pixi_config,
    };
    const env: Record<string, string> = {
      NATS_URL: natsUrl,
      CP_PROJECT: cfg.project,
      CP_RESOURCE: cfg.resource,
      CP_RESOURCE_FILE: posix.join(dir, 'resource.json'),
      CP_STATE_DIR: posix.join(dir, 'state'),
      CP_PARALLEL: String(cpus),
      CP_RUNNER_INTAKE: String(cpus),
      CP_PILOT_IDLE_TIMEOUT_S: String(pc!.idle_timeout_s),
      CP_LOG_FORMAT: 'json',
    };
    const exports = Object.entries(env).map(([k, v]) => `${k}=${shq(v, k)}`);
    const script = [
      '#!/bin/sh',
      `# ComputePods pilot for resource ${cfg.resource}: a runner worker, ${cpus} CPU(s)`,
      `cd ${shq(REPO_ROOT, 'repository')} || exit 1`,
      `exec env ${exports.join(' ')} CP_RUNNER_ID=${shq(`pilot-${cfg.resource}-`, 'runner id')}"$SLURM_JOB_ID" ${shq(process.execPath, 'node')} --import tsx ${shq(WORKER, 'worker')}`,
      '',
    ].join('\n');
    await host.stageJob(dir, {
      'job.sh': script,
      'resource.json': `${JSON.stringify(local, null, 2)}\n`,
    });
    const config = { ...resource.jobs_runner_config.default_slurm_config, cpus_per_task: 1 };
    const args = sbatchArgs(
      { dir, jobName, tasks: [], lanes: cpus, config, exports: {} },
      posix.join(dir, 'job.sh'),
    );
    const res = await host.slurm(['sbatch', ...args]);
    const jobId = res.stdout.trim().split(';')[0] ?? '';
    if (res.code !== 0 || !/^[0-9]+$/.test(jobId))
      throw new Error(`sbatch of a pilot failed: ${res.stderr.trim() || res.stdout.trim()}`);
    pilots.set(jobId, { jobId, dir, state: 'PENDING' });
    log.info({ jobId, dir, cpus }, 'pilot job submitted');
  }

  async function tick(): Promise<void> {
    await refresh();
    const waiting = await pending();
    if (waiting === 0 || pilots.size >= pc!.max_workers) return;
    // Pilots not yet started will take `cpus` tasks each: no more than the queue needs.
    const queued = [...pilots.values()].filter((p) => p.state === 'PENDING').length;
    if (queued * cpus >= waiting) return;
    await submit();
  }

  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        await tick();
      } catch (err) {
        log.warn({ err: String(err) }, 'pilot manager tick failed');
      }
      if (stopped) break;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, pollMs).unref();
      });
    }
  })();

  log.info({ max: pc.max_workers, idle: pc.idle_timeout_s, cpus }, 'pilot manager ready');
  return {
    pilots: () => new Map([...pilots].map(([id, p]) => [id, p.state])),
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      if (!options.host) await host.close();
    },
  };
}

function parseSqueue(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [id, state] = line.trim().split('|');
    if (id && state) out.set(id, state);
  }
  return out;
}
