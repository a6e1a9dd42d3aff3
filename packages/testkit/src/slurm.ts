import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { defined } from './defined.js';
import { ServerStartError } from './errors.js';
import { killProcessesUsing, processesUsing } from './proc-sweep.js';
import { ManagedProcess } from './process.js';
import { descendantsOf } from './process-tree.js';
import { requireBinary } from './require-binary.js';
import { type ReservedPort, startOnReservedPorts } from './reserved-port.js';
import { type CommandResult, runCommand } from './run-command.js';
import { TempDir } from './temp-dir.js';

export interface SlurmOptions {
  readonly partition?: string;
  /** CPUs the node offers; default the machine's. */
  readonly cpus?: number;
  readonly realMemoryMb?: number;
  /** Memory a job gets per CPU unless it asks; small enough that jobs run side by side. */
  readonly defMemPerCpuMb?: number;
  /** Seconds a finished job stays visible to `scontrol show job` (SLURM's MinJobAge). */
  readonly minJobAgeS?: number;
  readonly extraConfig?: readonly string[];
  readonly startTimeoutMs?: number;
}

export interface SlurmCommandOptions {
  /** Run as this local user via `sudo -n -u USER env SLURM_CONF=...`; default root. */
  readonly user?: string;
  readonly input?: string;
  readonly timeoutMs?: number;
}

const HINT = 'install slurm-wlm, munge and sudo (bash scripts/setup does)';

/**
 * A real single-node SLURM: munged with its own key and socket, slurmctld and slurmd with a
 * generated slurm.conf, spool and state in a temp dir, on free ports. The node is this host
 * at 127.0.0.1. Client commands need `env` (SLURM_CONF); the dir is world-readable so
 * other local users (sudo -u, ssh) can read the config and reach munged's socket.
 *
 *   await using slurm = await Slurm.start();
 *   await slurm.command(['sbatch', '--parsable', '--wrap', 'echo hi'], { user: 'cpuser' });
 *   spawn('squeue', [], { env: { ...process.env, ...slurm.env } });
 */
/** The daemons' executables, found before anything starts (a clear error when one is missing). */
interface SlurmBinaries {
  readonly munged: string;
  readonly slurmctld: string;
  readonly slurmd: string;
}

export class Slurm implements AsyncDisposable {
  readonly partition: string;
  readonly nodeName: string;
  readonly clusterName: string;
  /** Path of slurm.conf. */
  readonly conf: string;
  readonly mungeSocket: string;
  /** A world-writable (sticky) dir for job scripts and outputs of any user. */
  readonly workDir: string;
  readonly #dir: TempDir;
  readonly #options: SlurmOptions;
  readonly #procs: ManagedProcess[] = [];
  readonly #bins: SlurmBinaries;
  #ctldPort = 0;
  #slurmdPort = 0;
  /** slurmctld's and slurmd's ports, reserved until dispose (reserved-port.ts). */
  #reserved: readonly ReservedPort[] = [];

  private constructor(dir: TempDir, options: SlurmOptions, bins: SlurmBinaries) {
    this.#dir = dir;
    this.#bins = bins;
    this.#options = options;
    this.partition = options.partition ?? 'cptest';
    this.nodeName = hostname().split('.')[0] ?? hostname();
    // ClusterName must be short and lowercase; a random one keeps state files apart.
    this.clusterName = `cp${randomBytes(3).toString('hex')}`;
    this.conf = dir.join('slurm.conf');
    this.mungeSocket = dir.join('munge', 'munge.socket');
    this.workDir = dir.join('work');
  }

  static async start(options: SlurmOptions = {}): Promise<Slurm> {
    const bins = {
      munged: requireBinary(process.env.MUNGED_BIN ?? 'munged', HINT),
      slurmctld: requireBinary(process.env.SLURMCTLD_BIN ?? 'slurmctld', HINT),
      slurmd: requireBinary(process.env.SLURMD_BIN ?? 'slurmd', HINT),
    };
    requireBinary('sinfo', HINT);
    requireBinary('sbatch', HINT);
    const dir = new TempDir('cp-slurm-');
    const slurm = new Slurm(dir, options, bins);
    try {
      await slurm.#launch();
      return slurm;
    } catch (err) {
      await slurm[Symbol.asyncDispose]();
      throw err;
    }
  }

  /** Environment for SLURM client commands (sbatch, squeue, scontrol, scancel, sinfo). */
  get env(): { SLURM_CONF: string } {
    return { SLURM_CONF: this.conf };
  }

  get slurmctldPort(): number {
    return this.#ctldPort;
  }

  get slurmdPort(): number {
    return this.#slurmdPort;
  }

  /** Combined daemon output, for diagnosing a failing test. */
  get output(): string {
    return this.#procs.map((p) => `--- ${p.name}\n${p.tail()}`).join('\n');
  }

  /** The last lines of slurmctld's and slurmd's log files, for diagnosing a failing test. */
  logTail(lines = 40): string {
    return ['slurmctld', 'slurmd']
      .map((name) => {
        let text = '';
        try {
          text = readFileSync(this.#dir.join('log', `${name}.log`), 'utf8');
        } catch {
          text = '(no log)';
        }
        return `--- ${name}.log\n${text.split('\n').slice(-lines).join('\n')}`;
      })
      .join('\n');
  }

  /** Runs a SLURM client command with this cluster's config, as root or as another user. */
  async command(
    argv: readonly string[],
    options: SlurmCommandOptions = {},
  ): Promise<CommandResult> {
    const [cmd, ...args] = argv;
    if (!cmd) throw new Error('Slurm.command needs a command');
    const env = { ...process.env, ...this.env };
    if (!options.user) {
      return runCommand(cmd, args, { env, input: options.input, timeoutMs: options.timeoutMs });
    }
    // sudo resets the environment, so SLURM_CONF goes through env(1); cwd must be one the
    // user may enter, or SLURM would write job output where the user cannot.
    return runCommand(
      'sudo',
      ['-n', '-u', options.user, 'env', `SLURM_CONF=${this.conf}`, cmd, ...args],
      { env, input: options.input, timeoutMs: options.timeoutMs, cwd: this.workDir },
    );
  }

  /** `scontrol show job ID` parsed into its key=value fields. */
  async showJob(jobId: string): Promise<Record<string, string>> {
    const res = await this.command(['scontrol', 'show', 'job', '-o', jobId]);
    if (res.code !== 0) throw new Error(`scontrol show job ${jobId}: ${res.stderr.trim()}`);
    const fields: Record<string, string> = {};
    for (const m of res.stdout.trim().matchAll(/(\w+(?:\/\w+)?)=(\S*)/g)) {
      if (m[1] && !(m[1] in fields)) fields[m[1]] = m[2] ?? '';
    }
    return fields;
  }

  /** Polls until the job reaches a final state; returns that state (COMPLETED, FAILED, ...). */
  async waitForJob(jobId: string, timeoutMs = 60_000): Promise<Record<string, string>> {
    const final =
      /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$/;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const job = await this.showJob(jobId);
      if (final.test(job.JobState ?? '')) return job;
      if (performance.now() > deadline) {
        throw new Error(
          `job ${jobId} still ${job.JobState} after ${timeoutMs} ms:\n${this.output}`,
        );
      }
      await sleep(200);
    }
  }

  /** True while slurmctld runs (false between stopController and startController). */
  get controllerRunning(): boolean {
    return this.#procs.some((p) => p.name === 'slurmctld' && p.running);
  }

  /**
   * Stops slurmctld as an admin restart would (SIGTERM: it saves its state). Jobs go on
   * running on slurmd; client commands fail until startController.
   */
  async stopController(): Promise<void> {
    for (const p of this.#procs) if (p.name === 'slurmctld' && p.running) await p.stop(10_000);
  }

  /** Starts slurmctld again on the same port, recovering its saved jobs; resolves once it answers. */
  async startController(timeoutMs = 60_000): Promise<void> {
    if (this.controllerRunning) return;
    this.#spawn('slurmctld', this.#bins.slurmctld, ['-D', '-f', this.conf]);
    await this.#waitAnswer(performance.now() + timeoutMs, 'slurmctld answering after a restart');
  }

  /**
   * The node "reboots": slurmd, every slurmstepd of this cluster and everything they started
   * (the jobs' processes) get SIGKILL at once, found before the first signal so no orphan is
   * missed. Only processes of this fixture are touched: slurmd is ours, and a slurmstepd is
   * ours when it or its job script holds a file in our spool dir. Resolves with the pids signalled.
   */
  async crashNode(): Promise<number[]> {
    const slurmd = this.#procs.find((p) => p.name === 'slurmd' && p.running);
    // A job's script runs from our spool dir; its parent is the job's slurmstepd.
    const steps = new Set<number>();
    for (const pid of processesUsing(this.#dir.join('spool'))) {
      if (/slurmstepd/.test(readCmdline(pid))) steps.add(pid);
      const parent = parentOf(pid);
      if (parent && /slurmstepd/.test(readCmdline(parent))) steps.add(parent);
    }
    const top = [...(slurmd?.pid ? [slurmd.pid] : []), ...steps];
    const all = [...new Set([...top, ...top.flatMap((pid) => descendantsOf(pid))])];
    for (const pid of all) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await slurmd?.exited();
    return all;
  }

  /**
   * Starts slurmd again after crashNode; resolves once the controller sees the node up.
   *
   * The crashed runs' batch scripts are removed from the spool first, as slurmd purges them on
   * start ("Purging vestigial job script"). Its own purge races the controller: slurmctld returns
   * the node to service on its first answer, and a requeued job started on it before the purge
   * found the crashed run's script still there: "couldn't open .../job00002/slurm_script: File
   * exists", and SLURM failed the job, or held it (slurm-faults 4: once in fresh-clone CI, and
   * six runs in six with SlurmdDebug=debug2, which slows slurmd's start).
   */
  async startNode(timeoutMs = 60_000): Promise<void> {
    if (this.#procs.some((p) => p.name === 'slurmd' && p.running)) return;
    // crashNode killed every slurmstepd of this spool: no job's script there is in use.
    for (const name of readdirSync(this.#dir.join('spool')))
      if (/^job\d+$/.test(name))
        rmSync(this.#dir.join('spool', name), { recursive: true, force: true });
    this.#spawn('slurmd', this.#bins.slurmd, ['-D', '-f', this.conf]);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const state = await this.#nodeState();
      if (state !== '' && !/down|unk|not_responding|\*/.test(state)) return;
      if (performance.now() > deadline)
        throw new ServerStartError(
          'slurmd',
          `node ${state || 'silent'} after restart:\n${this.output}`,
        );
      await sleep(200);
    }
  }

  async #waitAnswer(deadline: number, what: string): Promise<void> {
    for (;;) {
      if ((await this.#nodeState()) !== '') return;
      if (performance.now() > deadline)
        throw new ServerStartError('slurm', `no ${what}:\n${this.output}`);
      await sleep(200);
    }
  }

  async #launch(): Promise<void> {
    const bins = this.#bins;
    const dir = this.#dir;
    const timeout = this.#options.startTimeoutMs ?? 60_000;
    const deadline = performance.now() + timeout;
    // Other local users (sudo -u, ssh sessions) read slurm.conf and talk to munged's socket.
    chmodSync(dir.path, 0o755);
    for (const sub of ['munge', 'state', 'spool', 'log']) mkdirSync(dir.join(sub), { mode: 0o755 });
    mkdirSync(this.workDir);
    chmodSync(this.workDir, 0o1777);

    const key = dir.join('munge.key');
    writeFileSync(key, randomBytes(1024), { mode: 0o400 });
    const munged = this.#spawn('munged', bins.munged, [
      '--foreground',
      `--socket=${this.mungeSocket}`,
      `--key-file=${key}`,
      `--pid-file=${dir.join('munge', 'munged.pid')}`,
      `--log-file=${dir.join('log', 'munged.log')}`,
      `--seed-file=${dir.join('munge', 'munged.seed')}`,
    ]);
    await this.#until(deadline, () => existsSync(this.mungeSocket), 'munged socket');
    if (!munged.running) throw new ServerStartError('munged', `exited:\n${munged.tail()}`);

    // Reserved ports (reserved-port.ts): a restarted slurmctld or slurmd needs its port back.
    let failed = '';
    this.#reserved = await startOnReservedPorts(
      2,
      async (ports) => {
        this.#ctldPort = defined(ports[0], 'a reserved port');
        this.#slurmdPort = defined(ports[1], 'a reserved port');
        this.#writeConf();
        const ctld = this.#spawn('slurmctld', bins.slurmctld, ['-D', '-f', this.conf]);
        const slurmd = this.#spawn('slurmd', bins.slurmd, ['-D', '-f', this.conf]);
        try {
          await this.#until(
            deadline,
            async () => (await this.#nodeState()) === 'idle',
            'node idle',
          );
        } catch (err) {
          await slurmd.stop();
          await ctld.stop();
          failed = ctld.output + slurmd.output;
          throw err;
        }
      },
      () => /Address already in use/.test(failed),
    );
  }

  #writeConf(): void {
    const dir = this.#dir;
    const o = this.#options;
    const cpus = o.cpus ?? availableParallelism();
    writeFileSync(
      this.conf,
      [
        `ClusterName=${this.clusterName}`,
        `SlurmctldHost=${this.nodeName}(127.0.0.1)`,
        `SlurmctldPort=${this.#ctldPort}`,
        `SlurmdPort=${this.#slurmdPort}`,
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${this.mungeSocket}`,
        'SlurmUser=root',
        'SlurmdUser=root',
        `SlurmctldPidFile=${dir.join('slurmctld.pid')}`,
        `SlurmdPidFile=${dir.join('slurmd.pid')}`,
        `SlurmdSpoolDir=${dir.join('spool')}`,
        `StateSaveLocation=${dir.join('state')}`,
        `SlurmctldLogFile=${dir.join('log', 'slurmctld.log')}`,
        `SlurmdLogFile=${dir.join('log', 'slurmd.log')}`,
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'SwitchType=switch/none',
        'MpiDefault=none',
        'ReturnToService=2',
        'SchedulerType=sched/backfill',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core_Memory',
        'JobCompType=jobcomp/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        // A job that asks for no memory would otherwise take the whole node, one at a time.
        `DefMemPerCPU=${o.defMemPerCpuMb ?? 100}`,
        `MinJobAge=${Math.max(60, o.minJobAgeS ?? 120)}`,
        ...(o.extraConfig ?? []),
        `NodeName=${this.nodeName} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${o.realMemoryMb ?? 2000} State=UNKNOWN`,
        `PartitionName=${this.partition} Nodes=${this.nodeName} Default=YES MaxTime=INFINITE State=UP`,
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
  }

  async #nodeState(): Promise<string> {
    const res = await runCommand('sinfo', ['-h', '-N', '-o', '%t'], {
      env: { ...process.env, ...this.env },
      timeoutMs: 10_000,
    });
    return res.code === 0 ? res.stdout.trim() : '';
  }

  /** In the cluster's temp dir: a daemon's core dump (a slurmstepd's, say) lands there, not in the repo. */
  #spawn(name: string, command: string, args: string[]): ManagedProcess {
    const proc = new ManagedProcess({ name, command, args, cwd: this.#dir.path });
    this.#procs.push(proc);
    return proc;
  }

  /** Polls a condition, failing as soon as any daemon has exited (with its output). */
  async #until(
    deadline: number,
    ok: () => boolean | Promise<boolean>,
    what: string,
  ): Promise<void> {
    for (;;) {
      const dead = this.#procs.find((p) => !p.running);
      if (dead) throw new ServerStartError(dead.name, `exited (${dead.exitCode}):\n${dead.tail()}`);
      if (await ok()) return;
      if (performance.now() > deadline) {
        throw new ServerStartError('slurm', `no ${what} in time:\n${this.output}`);
      }
      await sleep(100);
    }
  }

  /**
   * Cancels every job, stops slurmd, slurmctld and munged, and removes the temp dir. With
   * linuxproc tracking a job's processes outlive slurmd, so a job caught mid-launch or
   * mid-cancel could be left behind; any process still holding a file in our dir is ours
   * (only our daemons and their jobs ever saw it) and is killed before the dir goes.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    const ctldUp = this.#procs.some((p) => p.name === 'slurmctld' && p.running);
    if (ctldUp) {
      await this.command(['scancel', '--partition', this.partition], { timeoutMs: 10_000 }).catch(
        () => undefined,
      );
      const until = performance.now() + 10_000;
      while (performance.now() < until) {
        const q = await this.command(['squeue', '-h', '-t', 'all', '-o', '%i %T'], {
          timeoutMs: 10_000,
        });
        const live = q.stdout
          .split('\n')
          .filter((l) => /\b(PENDING|RUNNING|COMPLETING|CONFIGURING|SUSPENDED)\b/.test(l));
        if (q.code !== 0 || live.length === 0) break;
        await sleep(200);
      }
    }
    for (const p of [...this.#procs].reverse()) await p.stop();
    killProcessesUsing(this.#dir.path);
    for (const r of this.#reserved) r.release();
    this.#dir[Symbol.dispose]();
  }
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) || undefined;
  } catch {
    return undefined;
  }
}
