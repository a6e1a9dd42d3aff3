import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Bus, createLogger } from '@computepods/bus';
import { checkProject } from '@computepods/protocol';
import { readConfig } from './config-file.js';

export interface GlobalOptions {
  readonly output: 'text' | 'json';
  readonly project?: string;
  readonly nats?: string;
  readonly creds?: string;
}

export interface Context {
  readonly project: string;
  readonly natsUrl: string;
  readonly json: boolean;
  /** NATS credentials for the project (yours, or its admin's from the auth dir). */
  readonly credsFile?: string | undefined;
  /** The lab admin's auth dir (`up` makes `<state>/auth`): admin creds for every project and the registry. */
  readonly authDir?: string | undefined;
}

/**
 * The auth dir, when there is one: CP_AUTH_DIR, the config file's, or the one `up` made in
 * this checkout (`.state/auth`, or `$CP_STATE_DIR/auth`).
 */
function authDirOf(
  env: NodeJS.ProcessEnv,
  file: { authDir?: string | undefined },
): string | undefined {
  const dir =
    env.CP_AUTH_DIR ?? file.authDir ?? join(resolve(env.CP_STATE_DIR ?? '.state'), 'auth');
  return existsSync(join(dir, 'operator.jwt')) ? dir : undefined;
}

/** An account's creds file in the auth dir, when it is there. */
export function authDirCreds(authDir: string | undefined, account: string, user: string) {
  if (!authDir) return undefined;
  const path = join(authDir, 'creds', account, `${user}.creds`);
  return existsSync(path) ? path : undefined;
}

/** Precedence: flag > environment > config file > default. */
export function resolveContext(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): Context {
  const file = readConfig();
  const project = checkProject(opts.project ?? env.CP_PROJECT ?? file.project ?? 'demo');
  const authDir = authDirOf(env, file);
  return {
    project,
    natsUrl: opts.nats ?? env.NATS_URL ?? file.natsUrl ?? 'nats://127.0.0.1:4222',
    json: opts.output === 'json',
    // An empty value (NATS_CREDS= to drop an inherited one) counts as unset.
    credsFile:
      (opts.creds || undefined) ??
      (env.NATS_CREDS || undefined) ??
      file.credentials?.[project] ??
      authDirCreds(authDir, `p-${project}`, 'admin'),
    authDir,
  };
}

export async function connectBus(ctx: Context, as?: { project: string; credsFile?: string }) {
  const project = as?.project ?? ctx.project;
  const logger = createLogger('cpctrl', { project });
  logger.level = process.env.CP_LOG_LEVEL ?? 'error';
  const credsFile = as ? as.credsFile : ctx.credsFile;
  return Bus.connect({
    servers: ctx.natsUrl,
    service: 'cpctrl',
    project,
    logger,
    discoverable: false,
    giveUpAfterMs: 1_500,
    ...(credsFile ? { credsFile } : {}),
  });
}
