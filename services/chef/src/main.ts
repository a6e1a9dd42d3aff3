import { Bus, createLogger, serviceHelp, startService, thenClose } from '@computepods/bus';
import { startChef } from './chef.js';
import { chefConfig, chefEnv } from './config.js';
import { loadDefinition } from './definition.js';

const logger = createLogger('chef');
startService(
  logger,
  async ({ signal, opened }) => {
    const cfg = chefConfig();
    const def = loadDefinition(cfg.definitionFile);
    const bus = opened(
      await Bus.connect({
        service: 'chef',
        project: cfg.project,
        logger: logger.child({ project: cfg.project, chef: cfg.chef }),
        description: `ComputePods chef ${cfg.chef}`,
        // Its name in every $SRV answer from the first: MajorDomo's replica census hands on the
        // requests of a replica gone by this name (a name set later was missing from a PING
        // answered during the start, and a replica killed then was gone without its requests
        // handed on).
        metadata: { chef: cfg.chef },
        signal,
        // Its KV reads are its hot path (three per build): no stack trace captured per request.
        asyncTraces: false,
      }),
    );
    signal.throwIfAborted();
    return thenClose(await startChef(bus, cfg, def), bus);
  },
  {
    help: serviceHelp(
      'chef',
      "turns a build request into tasks with one chef's rules (LaTeX, C, ...) and reports what they made",
      chefEnv,
    ),
  },
);
