import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defined } from './defined.js';
import { ServerStartError } from './errors.js';
import { ManagedProcess } from './process.js';
import { descendantsOf, killTree } from './process-tree.js';
import { requireBinary } from './require-binary.js';
import { type ReservedPort, startOnReservedPorts } from './reserved-port.js';
import { type CommandResult, runCommand } from './run-command.js';
import {
  addAuthorizedKey,
  ensureSystemUser,
  isAccountLocked,
  removeAuthorizedKey,
  type SystemUser,
} from './system-user.js';
import { TempDir } from './temp-dir.js';

export interface SshdOptions {
  /** Accounts that may log in with a generated key; created when missing. Default ['cpuser']. */
  readonly users?: readonly string[];
  /** sshd's MaxSessions (channels per connection); OpenSSH's default is 10. */
  readonly maxSessions?: number;
  /** Extra sshd_config lines, e.g. 'ClientAliveInterval 5'; they override the defaults. */
  readonly extraConfig?: readonly string[];
  readonly startTimeoutMs?: number;
}

/** One account the server lets in, with the private key a client should use. */
export interface SshdUser extends SystemUser {
  readonly privateKeyPath: string;
  readonly publicKey: string;
}

export interface SshOptions {
  /** Which of the server's users to log in as; default the first. */
  readonly user?: string;
  readonly input?: string;
  readonly timeoutMs?: number;
}

const HINT = 'install openssh-server and openssh-client (bash scripts/setup does)';

/**
 * A real OpenSSH server on 127.0.0.1 and a reserved port (kept across restarts), with its own host key, config and pid
 * file in a temp dir, key-only auth. Each user gets a fresh ed25519 key appended to
 * ~/.ssh/authorized_keys (removed again on dispose); known_hosts holds the server's host key.
 *
 *   await using sshd = await Sshd.start({ users: ['cpuser', 'cpuser2'] });
 *   const { stdout } = await sshd.ssh('id -un');
 *   await sshd.stop();   // an outage: listener and every session gone
 *   await sshd.start();  // back on the same port, same host key, same users
 */
export class Sshd implements AsyncDisposable {
  readonly host = '127.0.0.1';
  /** At least one: the first is the default identity. */
  readonly users: readonly [SshdUser, ...SshdUser[]];
  readonly knownHostsPath: string;
  readonly configPath: string;
  readonly hostPublicKey: string;
  readonly #dir: TempDir;
  readonly #keyLines: ReadonlyMap<string, string>;
  #port = 0;
  /** The port, reserved until dispose (reserved-port.ts). */
  #reserved: readonly ReservedPort[] = [];
  #proc: ManagedProcess | undefined;
  #sshdBin = '';
  #options: SshdOptions = {};

  private constructor(
    dir: TempDir,
    users: readonly [SshdUser, ...SshdUser[]],
    keyLines: ReadonlyMap<string, string>,
    hostPublicKey: string,
  ) {
    this.#dir = dir;
    this.users = users;
    this.#keyLines = keyLines;
    this.hostPublicKey = hostPublicKey;
    this.knownHostsPath = dir.join('known_hosts');
    this.configPath = dir.join('sshd_config');
  }

  static async start(options: SshdOptions = {}): Promise<Sshd> {
    const sshdBin = requireBinary(process.env.SSHD_BIN ?? '/usr/sbin/sshd', HINT);
    const keygen = requireBinary('ssh-keygen', HINT);
    const dir = new TempDir('cp-sshd-');
    const names = options.users?.length ? options.users : ['cpuser'];
    const users: SshdUser[] = [];
    const keyLines = new Map<string, string>();
    let server: Sshd | undefined;
    try {
      // The dir stays 0700: sshd reads config and host key as root, and clients run as root.
      const tag = `cp-testkit-${randomBytes(6).toString('hex')}`;
      await keygenOrThrow(keygen, dir.join('host_ed25519'), `${tag}-host`);
      for (const name of names) {
        const account = await ensureSystemUser(name);
        const keyPath = dir.join(`id_ed25519_${name}`);
        await keygenOrThrow(keygen, keyPath, `${tag}-${name}`);
        const publicKey = readFileSync(`${keyPath}.pub`, 'utf8').trim();
        await addAuthorizedKey(account, publicKey);
        keyLines.set(name, publicKey);
        users.push({ ...account, privateKeyPath: keyPath, publicKey });
      }
      const hostPub = readFileSync(dir.join('host_ed25519.pub'), 'utf8').trim();
      const [keyType, keyData] = hostPub.split(' ');
      const [first, ...others] = users;
      if (!first) throw new ServerStartError('sshd', 'no users to log in as');
      server = new Sshd(dir, [first, ...others], keyLines, `${keyType} ${keyData}`);
      server.#sshdBin = sshdBin;
      server.#options = options;
      await server.#launch();
      return server;
    } catch (err) {
      if (server) await server[Symbol.asyncDispose]();
      else {
        for (const u of users) await removeAuthorizedKey(u, u.publicKey);
        dir[Symbol.dispose]();
      }
      throw err;
    }
  }

  get port(): number {
    return this.#port;
  }

  /** The first user: the default identity for clients. */
  get username(): string {
    return this.users[0].username;
  }

  get privateKeyPath(): string {
    return this.users[0].privateKeyPath;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  get running(): boolean {
    return this.#proc?.running ?? false;
  }

  get output(): string {
    return this.#proc?.output ?? '';
  }

  user(name: string): SshdUser {
    const found = this.users.find((u) => u.username === name);
    if (!found) throw new Error(`sshd has no user ${name}; pass it in Sshd.start({ users })`);
    return found;
  }

  /** A connection target in the shape @computepods/transport takes. */
  target(name?: string): {
    host: string;
    port: number;
    username: string;
    privateKeyPath: string;
    knownHostsPath: string;
  } {
    const u = name ? this.user(name) : this.users[0];
    return {
      host: this.host,
      port: this.#port,
      username: u.username,
      privateKeyPath: u.privateKeyPath,
      knownHostsPath: this.knownHostsPath,
    };
  }

  /** Runs a command through the system ssh client, verifying the host key strictly. */
  async ssh(command: string, options: SshOptions = {}): Promise<CommandResult> {
    const u = options.user ? this.user(options.user) : this.users[0];
    const ssh = requireBinary('ssh', HINT);
    return runCommand(
      ssh,
      [
        ...['-p', String(this.#port), '-i', u.privateKeyPath],
        ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes'],
        ...['-o', `UserKnownHostsFile=${this.knownHostsPath}`, '-o', 'LogLevel=ERROR'],
        `${u.username}@${this.host}`,
        '--',
        command,
      ],
      { input: options.input, timeoutMs: options.timeoutMs },
    );
  }

  /**
   * The processes serving live connections: one per connection, a child of the listening
   * sshd (OpenSSH's privileged monitor; the user's session runs below it).
   */
  sessions(): number[] {
    const pid = this.#proc?.running ? this.#proc.pid : undefined;
    return pid === undefined ? [] : descendantsOf(pid, 1);
  }

  /**
   * SIGKILLs the connection that process `pid` belongs to (its session process, or any process
   * below it, such as a remote command's shell), as a crash on the server side would, and
   * resolves once they are gone. Refuses a pid that is not below this server.
   */
  async killSession(pid: number): Promise<void> {
    const listener = this.#proc?.running ? this.#proc.pid : undefined;
    const session =
      listener === undefined
        ? undefined
        : this.sessions().find((s) => s === pid || descendantsOf(s).includes(pid));
    if (session === undefined)
      throw new Error(`pid ${pid} is not a session of the sshd on port ${this.#port}`);
    await killTree(session);
  }

  /**
   * Stops the server as an outage would: the listener and, unless keepSessions (what a
   * graceful `systemctl restart ssh` does), every open connection and its commands.
   * start() brings it back on the same port with the same host key and users.
   */
  async stop(options: { keepSessions?: boolean } = {}): Promise<void> {
    const proc = this.#proc;
    if (!proc?.running) return;
    if (options.keepSessions) {
      await proc.stop();
      return;
    }
    // Frozen, the listener accepts nothing new while its sessions are found and killed; it is
    // then killed still frozen, so no client reconnecting meanwhile gets a session that would
    // outlive the listener (it would, once accepted) and ride through the outage.
    proc.signal('SIGSTOP');
    try {
      await Promise.all(this.sessions().map((s) => killTree(s)));
    } finally {
      await proc.kill9();
    }
  }

  /** Starts a stopped server again on its port (see stop()). */
  async start(): Promise<void> {
    if (this.#proc?.running) return;
    // A socket closing on the port may hold it for a moment: try again for a while.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#listenOn(this.#port);
      } catch (err) {
        if (attempt >= 50 || !this.#portTaken()) throw err;
        await sleep(100);
      }
    }
  }

  /**
   * The first start: on a reserved port (reserved-port.ts), kept across restarts. A port the
   * kernel hands out is in its ephemeral range, where another test file's bind(0) or outgoing
   * connection could take it while the server is stopped, and start() would then fail.
   */
  async #launch(): Promise<void> {
    this.#reserved = await startOnReservedPorts(
      1,
      (ports) => this.#listenOn(defined(ports[0], 'a reserved port')),
      () => this.#portTaken(),
    );
  }

  /** Whether the last start failed because its port was in use. */
  #portTaken(): boolean {
    return /Address already in use|Cannot bind any address/.test(this.#proc?.output ?? '');
  }

  async #listenOn(port: number): Promise<void> {
    const options = this.#options;
    // sshd insists on its privilege-separation dir; it is compiled in, so it cannot be ours.
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    // Without PAM, sshd refuses locked accounts ('!' password) even for keys; PAM's account
    // check does not. Prefer no PAM (fewer moving parts) unless an account needs it.
    const usePam = this.users.some((u) => isAccountLocked(u.username));
    this.#port = port;
    writeFileSync(
      this.configPath,
      [
        // sshd keeps the first value it reads, so callers' lines go first to win.
        ...(options.extraConfig ?? []),
        `ListenAddress ${this.host}`,
        `Port ${port}`,
        `HostKey ${this.#dir.join('host_ed25519')}`,
        `PidFile ${this.#dir.join('sshd.pid')}`,
        `UsePAM ${usePam ? 'yes' : 'no'}`,
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin no',
        'AuthorizedKeysFile .ssh/authorized_keys',
        'StrictModes yes',
        `MaxSessions ${options.maxSessions ?? 10}`,
        // Tests open many connections at once; OpenSSH's default 10:30:100 drops some.
        'MaxStartups 200',
        'Subsystem sftp internal-sftp',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    chmodSync(this.configPath, 0o600);
    const proc = new ManagedProcess({
      name: 'sshd',
      command: this.#sshdBin,
      args: ['-D', '-e', '-f', this.configPath],
    });
    this.#proc = proc;
    try {
      await proc.waitForOutput(
        `Server listening on ${this.host} port ${port}`,
        options.startTimeoutMs ?? 20_000,
      );
    } catch (err) {
      await proc.stop();
      throw err instanceof ServerStartError
        ? err
        : new ServerStartError('sshd', String(err), { cause: err });
    }
    writeFileSync(this.knownHostsPath, `[${this.host}]:${port} ${this.hostPublicKey}\n`);
  }

  /** Stops the server and its sessions, removes our authorized_keys lines and the temp dir. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    for (const u of this.users) {
      const line = this.#keyLines.get(u.username);
      if (line) await removeAuthorizedKey(u, line);
    }
    for (const r of this.#reserved) r.release();
    this.#dir[Symbol.dispose]();
  }
}

async function keygenOrThrow(keygen: string, path: string, comment: string): Promise<void> {
  const res = await runCommand(keygen, [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    comment,
    '-f',
    path,
  ]);
  if (res.code !== 0) {
    throw new ServerStartError('sshd', `ssh-keygen failed (${res.code}): ${res.stderr.trim()}`);
  }
}
