import { Bus, createLogger, thenClose } from '@computepods/bus';
import { isTerminal } from '@computepods/executors';
import { pilotWorkerConfig } from './config.js';
import { pilotStagingClient } from './pilot-staging.js';
import { startRunner } from './runner.js';

/**
 * A runner worker inside a pilot job (see pilot-manager.ts): the runner service with a
 * `local` executor (CP_RESOURCE_FILE) on the pilot queue's resource, pulling from the same
 * work queue until no task has been in its hands for CP_PILOT_IDLE_TIMEOUT_S seconds; then it
 * stops and exits, which ends the SLURM allocation. SIGTERM (scancel) stops it as well.
 * It takes a task only when one of its CP_RUNNER_INTAKE lanes is free (the message is
 * acknowledged when the task ends), so tasks spread over the pilots instead of queueing in
 * the first one; CP_PILOT_MAX_ACK_PENDING is the bound over all pilots (the manager's).
 */
const logger = createLogger('runner-pilot');
const CLOSE_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const { runner: cfg, idleS, maxAckPending, stageDir: stageRoot } = pilotWorkerConfig();
  const bus = await Bus.connect({
    service: 'runner',
    project: cfg.project,
    logger: logger.child({ project: cfg.project, resource: cfg.resource, runner: cfg.runnerId }),
    description: `ComputePods pilot worker ${cfg.runnerId} for resource ${cfg.resource}`,
    asyncTraces: false,
  });
  const runner = await startRunner(bus, cfg, {
    holdUntilEnd: true,
    // The SLURM backend never runs a GPU task without one (gpu_slurm_config); a pilot's job is
    // submitted with default_slurm_config for whatever comes, so it refuses them instead.
    noGpu:
      `the task asks for a GPU, but resource "${cfg.resource}" runs its tasks in pilot jobs, ` +
      'which are not given jobs_runner_config.gpu_slurm_config; send the rule to a SLURM ' +
      'resource without pilot_config (its GPU tasks get jobs of their own)',
    // Declared files come and go through the runner that started this pilot (pilot-staging.ts).
    ...(stageRoot ? { staging: pilotStagingClient(bus, cfg.queue, stageRoot) } : {}),
    ...(maxAckPending > 0 ? { maxAckPending } : {}),
  });
  let lastBusy = Date.now();
  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    stopping ??= (async () => {
      logger.info({ runner: cfg.runnerId, why }, 'pilot worker stopping');
      clearInterval(timer);
      // Tasks accepted while deciding go on to their end before the worker leaves. Taking no
      // more waits for the message in hand to be recorded or handed back: with NATS out of
      // reach for good that never happens, and the worker would hold its allocation (and the
      // message) for ever; after the grace it goes on (the runner releases what it held).
      const stopped = await Promise.race([
        runner.stopIntake().then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), CLOSE_GRACE_MS).unref()),
      ]);
      if (!stopped)
        logger.warn(
          { runner: cfg.runnerId },
          'the task queue did not let go in time (NATS unreachable?); leaving anyway',
        );
      while (runner.executor.list().some((r) => !isTerminal(r.state)))
        await new Promise((r) => setTimeout(r, 200));
      // With NATS gone for good, closing would wait for it forever and keep the allocation:
      // every task has ended and been recorded as far as it could be, so leave regardless.
      const closing = thenClose(runner, bus).stop();
      const closed = await Promise.race([
        closing.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), CLOSE_GRACE_MS).unref()),
      ]);
      if (!closed) logger.warn({ runner: cfg.runnerId }, 'NATS did not answer; leaving anyway');
      logger.info({ runner: cfg.runnerId }, 'pilot worker stopped');
    })();
    return stopping;
  };
  const timer = setInterval(() => {
    const busy = runner.executor.list().some((r) => !isTerminal(r.state));
    if (busy) lastBusy = Date.now();
    else if (Date.now() - lastBusy >= idleS * 1000)
      void stop('idle timeout').then(
        () => process.exit(0),
        (err) => {
          logger.error({ err: String(err) }, 'pilot worker stop failed');
          process.exit(1);
        },
      );
  }, 200);
  for (const sig of ['SIGTERM', 'SIGINT'] as const)
    process.once(sig, () => {
      void stop(sig).finally(() => process.exit(0));
    });
}

main().catch((err: Error) => {
  logger.fatal({ err: err.message }, `pilot worker cannot start: ${err.message}`);
  process.exit(1);
});
