import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { firstIssue, issueLine } from '@computepods/protocol';
import { z } from 'zod';
import { CliError } from './output.js';

/** cpctrl's own settings, like a kube context: the current project and where NATS is. */
export const CliConfig = z
  .object({
    project: z.string().optional(),
    natsUrl: z.string().optional(),
    /** NATS credentials per project: the creds file an admin gave you for it. */
    credentials: z.record(z.string(), z.string()).optional(),
    /** A lab admin's auth dir (admin creds for every project and the registry). */
    authDir: z.string().optional(),
  })
  .strict();
export type CliConfig = z.infer<typeof CliConfig>;

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CPCTRL_CONFIG) return env.CPCTRL_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'computepods', 'cpctrl.json');
}

export function readConfig(path = configPath()): CliConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CliError(
      'CP_INVALID_CONFIG',
      `${path} is not valid JSON (${(err as Error).message}); fix or delete it`,
    );
  }
  const parsed = CliConfig.safeParse(raw);
  if (!parsed.success) {
    const first = firstIssue(parsed.error);
    throw new CliError(
      'CP_INVALID_CONFIG',
      `${path}: ${first ? issueLine(first) : 'invalid'}; fix or delete it`,
    );
  }
  return parsed.data;
}

export function writeConfig(config: CliConfig, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(tmp, path);
}
