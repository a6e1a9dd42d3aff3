import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { issuesOf } from '@computepods/bus';
import type { SshTarget } from '@computepods/transport';
import { z } from 'zod';
import { PodsConfigError } from './errors.js';

/** How to reach another pod's workspace: an sshd on that pod, and where the workspace is. */
export const PodAccess = z
  .object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65_535).default(22),
    user: z.string().min(1),
    /** Private key file (the pool never holds passwords). */
    key: z.string().min(1),
    /** known_hosts holding the pod's host key: unknown keys are refused. */
    knownHosts: z.string().min(1),
    /** The pod's workspace directory on that host. */
    root: z.string().refine((p) => isAbsolute(p), 'an absolute directory'),
  })
  .strict();
export type PodAccess = z.infer<typeof PodAccess>;

export const PodsConfig = z.record(z.string().min(1).max(200), PodAccess);
export type PodsConfig = z.infer<typeof PodsConfig>;

/** CP_PODS: inline JSON (starts with "{"), or the path of a JSON file; empty: no other pods. */
export function loadPods(value: string | undefined): PodsConfig {
  const text = value?.trim() ?? '';
  if (text === '') return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text.startsWith('{') ? text : readFileSync(text, 'utf8'));
  } catch (cause) {
    throw new PodsConfigError(`cannot read it (${(cause as Error).message})`, { cause });
  }
  const parsed = PodsConfig.safeParse(raw);
  if (!parsed.success) {
    const detail = issuesOf(parsed.error)
      .map((i) => `${i.path || '(top level)'}: ${i.message}`)
      .join('; ');
    throw new PodsConfigError(detail);
  }
  return parsed.data;
}

export function sshTarget(pod: PodAccess): SshTarget {
  return {
    host: pod.host,
    port: pod.port,
    username: pod.user,
    privateKeyPath: pod.key,
    knownHostsPath: pod.knownHosts,
  };
}
