import { createWriteStream } from 'node:fs';
import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { SlurmSshProfile, SlurmSshResource } from '@computepods/protocol';
import {
  downloadFile,
  downloadTree,
  type SshPool,
  type SshTarget,
  sftpOps,
  transferMode,
  uploadTree,
} from '@computepods/transport';
import { UnsafeValueError } from './errors.js';
import { type JobTree, readInput } from './slurm-files.js';
import { type HostResult, isSecretJobFile, type SlurmHost } from './slurm-host.js';
import { JOB_KEY } from './slurm-sweep.js';

/** Where a slurm_ssh resource's jobs go, as the profile's user (known_hosts default: ~/.ssh). */
export function sshTargetOf(resource: SlurmSshResource, profile: SlurmSshProfile): SshTarget {
  return {
    host: resource.host,
    ...(resource.port ? { port: resource.port } : {}),
    username: profile.username,
    privateKeyPath: profile.ssh_key_path,
    knownHostsPath: profile.known_hosts_path ?? `${homedir()}/.ssh/known_hosts`,
  };
}

export interface SshHostOptions {
  readonly pool: SshPool;
  readonly target: SshTarget;
  /** Extra environment for SLURM client commands, passed through env(1). */
  readonly clientEnv?: Readonly<Record<string, string>>;
  /** Local folder where job folders are built before upload and fetched back to. */
  readonly localJobsDir: string;
  /** Close the pool with this host (it was made for it alone). */
  readonly ownsPool?: boolean;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Reaches a SLURM cluster over SSH through the transport pool (one actor per host+user+key,
 * connections reused). Job folders are built locally, uploaded by SFTP into a temp name,
 * checked by SHA-256 and renamed into place; finished ones come back the same way.
 */
export class SshHost implements SlurmHost {
  readonly label: string;
  readonly #o: SshHostOptions;
  readonly #envArgs: string[];

  constructor(options: SshHostOptions) {
    this.#o = options;
    const t = options.target;
    this.label = `${t.username}@${t.host}:${t.port ?? 22}`;
    this.#envArgs = Object.entries(options.clientEnv ?? {}).map(([k, v]) => {
      if (!ENV_NAME.test(k))
        throw new UnsafeValueError('client env name', k, 'not an environment variable name');
      return `${k}=${v}`;
    });
  }

  slurm(argv: readonly string[]): Promise<HostResult> {
    return this.run(this.#envArgs.length ? ['env', ...this.#envArgs, ...argv] : argv);
  }

  async run(argv: readonly string[], input?: string): Promise<HostResult> {
    const res = await this.#o.pool.exec(
      this.#o.target,
      argv,
      input === undefined ? {} : { stdin: input },
    );
    return { code: res.code, stdout: res.stdout, stderr: res.stderr };
  }

  // The whole folder (script, input copies, output folders) goes up as one tree: into a temp
  // name, every file's SHA-256 checked on the cluster, then renamed into place. It is built in
  // jobs_local_dir under the folder's own name, then removed.
  async stageJob(
    dir: string,
    files: Readonly<Record<string, string>>,
    tree?: JobTree,
  ): Promise<void> {
    const local = join(this.#o.localJobsDir, posix.basename(dir));
    await rm(local, { recursive: true, force: true });
    await mkdir(local, { recursive: true });
    for (const d of tree?.dirs ?? []) await mkdir(join(local, d), { recursive: true });
    for (const c of tree?.copies ?? []) {
      await mkdir(dirname(join(local, c.to)), { recursive: true });
      // Read without following a symlink; the mode kept, minus setuid/setgid/sticky.
      const to = join(local, c.to);
      await pipeline(readInput(c.from), createWriteStream(to));
      await chmod(to, transferMode((await stat(c.from)).mode));
    }
    for (const [name, content] of Object.entries(files))
      await writeFile(join(local, name), content, { mode: isSecretJobFile(name) ? 0o600 : 0o755 });
    try {
      await uploadTree(this.#o.pool, this.#o.target, local, dir, { ifExists: 'replace' });
    } finally {
      // Only a way up: the job's folder comes back by fetchJob, a pilot's staged files not at all.
      await rm(local, { recursive: true, force: true });
    }
  }

  async fetchFile(path: string, localPath: string): Promise<boolean> {
    const st = await this.#o.pool.sftp(this.#o.target, (s) => sftpOps.statOrUndefined(s, path));
    if (!st?.isFile()) return false;
    await downloadFile(this.#o.pool, this.#o.target, path, localPath, { ifExists: 'replace' });
    return true;
  }

  // Only the job's own files (script, logs, exit codes): the tasks' work folders hold copies
  // of their inputs and outputs already brought back, so they stay on the cluster.
  async fetchJob(dir: string, jobKey: string): Promise<string> {
    const local = join(this.#o.localJobsDir, jobKey);
    const names = await this.#o.pool.sftp(this.#o.target, async (s) =>
      (await sftpOps.readdir(s, dir)).filter((e) => e.attrs.isFile()).map((e) => e.filename),
    );
    await downloadTree(this.#o.pool, this.#o.target, dir, local, {
      ifExists: 'replace',
      files: names,
    });
    return local;
  }

  async removeLocalCopy(jobKey: string): Promise<void> {
    if (!JOB_KEY.test(jobKey)) return;
    await rm(join(this.#o.localJobsDir, jobKey), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    if (this.#o.ownsPool) await this.#o.pool.close();
  }
}
