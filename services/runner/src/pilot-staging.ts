import { posix } from 'node:path';
import { type Bus, errorReply, type Logger, listenJson, type TypedKv } from '@computepods/bus';
import {
  fetchAuxiliaries,
  fetchOutputs,
  type SlurmHost,
  type TaskStaging,
  taskTree,
  workDirOf,
} from '@computepods/executors';
import { CpError, subjects, type TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { z } from 'zod';
import { pilotRunnerId } from './pilot-takeover.js';
import { checkCwd } from './workspace-roots.js';

/**
 * Staging for pilots (no shared filesystem needed): a pilot worker, which runs as the job user
 * on the cluster and may not read the pods' workspace, asks the runner that started it (over
 * NATS, request/reply on cp.<project>.pilot.<queue>.stage) to copy a task's declared inputs
 * into `<pilot folder>/stage/<task id>/0.work` before it runs there, and to bring the declared
 * outputs back after it exited 0, as per-job SLURM mode does: the runner copies as the job user
 * (sudo, or SFTP over SSH), each file SHA-256 checked. The request names only the task and the
 * folder: what is copied comes from the task's record, and the folder must be a pilot folder
 * of this queue below the resource's jobs folder.
 */

/** A staging request of a worker. */
export const StageRequest = z.object({
  /** in: inputs there; out: outputs back (exit 0); aux: auxiliaries back (a failure). */
  op: z.enum(['in', 'out', 'aux']),
  taskId: TaskSubmitted.shape.taskId,
  /** `<pilot folder>/stage/<task id>` as the cluster sees it. */
  stageDir: z.string().min(1).max(4096),
});
export type StageRequest = z.infer<typeof StageRequest>;

const StageReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), cwd: z.string().optional(), missing: z.string().optional() }),
  z.object({
    ok: z.literal(false),
    // field: the request's field an invalid request fails on (CP_MESSAGE_INVALID).
    error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
  }),
]);
type StageReply = z.infer<typeof StageReply>;

/** How long a worker waits for its inputs or outputs to be copied (large files take a while). */
const STAGE_TIMEOUT_MS = 30 * 60_000;

/**
 * A stage request refused, or a staging the runner could not carry out (the worker's side
 * throws it with the runner's reason, which becomes the task's). Not retryable.
 */
class StageRefusedError extends CpError {
  constructor(message: string) {
    super('CP_STAGE_REFUSED', message);
  }
}

export interface PilotStagingServer {
  close(): void;
}

/**
 * Answers the stage requests of this queue's pilot workers (one runner of the queue answers
 * each: a queue group). Never throws on a request: a bad one is answered with its reason (an
 * invalid one, as CP_MESSAGE_INVALID naming the field, is also dead-lettered).
 */
export function servePilotStaging(options: {
  readonly bus: Bus;
  readonly kv: TypedKv<typeof TaskRecord>;
  readonly queue: string;
  readonly resource: string;
  readonly host: SlurmHost;
  /** The pilots' parent folder on the cluster (each pilot's is pilot-<queue>-<8 hex> in it). */
  readonly jobsDir: string;
  readonly workspaceRoots: readonly string[];
  readonly log: Logger;
}): PilotStagingServer {
  const { bus, kv, queue, host, log } = options;
  // An invalid request is dead-lettered and answered as a validation error naming the field.
  const sub = listenJson(bus, subjects.pilotStage(bus.project, queue), {
    schema: StageRequest,
    queue: 'pilot-stage',
    answerInvalid: true,
    invalidMsg: 'invalid pilot staging request dead-lettered',
    handler: async (req, m) => {
      let reply: StageReply;
      try {
        reply = { ok: true, ...(await handle(req)) };
      } catch (err) {
        const e = errorReply(err);
        log.warn({ err: e.message }, 'pilot staging request refused or failed');
        reply = { ok: false, error: { code: e.code, message: e.message } };
      }
      if (m.reply) m.respond(JSON.stringify(reply));
    },
  });

  async function handle(req: StageRequest): Promise<{ cwd?: string; missing?: string }> {
    const refuse = (why: string) => {
      throw new StageRefusedError(`task ${req.taskId}: ${why}`);
    };
    const pilotDir = posix.dirname(posix.dirname(req.stageDir));
    if (
      posix.normalize(req.stageDir) !== req.stageDir ||
      posix.basename(req.stageDir) !== req.taskId ||
      posix.basename(posix.dirname(req.stageDir)) !== 'stage' ||
      posix.dirname(pilotDir) !== posix.normalize(options.jobsDir) ||
      !new RegExp(`^pilot-${queue}-[0-9a-f]{8}$`).test(posix.basename(pilotDir))
    )
      refuse(
        `stageDir ${JSON.stringify(req.stageDir)} is not a stage folder of this queue's pilots`,
      );
    const rec = (await kv.get(req.taskId))?.value;
    if (
      rec?.state !== 'running' ||
      rec.task.resource !== options.resource ||
      !rec.runner?.startsWith(pilotRunnerId(queue, ''))
    )
      return refuse(`not running in a pilot of queue ${queue}`);
    const task = rec.task;
    if (!task.files) return refuse('declares no files to stage');
    const work = workDirOf(req.stageDir, 0);
    if (req.op === 'in') {
      // Checked here, where the workspace is: the worker could only read the cwd as text.
      const refusal = await checkCwd(task.cwd, options.workspaceRoots);
      if (refusal) throw refusal;
      await host.stageJob(req.stageDir, {}, await taskTree(0, task));
      log.info(
        { taskId: task.taskId, to: work, inputs: task.files.inputs.length },
        'pilot task staged',
      );
      return { cwd: work };
    }
    const warn = (msg: string, data: Record<string, unknown>) => log.warn(data, msg);
    // A failed run's .log and .blg; its folder stays on the cluster, as a failed job's does.
    if (req.op === 'aux') {
      await fetchAuxiliaries(host, task, work, warn);
      return {};
    }
    const missing = await fetchOutputs(host, task, work, warn);
    if (missing) return { missing };
    // Brought back: the copies on the cluster are of no more use.
    await host.run(['rm', '-rf', '--', req.stageDir]);
    log.info(
      { taskId: task.taskId, outputs: task.files.outputs.length },
      'pilot task outputs collected',
    );
    return {};
  }

  return { close: () => sub.unsubscribe() };
}

/**
 * The worker's side: its local executor runs a task that declares files in the folder the
 * runner staged, and records it finished only once the runner has its outputs.
 */
export function pilotStagingClient(bus: Bus, queue: string, stageRoot: string): TaskStaging {
  const ask = async (op: StageRequest['op'], rec: TaskRecord) => {
    const req: StageRequest = {
      op,
      taskId: rec.task.taskId,
      stageDir: posix.join(stageRoot, rec.task.taskId),
    };
    const m = await bus.nc.request(subjects.pilotStage(bus.project, queue), JSON.stringify(req), {
      timeout: STAGE_TIMEOUT_MS,
    });
    const reply = StageReply.parse(m.json());
    if (!reply.ok) throw new StageRefusedError(reply.error.message);
    return reply;
  };
  return {
    async stageIn(rec) {
      const { cwd } = await ask('in', rec);
      if (!cwd)
        throw new StageRefusedError('the runner staged the task but named no folder to run it in');
      return cwd;
    },
    async stageOut(rec) {
      return (await ask('out', rec)).missing;
    },
    async stageFailed(rec) {
      await ask('aux', rec);
    },
  };
}
