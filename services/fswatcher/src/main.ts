import { Bus, createLogger, serviceHelp, startService, thenClose } from '@computepods/bus';
import { fsWatcherConfig, fsWatcherEnv } from './config.js';
import { startFsWatcher } from './fswatcher.js';

const logger = createLogger('fswatcher');
startService(
  logger,
  async ({ signal, opened }) => {
    const cfg = fsWatcherConfig();
    const bus = opened(
      await Bus.connect({
        service: 'fswatcher',
        project: cfg.project,
        logger: logger.child({ project: cfg.project, pod: cfg.pod }),
        description: `ComputePods FSWatcher for ${cfg.root}`,
        signal,
      }),
    );
    signal.throwIfAborted();
    return thenClose(await startFsWatcher(bus, cfg), bus);
  },
  {
    help: serviceHelp(
      'fswatcher',
      "watches a pod's workspace and announces each changed file on NATS (files.changed)",
      fsWatcherEnv,
    ),
  },
);
