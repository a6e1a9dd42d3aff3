import { ResourceCommandError } from './errors.js';
import type { JobTree } from './slurm-files.js';

export interface HostResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * How the SLURM backend reaches the cluster as the profile's user: `sudo -n -u USER` on a
 * shared filesystem, or SSH through the transport pool. Commands are argv arrays, so no value
 * is ever parsed by a shell on the way (over SSH each element is quoted).
 */
export interface SlurmHost {
  /** For messages: "cpuser via sudo", "cpuser@host:22". */
  readonly label: string;
  /** A SLURM client command (sbatch, squeue, scontrol, scancel) with the client env. */
  slurm(argv: readonly string[]): Promise<HostResult>;
  /** Any other command as the user (markers, scans, tail). */
  run(argv: readonly string[], input?: string): Promise<HostResult>;
  /**
   * Creates the job folder `dir` holding these files (name → content) and, when given, the
   * tree of tasks with declared files (input copies, output folders), each copy verified by
   * SHA-256 as the cluster's user sees it.
   */
  stageJob(dir: string, files: Readonly<Record<string, string>>, tree?: JobTree): Promise<void>;
  /**
   * Copies a file the job wrote to a local path: a temp name beside it, SHA-256 checked
   * against the cluster's side, then renamed over it. Resolves false (copying nothing) when
   * there is no regular file at `path`.
   */
  fetchFile(path: string, localPath: string): Promise<boolean>;
  /**
   * Brings a finished job's folder back and verifies it (SSH); resolves with the local copy,
   * or undefined when the folder is already readable here (shared filesystem).
   */
  fetchJob(dir: string, jobKey: string): Promise<string | undefined>;
  /** Removes the local copy fetchJob made of a job folder, if this host makes any. */
  removeLocalCopy?(jobKey: string): Promise<void>;
  close(): Promise<void>;
}

// Messages of a controller that is busy, restarting or unreachable: worth another try.
const TRANSIENT =
  /Socket timed out|Unable to contact slurm controller|Connection refused|Connection reset|Transport endpoint|Resource temporarily unavailable|Zero Bytes were transmitted|Communication connection failure|slurm_receive_msg|Slurm backup controller in standby|try again|Unable to connect|Network is unreachable|timed out/i;

/** A failed command as an error whose `retryable` says whether trying again may help. */
export function commandFailed(what: string, res: HostResult): ResourceCommandError {
  const text = `${res.stderr}\n${res.stdout}`.trim();
  return new ResourceCommandError(what, res.code, text, res.code === null || TRANSIENT.test(text));
}

/** Throws commandFailed unless the command exited 0. */
export function ensureOk(what: string, res: HostResult): HostResult {
  if (res.code !== 0) throw commandFailed(what, res);
  return res;
}

/**
 * Job files that hold a secret (a pilot's NATS credentials: `*.creds`) are written readable by
 * the job user alone; the others (scripts, configs) as usual.
 */
export function isSecretJobFile(name: string): boolean {
  return name.endsWith('.creds');
}
