import { Bus, createLogger } from '@computepods/bus';
import { checkProject } from '@computepods/protocol';
import { readConfig } from './config-file.js';

export interface GlobalOptions {
  readonly output: 'text' | 'json';
  readonly project?: string;
  readonly nats?: string;
}

export interface Context {
  readonly project: string;
  readonly natsUrl: string;
  readonly json: boolean;
}

/** Precedence: flag > environment > config file > default. */
export function resolveContext(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): Context {
  const file = readConfig();
  const project = opts.project ?? env.CP_PROJECT ?? file.project ?? 'demo';
  return {
    project: checkProject(project),
    natsUrl: opts.nats ?? env.NATS_URL ?? file.natsUrl ?? 'nats://127.0.0.1:4222',
    json: opts.output === 'json',
  };
}

export async function connectBus(ctx: Context): Promise<Bus> {
  const logger = createLogger('cpctrl', { project: ctx.project });
  logger.level = process.env.CP_LOG_LEVEL ?? 'error';
  return Bus.connect({
    servers: ctx.natsUrl,
    service: 'cpctrl',
    project: ctx.project,
    logger,
    discoverable: false,
    giveUpAfterMs: 1_500,
  });
}
