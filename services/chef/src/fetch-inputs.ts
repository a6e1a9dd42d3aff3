import type { Logger } from '@computepods/bus';
import { isRetryable } from '@computepods/protocol';
import { downloadFiles, type FileDownloadOutcome, SshPool } from '@computepods/transport';
import type { Confinement } from './confine.js';
import { InputFetchError } from './errors.js';
import { HashCache } from './hash-cache.js';
import { mapFew } from './map-few.js';
import { type PodAccess, type PodsConfig, sshTarget } from './pods.js';

export type InputCheck =
  | {
      readonly ok: true;
      readonly fetchedFrom?: string;
      /** The stat the matching hash went with (none for a download: stat it again). */
      readonly stamp?: string;
    }
  /** The workspace has other bytes (or none) and no pod could supply the wanted ones. */
  | {
      readonly ok: false;
      readonly reason: string;
      /** The bytes the workspace holds instead, if any. */
      readonly now?: { sha256: string; size: number };
    };

/**
 * File system checks of one build's paths in flight at once (confinement, stamps, hashes): a
 * link step's 200 inputs were checked one after another, four times, each a few syscalls
 * through libuv's thread pool (4 threads), so a few at once is what pays.
 */
export const FS_CONCURRENCY = 8;

export interface WantedInput {
  readonly path: string;
  /** The SHA-256 MajorDomo planned with. */
  readonly sha256: string;
  /** The pod that has those bytes (the request's `locations`), if another. */
  readonly pod: string | undefined;
}

/** An input's check, or the error that stopped its fetch (InputFetchError). */
export type InputOutcome = { readonly check: InputCheck } | { readonly err: unknown };

/**
 * Makes a build's inputs present with the hashes MajorDomo planned with. Files missing here or
 * holding other bytes are downloaded from the pod named in the request's `locations`, all of a
 * pod's at once: one SFTP session, many files in flight (transport's downloadFiles), each
 * written to a temp name, its bytes checked against the planned SHA-256 and renamed into place;
 * other bytes are never written. One SSH pool per chef: connections are reused.
 */
export class InputFetcher {
  #pool: SshPool | undefined;

  constructor(
    readonly pods: PodsConfig,
    readonly ownPod: string,
    readonly workspace: string,
    readonly logger: Logger,
    /** The chef's hashes of workspace files (a shared header is read once, not per build). */
    readonly hashes: HashCache = new HashCache(),
  ) {}

  /**
   * One outcome per input, in the given order; `confine` checks their paths (the build's).
   * Inputs to download wait for `fetchIf` (when given): false, none is fetched (each outcome an
   * InputFetchError), as for a build answered from its record meanwhile.
   */
  async ensureAll(
    inputs: readonly WantedInput[],
    confine: Confinement,
    fetchIf?: Promise<boolean>,
  ): Promise<InputOutcome[]> {
    const outcomes: (InputOutcome | undefined)[] = inputs.map(() => undefined);
    const fetch = new Map<string, { i: number; local: string }[]>();
    await mapFew(
      inputs.entries(),
      async ([i, input]) => {
        try {
          const local = await this.#check(input, confine);
          if (typeof local !== 'string') outcomes[i] = { check: local };
          else {
            const pod = input.pod as string;
            fetch.set(pod, [...(fetch.get(pod) ?? []), { i, local }]);
          }
        } catch (err) {
          outcomes[i] = { err };
        }
      },
      FS_CONCURRENCY,
    );
    if (fetch.size && fetchIf && !(await fetchIf)) {
      for (const files of fetch.values())
        for (const { i } of files)
          outcomes[i] = {
            err: new InputFetchError(
              (inputs[i] as WantedInput).path,
              'not fetched: the build no longer needs it',
              false,
            ),
          };
      fetch.clear();
    }
    await Promise.all(
      [...fetch].map(async ([pod, files]) => {
        const got = await this.#fetch(
          pod,
          files.map(({ i, local }) => ({ input: inputs[i] as WantedInput, local })),
        );
        files.forEach(({ i }, k) => {
          outcomes[i] = got[k];
        });
      }),
    );
    return inputs.map(
      (input, i) =>
        outcomes[i] ?? {
          err: new InputFetchError(input.path, 'never checked: a fault of the chef', false),
        },
    );
  }

  /** ok, a check that failed, or the local path to fetch into from input.pod. */
  async #check(
    { path, sha256: want, pod }: WantedInput,
    confine: Confinement,
  ): Promise<InputCheck | string> {
    // Hashed, and maybe replaced by a download: a symlink leading out must not be followed.
    const local = await confine.check(path);
    const digest = await this.hashes.digest(local).catch(() => undefined);
    const have = digest?.sha256;
    if (digest && have === want) return { ok: true, stamp: digest.stamp };
    const access = pod === undefined || pod === this.ownPod ? undefined : this.pods[pod];
    if (access) return local;
    const now = have ? `is now ${have.slice(0, 12)}` : 'is missing';
    const where =
      pod === undefined || pod === this.ownPod
        ? 'and no other pod holds it'
        : `and pod ${pod} is not in CP_PODS`;
    return {
      ok: false,
      reason: `input ${path} ${now}, the request was for ${want.slice(0, 12)} ${where}`,
      ...(digest ? { now: { sha256: digest.sha256, size: digest.size } } : {}),
    };
  }

  /** A pod's files, one batch (downloadFiles tries files cut off by a lost connection again). */
  async #fetch(
    pod: string,
    files: readonly { input: WantedInput; local: string }[],
  ): Promise<InputOutcome[]> {
    const access = this.pods[pod] as PodAccess;
    this.#pool ??= new SshPool({ logger: this.logger });
    let got: FileDownloadOutcome[];
    try {
      got = await downloadFiles(
        this.#pool,
        sshTarget(access),
        access.root,
        files.map(({ input, local }) => ({ rel: input.path, local, sha256: input.sha256 })),
      );
    } catch (err) {
      return files.map(({ input }) => ({ err: fetchError(input.path, pod, err) }));
    }
    const fetched = files.filter((_, k) => got[k]?.status === 'fetched');
    if (fetched.length)
      this.logger.info(
        { pod, files: fetched.length, paths: fetched.slice(0, 10).map((f) => f.input.path) },
        'inputs fetched from another pod',
      );
    return got.map((o, k): InputOutcome => {
      const { path, sha256: want } = (files[k] as { input: WantedInput }).input;
      if (o.status === 'fetched') return { check: { ok: true, fetchedFrom: pod } };
      if (o.status === 'failed') return { err: fetchError(path, pod, o.error) };
      return {
        check: {
          ok: false,
          reason: `input ${path}: pod ${pod} now has ${o.sha256.slice(0, 12)}, the request was for ${want.slice(0, 12)}`,
        },
      };
    });
  }

  async close(): Promise<void> {
    await this.#pool?.close();
  }
}

function fetchError(path: string, pod: string, err: unknown): InputFetchError {
  return new InputFetchError(
    path,
    `could not fetch it from pod ${pod} (${(err as Error).message}); check CP_PODS and that the pod's sshd is up`,
    isRetryable(err),
    { cause: err },
  );
}
