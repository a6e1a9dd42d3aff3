import { Bus, createLogger, startService } from '@computepods/bus';
import { serveApi } from './api.js';
import { majorDomoConfig } from './config.js';
import { MajorDomo } from './majordomo.js';

const logger = createLogger('majordomo');
startService(logger, async () => {
  const cfg = majorDomoConfig();
  const bus = await Bus.connect({
    service: 'majordomo',
    project: cfg.project,
    logger: logger.child({ project: cfg.project }),
    description: 'ComputePods MajorDomo: dependency graph, artefacts, build planning',
  });
  const { md, stop } = await MajorDomo.start(bus, cfg);
  serveApi(bus, md);
  return stop;
});
