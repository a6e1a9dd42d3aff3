import { Bus, createLogger, startService, thenClose } from '@computepods/bus';
import { fsWatcherConfig } from './config.js';
import { startFsWatcher } from './fswatcher.js';

const logger = createLogger('fswatcher');
startService(logger, async () => {
  const cfg = fsWatcherConfig();
  const bus = await Bus.connect({
    service: 'fswatcher',
    project: cfg.project,
    logger: logger.child({ project: cfg.project, pod: cfg.pod }),
    description: `ComputePods FSWatcher for ${cfg.root}`,
  });
  return thenClose(await startFsWatcher(bus, cfg), bus);
});
