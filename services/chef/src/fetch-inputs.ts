import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Logger } from '@computepods/bus';
import { hashFile } from '@computepods/fswatch';
import { downloadFile, SshPool } from '@computepods/transport';
import { confineLocal } from './confine.js';
import { InputFetchError } from './errors.js';
import { type PodsConfig, sshTarget } from './pods.js';

export type InputCheck =
  | { readonly ok: true; readonly fetchedFrom?: string }
  /** The workspace has other bytes (or none) and no pod could supply the wanted ones. */
  | {
      readonly ok: false;
      readonly reason: string;
      /** The bytes the workspace holds instead, if any. */
      readonly now?: { sha256: string; size: number };
    };

const ATTEMPTS = 3;

/**
 * Makes a build's inputs present with the hashes MajorDomo planned with. A file missing here or
 * holding other bytes is downloaded from the pod named in the request's `locations` over SFTP
 * (temp name, SHA-256 verified, atomic rename). One SSH pool per chef: connections are reused.
 */
export class InputFetcher {
  #pool: SshPool | undefined;

  constructor(
    readonly pods: PodsConfig,
    readonly ownPod: string,
    readonly workspace: string,
    readonly logger: Logger,
  ) {}

  async ensure(path: string, want: string, pod: string | undefined): Promise<InputCheck> {
    // Hashed, and maybe replaced by a download: a symlink leading out must not be followed.
    const local = await confineLocal(this.workspace, path);
    const have = await hashFile(local).catch(() => undefined);
    if (have === want) return { ok: true };
    const now = have ? `is now ${have.slice(0, 12)}` : 'is missing';
    const access = pod === undefined || pod === this.ownPod ? undefined : this.pods[pod];
    if (!access) {
      const where =
        pod === undefined || pod === this.ownPod
          ? 'and no other pod holds it'
          : `and pod ${pod} is not in CP_PODS`;
      const size = have
        ? await stat(local).then(
            (s) => s.size,
            () => undefined,
          )
        : undefined;
      return {
        ok: false,
        reason: `input ${path} ${now}, the request was for ${want.slice(0, 12)} ${where}`,
        ...(have && size !== undefined ? { now: { sha256: have, size } } : {}),
      };
    }
    this.#pool ??= new SshPool({ logger: this.logger });
    const remote = posix.join(access.root, path);
    let got: string | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        got = (await downloadFile(this.#pool, sshTarget(access), remote, local)).sha256;
        break;
      } catch (err) {
        const retryable = (err as { retryable?: boolean }).retryable === true;
        if (!retryable || attempt >= ATTEMPTS) {
          throw new InputFetchError(
            path,
            `could not fetch it from pod ${pod} (${(err as Error).message}); check CP_PODS and that the pod's sshd is up`,
            retryable,
            { cause: err },
          );
        }
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
    this.logger.info({ path, pod, sha256: got.slice(0, 12) }, 'input fetched from another pod');
    if (got !== want)
      return {
        ok: false,
        reason: `input ${path}: pod ${pod} now has ${got.slice(0, 12)}, the request was for ${want.slice(0, 12)}`,
      };
    return { ok: true, fetchedFrom: pod };
  }

  async close(): Promise<void> {
    await this.#pool?.close();
  }
}
