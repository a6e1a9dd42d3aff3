import { Bus, busEnv, createLogger, startService, thenClose } from '@computepods/bus';
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
    help: {
      name: 'fswatcher',
      summary: "watches a pod's workspace and announces each changed file on NATS (files.changed)",
      env: [
        { title: 'fswatcher', spec: fsWatcherEnv },
        { title: 'NATS and logs, every service', spec: busEnv },
      ],
      readme: 'services/fswatcher/README.md',
    },
  },
);
