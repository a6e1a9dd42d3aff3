import { Bus, createLogger, serviceHelp, startService, thenClose } from '@computepods/bus';
import { runnerConfig, runnerEnv } from './config.js';
import { startRunner } from './runner.js';

const logger = createLogger('runner');
startService(
  logger,
  async ({ signal, opened }) => {
    const cfg = runnerConfig();
    const bus = opened(
      await Bus.connect({
        service: 'runner',
        project: cfg.project,
        logger: logger.child({ project: cfg.project, resource: cfg.resource }),
        description: `ComputePods runner for resource ${cfg.resource}`,
        // Named from its first $SRV answer: MajorDomo's census must not hear a runner it cannot
        // name (before startRunner below has read its queue and resource).
        metadata: { runner: cfg.runnerId, queue: cfg.queue },
        // Two KV writes and the log ends' publishes a task: no Error made per request in advance.
        asyncTraces: false,
        signal,
      }),
    );
    signal.throwIfAborted();
    return thenClose(await startRunner(bus, cfg), bus);
  },
  {
    help: serviceHelp(
      'runner',
      "runs a project's tasks on one resource (this machine, SLURM, Kubernetes), as MajorDomo and the chefs ask",
      runnerEnv,
    ),
  },
);
