import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { Bus } from '@computepods/bus';
import {
  commandFailed,
  DEFAULT_KEEP,
  isTerminal,
  type SlurmHost,
  sbatchArgs,
  shq,
  squeueArgs,
} from '@computepods/executors';
import {
  buckets,
  InvalidConfigError,
  type LocalResource,
  type Profile,
  streams,
  subjects,
  TaskRecord,
} from '@computepods/protocol';
import type { RunnerConfig } from './config.js';
import { checkPilotSite, type PilotResource, pilotSite, WORKER_PATH } from './pilot-host.js';
import { releaseHeldByPilot } from './pilot-release.js';
import { servePilotStaging } from './pilot-staging.js';
import { type LivePilots, sweepPilotFolders } from './pilot-sweep.js';
import { failTasksOfEndedPilot, pilotRunnerId } from './pilot-takeover.js';

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

/** Between two sweeps of ended pilots' folders (one also follows each pilot's end). */
const SWEEP_EVERY_MS = 60_000;

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
  readonly resource: PilotResource;
  readonly profile: Profile | undefined;
  /** The durable consumer the workers share (the runner's own). */
  readonly durable: string;
  /**
   * Consumer settings, the same as the runner's, so workers and manager never disagree.
   * maxAckPending is the pilots' own: see pilotMaxAckPending.
   */
  readonly consumer: { maxDeliver: number; ackWaitMs: number };
  /** The SLURM host (default: sudo, or SSH, as the profile's user with the client env). */
  readonly host?: SlurmHost;
  /** The profile id the runner serves (see servedProfile); workers refuse tasks asking for another. */
  readonly servedProfile?: string | undefined;
  /** NATS URL the workers connect to (default pilot_config.nats_url, else NATS_URL). */
  readonly natsUrl?: string;
}

/**
 * Unacknowledged tasks on the shared consumer: one per lane of every pilot. A worker holds a
 * task's message until the task ends (pilot-worker.ts), so this bounds what all pilots hold
 * together, and a pilot that pulls ahead cannot hoard what an idle one could run.
 */
export function pilotMaxAckPending(resource: PilotResource): number {
  const pc = resource.pilot_config;
  return pc.max_workers * (pc.cpus_per_worker ?? 1);
}

/**
 * HyperQueue-like pilot jobs for a slurm_sudo or slurm_ssh resource with `pilot_config`: while
 * the task queue has work (consumer num_pending + num_ack_pending) and fewer than max_workers
 * pilots are queued or running, one more pilot job is submitted. Each pilot runs a runner
 * worker (pilot-worker.ts, a `local` executor with the allocation's CPUs) on the same work
 * queue, which exits after idle_timeout_s without tasks, ending its allocation. Pilots are
 * tracked by SLURM job id with squeue; a job missing from squeue is only dropped once
 * `scontrol show job` says it ended (or no longer knows it), and then the tasks it left
 * unfinished are taken over (pilot-takeover.ts). Over SSH the worker runs from the checkout at
 * pilot_config.computepods_dir, checked before the first pilot is submitted.
 */
export async function startPilotManager(options: PilotManagerOptions): Promise<PilotManager> {
  const { bus, cfg, resource } = options;
  const pc = resource.pilot_config;
  const log = bus.logger.child({ pilots: cfg.queue });
  const site = pilotSite(resource, options.profile, options.host, log);
  const host = site.host;
  const natsUrl = options.natsUrl ?? pc.nats_url ?? cfg.natsUrl ?? 'nats://127.0.0.1:4222';
  const cpus = pc.cpus_per_worker ?? 1;
  // Per queue: two queues (profiles) on one resource keep their pilots apart.
  const jobName = `cp-pilot-${cfg.project}-${cfg.queue}`;
  // Read once, at start: a credential that cannot be read stops the runner here, not a pilot.
  const secrets = {
    creds: cfg.natsCreds ? readFileSync(cfg.natsCreds, 'utf8') : undefined,
    ca: cfg.natsCa ? readFileSync(cfg.natsCa, 'utf8') : undefined,
  };
  const stream = streams.tasks(cfg.project);
  const pilots = new Map<string, Pilot>();
  const pollMs = Math.max(200, Math.min(5_000, resource.jobs_poll_interval * 1000));
  const maxAckPending = pilotMaxAckPending(resource);
  // Read from the bucket's leader: a staging request checks the record its pilot worker just
  // wrote running, which a lagging replica of a cluster may not have yet (KvSpec.leaderReads).
  const kv = await bus.kv(buckets.tasks(cfg.project), TaskRecord, {
    history: 5,
    leaderReads: true,
  });

  // A checkout or node missing on the cluster is a configuration error, said at once; a host
  // that does not answer yet is asked again before the first pilot is submitted.
  let checked = false;
  const checkSite = async () => {
    const node = await checkPilotSite(site, resource.name);
    checked = true;
    log.info({ on: host.label, checkout: site.repoDir, node }, 'pilot worker code found');
  };
  try {
    await checkSite();
  } catch (err) {
    if (err instanceof InvalidConfigError) {
      if (site.ownsHost) await host.close();
      throw err;
    }
    log.warn({ err: String(err), on: host.label }, 'cannot check the pilot site yet');
  }

  // Tasks that declare files are staged by this runner for its pilots (pilot-staging.ts).
  const staging = servePilotStaging({
    bus,
    kv,
    queue: cfg.queue,
    resource: cfg.resource,
    host,
    jobsDir: site.jobsDir,
    workspaceRoots: cfg.workspaceRoots,
    log,
  });

  await bus.ensureConsumer({
    stream,
    durable: options.durable,
    filterSubject: subjects.tasks(cfg.project, cfg.queue),
    ...options.consumer,
    maxAckPending,
  });

  // Pilots from before a restart of the runner, found once, before anything is submitted.
  let found = false;
  async function findEarlierPilots(): Promise<void> {
    // Still queued or running: found by their job name, among this user's jobs only.
    const res = await host.slurm(squeueArgs({ name: jobName }, '%i|%T'));
    if (res.code !== 0) throw commandFailed('squeue of the pilots', res);
    for (const [id, state] of parseSqueue(res.stdout))
      pilots.set(id, { jobId: id, dir: '', state });
    // Ended while the runner was down, maybe leaving tasks unfinished: refresh() asks SLURM
    // about their jobs and takes those tasks over.
    const prefix = pilotRunnerId(cfg.queue, '');
    for (const { value } of (await kv.entries()).values()) {
      const jobId = value.runner?.startsWith(prefix) ? value.runner.slice(prefix.length) : '';
      if (/^[0-9]+$/.test(jobId) && !isTerminal(value.state) && !pilots.has(jobId))
        pilots.set(jobId, { jobId, dir: '', state: 'UNKNOWN' });
    }
    found = true;
  }

  async function pending(): Promise<number> {
    const info = await bus.jsm.consumers.info(stream, options.durable);
    return info.num_pending + info.num_ack_pending;
  }

  /** Follows the pilots' jobs; resolves with how many ended (and were taken over). */
  async function refresh(): Promise<number> {
    if (!pilots.size) return 0;
    const ids = [...pilots.keys()];
    const res = await host.slurm(squeueArgs({ jobs: ids }, '%i|%T'));
    // squeue fails this way when none of the ids is known any more: an answer, not an error.
    if (res.code !== 0 && !/Invalid job id/i.test(res.stderr))
      throw commandFailed('squeue of the pilots', res);
    const seen = res.code === 0 ? parseSqueue(res.stdout) : new Map<string, string>();
    let ended = 0;
    for (const id of ids) {
      const pilot = pilots.get(id);
      if (!pilot) continue;
      const state = seen.get(id);
      if (state) {
        pilot.state = state;
        continue;
      }
      const sc = await host.slurm(['scontrol', 'show', 'job', id]);
      const [, known] = /JobState=(\S+)/.exec(sc.stdout) ?? [];
      if (known) {
        pilot.state = known;
        if (ALIVE.has(known)) continue;
      } else if (!/Invalid job id/i.test(`${sc.stderr}${sc.stdout}`)) {
        continue; // no answer: ask again next time, never assume it ended
      }
      const jobState = known ?? 'purged';
      log.info({ jobId: id, state: jobState }, 'pilot job ended');
      await failTasksOfEndedPilot({
        bus,
        kv,
        resource: cfg.resource,
        queue: cfg.queue,
        jobId: id,
        jobState,
        log,
      });
      // What it held (recorded or not) goes to another pilot now, not after the ack wait,
      // whatever way it ended: one that left by idle timeout (COMPLETED) normally holds
      // nothing (the look finds nothing of its own), but a worker whose writes never reached
      // NATS (its record, its ack) sees no task of its own, leaves idle, and still holds what
      // it pulled. One that cannot be released now is released by the ack wait: never a
      // reason to keep counting the ended pilot (no new one would be submitted in its place).
      await releaseHeldByPilot({
        bus,
        kv,
        stream,
        durable: options.durable,
        subject: subjects.tasks(cfg.project, cfg.queue),
        runner: pilotRunnerId(cfg.queue, id),
        log,
      }).catch((err: unknown) =>
        log.warn(
          { jobId: id, err: String(err) },
          "could not release the ended pilot's task messages; they come again after the ack wait",
        ),
      );
      pilots.delete(id);
      ended++;
    }
    return ended;
  }

  /** The pilots of this queue SLURM still has queued or running (any runner's), and ours. */
  async function livePilots(): Promise<LivePilots> {
    const res = await host.slurm(squeueArgs({ name: jobName }, '%i|%T|%Z'));
    if (res.code !== 0) throw commandFailed('squeue of the pilots', res);
    const jobIds = new Set(pilots.keys());
    const dirs = new Set(
      [...pilots.values()].filter((p) => p.dir).map((p) => posix.basename(p.dir)),
    );
    for (const line of res.stdout.split('\n')) {
      const [id, state, workDir] = line.trim().split('|');
      if (!id || !state || !ALIVE.has(state)) continue;
      jobIds.add(id);
      if (workDir) dirs.add(posix.basename(workDir));
    }
    return { jobIds, dirs };
  }

  let lastSweep = 0;
  /** Ended pilots' credentials and, past their keep time, folders go (pilot-sweep.ts). */
  async function sweep(): Promise<void> {
    lastSweep = Date.now();
    await sweepPilotFolders({
      host,
      jobsDir: site.jobsDir,
      queue: cfg.queue,
      keep: cfg.jobKeep ?? DEFAULT_KEEP,
      live: livePilots,
      log,
    }).catch((err: unknown) =>
      log.warn({ err: String(err) }, "could not sweep ended pilots' folders; trying again later"),
    );
  }

  async function submit(): Promise<void> {
    if (!checked) await checkSite();
    const key = randomUUID().slice(0, 8);
    const dir = posix.join(site.jobsDir, `pilot-${cfg.queue}-${key}`);
    const local: LocalResource = {
      type: 'local',
      name: `${resource.name} (pilot)`,
      id: cfg.resource,
      jobs_local_dir: posix.join(dir, 'tasks'),
      jobs_runner_config: { parallel_tasks_per_job: cpus },
      jobs_poll_interval: 0,
      tasks_local_dir: site.tasksDir,
      tasks_python_config: resource.tasks_python_config,
      tasks_pixi_config: resource.tasks_pixi_config,
    };
    const env: Record<string, string> = {
      NATS_URL: natsUrl,
      CP_PROJECT: cfg.project,
      CP_RESOURCE: cfg.resource,
      CP_QUEUE: cfg.queue,
      CP_RESOURCE_FILE: posix.join(dir, 'resource.json'),
      CP_STATE_DIR: posix.join(dir, 'state'),
      CP_PARALLEL: String(cpus),
      CP_RUNNER_INTAKE: String(cpus),
      CP_PILOT_IDLE_TIMEOUT_S: String(pc.idle_timeout_s),
      CP_PILOT_MAX_ACK_PENDING: String(maxAckPending),
      CP_PILOT_STAGE_DIR: posix.join(dir, 'stage'),
      // The workers open the consumer too: with the same ack wait, or they would change it.
      CP_RUNNER_ACK_WAIT_MS: String(options.consumer.ackWaitMs),
      CP_LOG_FORMAT: 'json',
      // The workers check every task as this runner would: the same workspace roots, and the
      // profile this runner serves (they run a profile-less local resource themselves).
      CP_WORKSPACE_ROOTS: cfg.workspaceRoots.join(':'),
      ...(options.servedProfile ? { CP_PILOT_PROFILE: options.servedProfile } : {}),
      ...(secrets.creds ? { NATS_CREDS: posix.join(dir, 'nats.creds') } : {}),
      ...(secrets.ca ? { NATS_CA: posix.join(dir, 'nats-ca.pem') } : {}),
    };
    const exports = Object.entries(env).map(([k, v]) => `${k}=${shq(v, k)}`);
    const script = [
      '#!/bin/sh',
      `# ComputePods pilot for resource ${cfg.resource}: a runner worker, ${cpus} CPU(s)`,
      // Its folder's job: how the sweep (pilot-sweep.ts) tells an ended pilot's folder.
      `printf '%s\\n' "$SLURM_JOB_ID" > job.id || exit 1`,
      `cd ${shq(site.repoDir, 'computepods_dir')} || exit 1`,
      `exec env ${exports.join(' ')} CP_RUNNER_ID=${shq(pilotRunnerId(cfg.queue, ''), 'runner id')}"$SLURM_JOB_ID" ${shq(site.node, 'node_path')} --import tsx ${shq(WORKER_PATH, 'worker')}`,
      '',
    ].join('\n');
    await host.stageJob(dir, {
      'job.sh': script,
      'resource.json': `${JSON.stringify(local, null, 2)}\n`,
      // The workers are this runner's hands: its own credentials (its queue, nothing more),
      // readable by the job user alone, and the CA that signs the server when NATS is on TLS.
      ...(secrets.creds ? { 'nats.creds': secrets.creds } : {}),
      ...(secrets.ca ? { 'nats-ca.pem': secrets.ca } : {}),
    });
    const config = { ...resource.jobs_runner_config.default_slurm_config, cpus_per_task: 1 };
    const args = sbatchArgs(
      { dir, jobName, tasks: [], lanes: cpus, config, exports: {} },
      posix.join(dir, 'job.sh'),
    );
    const res = await host.slurm(['sbatch', ...args]);
    const jobId = res.stdout.trim().split(';')[0] ?? '';
    if (res.code !== 0 || !/^[0-9]+$/.test(jobId))
      throw commandFailed('sbatch of a pilot', {
        ...res,
        stderr: res.stderr.trim() || `no job id in ${JSON.stringify(res.stdout.trim())}`,
      });
    pilots.set(jobId, { jobId, dir, state: 'PENDING' });
    log.info({ jobId, dir, cpus }, 'pilot job submitted');
  }

  async function tick(): Promise<void> {
    if (!found) await findEarlierPilots();
    const ended = await refresh();
    if (checked && (ended > 0 || Date.now() - lastSweep >= SWEEP_EVERY_MS)) await sweep();
    const waiting = await pending();
    if (waiting === 0 || pilots.size >= pc.max_workers) return;
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
      staging.close();
      if (site.ownsHost) await host.close();
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
