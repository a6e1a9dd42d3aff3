import { fileURLToPath } from 'node:url';
import type { Grant } from '@computepods/auth';
import { ManagedProcess } from '@computepods/testkit';
import type { ServiceName, Stack } from './stack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Starts a service of `stack` from a one-file bundle (scripts/bundle.mjs) as `up` and deploy/
 * start it, instead of its sources through tsx (Stack.start): the same environment, its role's
 * credentials (`grant`), the same name in stack.procs (kill9, httpUrl and dispose find it).
 * Resolves once `ready` is in its output.
 */
export async function startBundled(
  stack: Stack,
  kind: ServiceName,
  bundle: string,
  options: {
    grant: Omit<Grant, 'project'>;
    extra?: Record<string, string>;
    name?: string;
    ready: RegExp;
    timeoutMs?: number;
  },
): Promise<ManagedProcess> {
  const name = options.name ?? kind;
  const env = stack.env(name, options.extra);
  env.NATS_CREDS = await stack.creds(options.grant);
  const proc = new ManagedProcess({
    name,
    command: process.execPath,
    args: [bundle],
    env,
    cwd: root,
  });
  stack.procs.set(name, proc);
  await proc.waitForOutput(options.ready, options.timeoutMs ?? 60_000);
  return proc;
}
