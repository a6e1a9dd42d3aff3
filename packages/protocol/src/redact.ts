import type { Profile, Resource } from './resources.js';

/** What stands in for a secret in anything shown: API answers, CLI output, logs. */
export const REDACTED = '[redacted]';

/**
 * A resource as it may be shown: its SLURM client environment can carry credentials
 * (SLURM_JWT, a token for slurmrestd), so only the variable names are kept.
 */
export function shownResource(r: Resource): Resource {
  if (!('slurm_client_env' in r) || !r.slurm_client_env) return r;
  return {
    ...r,
    slurm_client_env: Object.fromEntries(Object.keys(r.slurm_client_env).map((k) => [k, REDACTED])),
  };
}

/** A profile as it may be shown: where its SSH private key lives is not for every reader. */
export function shownProfile(p: Profile): Profile {
  if (!('ssh_key_path' in p) || !p.ssh_key_path) return p;
  return { ...p, ssh_key_path: REDACTED };
}
