import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand } from './run-command.js';
import { which } from './which.js';

export interface SystemUser {
  readonly username: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

const HINT = 'install passwd and sudo (bash scripts/setup does); the test kit runs as root';

async function lookup(username: string): Promise<SystemUser | undefined> {
  const res = await runCommand('getent', ['passwd', username]);
  if (res.code !== 0) return undefined;
  const [, , uid, gid, , home] = res.stdout.trim().split(':');
  if (!uid || !gid || !home) return undefined;
  return { username, uid: Number(uid), gid: Number(gid), home };
}

/**
 * Returns the local account, creating it when missing. The password field is '*' rather than
 * useradd's locking '!': with `UsePAM no` sshd refuses key logins to locked accounts.
 */
export async function ensureSystemUser(username: string): Promise<SystemUser> {
  if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(username)) {
    throw new Error(`not a safe user name: ${JSON.stringify(username)}`);
  }
  const found = await lookup(username);
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error(`user ${username} is missing and only root can create it; run tests as root`);
  }
  const useradd = which('useradd', HINT);
  const res = await runCommand(useradd, ['-m', '-s', '/bin/bash', '-p', '*', username]);
  // 9 = already exists: another test file created it at the same moment.
  if (res.code !== 0 && res.code !== 9) {
    throw new Error(`useradd ${username} failed (${res.code}): ${res.stderr.trim()}`);
  }
  const created = await lookup(username);
  if (!created) throw new Error(`user ${username} still missing after useradd`);
  return created;
}

/** True when the account's password field locks it ('!'), which sshd honours without PAM. */
export function isAccountLocked(username: string): boolean {
  try {
    const line = readFileSync('/etc/shadow', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${username}:`));
    return line?.split(':')[1]?.startsWith('!') ?? false;
  } catch {
    return false;
  }
}

/**
 * Several test files may edit one user's authorized_keys at once; a mkdir lock serialises the
 * read-modify-rename so no file's key is lost. A lock older than 10 s is from a crashed run.
 */
async function withKeysLock<T>(sshDir: string, fn: () => T): Promise<T> {
  const lock = join(sshDir, '.cp-testkit.lock');
  const deadline = performance.now() + 15_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10_000) rmdirSync(lock);
      } catch {
        // gone already
      }
      if (performance.now() > deadline)
        throw new Error(`authorized_keys lock ${lock} held too long`);
      await sleep(10 + Math.random() * 20);
    }
  }
  try {
    return fn();
  } finally {
    rmdirSync(lock);
  }
}

function rewrite(user: SystemUser, file: string, lines: string[]): void {
  const tmp = `${file}.cp-testkit-${process.pid}`;
  writeFileSync(tmp, lines.length ? `${lines.join('\n')}\n` : '', { mode: 0o600 });
  chownSync(tmp, user.uid, user.gid);
  renameSync(tmp, file);
}

function readLines(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
}

/** Appends a key line, keeping every line already there; ~/.ssh gets the modes StrictModes wants. */
export async function addAuthorizedKey(user: SystemUser, line: string): Promise<void> {
  const sshDir = join(user.home, '.ssh');
  if (!existsSync(sshDir)) {
    mkdirSync(sshDir, { mode: 0o700 });
    chownSync(sshDir, user.uid, user.gid);
  }
  const file = join(sshDir, 'authorized_keys');
  await withKeysLock(sshDir, () => rewrite(user, file, [...readLines(file), line.trim()]));
}

/** Removes exactly the given line (matched whole), leaving others' keys in place. */
export async function removeAuthorizedKey(user: SystemUser, line: string): Promise<void> {
  const sshDir = join(user.home, '.ssh');
  const file = join(sshDir, 'authorized_keys');
  if (!existsSync(file)) return;
  await withKeysLock(sshDir, () =>
    rewrite(
      user,
      file,
      readLines(file).filter((l) => l !== line.trim()),
    ),
  );
}
