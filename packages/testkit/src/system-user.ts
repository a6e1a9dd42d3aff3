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
import { MACHINE_TMP } from './machine-tmp.js';
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
 *
 * Test files run at once and each may create its accounts: useradd runs are serialised by a
 * lock across processes (concurrent ones for different names have left, on a fresh machine, an
 * account whose home belonged to a uid no account had, so sshd's StrictModes refused every key:
 * "bad ownership or modes for directory /home/cpuser"). A home not owned by its account is
 * given back to it (the test kit's own accounts only: the name is checked first).
 */
export async function ensureSystemUser(username: string): Promise<SystemUser> {
  if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(username)) {
    throw new Error(`not a safe user name: ${JSON.stringify(username)}`);
  }
  const user =
    (await lookup(username)) ??
    (await withDirLock(USERADD_LOCK, 'useradd', () => createUser(username)));
  ownHome(user);
  return user;
}

/** Serialises the test kit's useradd runs across processes (withDirLock). */
const USERADD_LOCK = join(MACHINE_TMP, 'cp-testkit-useradd.lock');

async function createUser(username: string): Promise<SystemUser> {
  const before = await lookup(username);
  if (before) return before;
  if (process.getuid?.() !== 0) {
    throw new Error(`user ${username} is missing and only root can create it; run tests as root`);
  }
  const useradd = which('useradd', HINT);
  const res = await runCommand(useradd, ['-m', '-s', '/bin/bash', '-p', '*', username]);
  // 9 = already exists: created by something other than the test kit meanwhile.
  if (res.code !== 0 && res.code !== 9) {
    throw new Error(`useradd ${username} failed (${res.code}): ${res.stderr.trim()}`);
  }
  const created = await lookup(username);
  if (!created) throw new Error(`user ${username} still missing after useradd`);
  return created;
}

/** The home (and its ~/.ssh, when there) owned by the account, as sshd's StrictModes wants. */
function ownHome(user: SystemUser): void {
  for (const dir of [user.home, join(user.home, '.ssh')]) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(dir);
    } catch {
      continue;
    }
    if (st.uid !== user.uid || st.gid !== user.gid) chownSync(dir, user.uid, user.gid);
  }
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
 * Runs `fn` holding a lock across processes: a directory made with mkdir (atomic), removed
 * after. A lock older than 10 s is from a crashed run. Several test files may edit one user's
 * authorized_keys, or create accounts, at once.
 */
async function withDirLock<T>(lock: string, what: string, fn: () => T | Promise<T>): Promise<T> {
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
      if (performance.now() > deadline) throw new Error(`${what} lock ${lock} held too long`);
      await sleep(10 + Math.random() * 20);
    }
  }
  try {
    return await fn();
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
  await withDirLock(join(sshDir, '.cp-testkit.lock'), 'authorized_keys', () =>
    rewrite(user, file, [...readLines(file), line.trim()]),
  );
}

/** Removes exactly the given line (matched whole), leaving others' keys in place. */
export async function removeAuthorizedKey(user: SystemUser, line: string): Promise<void> {
  const sshDir = join(user.home, '.ssh');
  const file = join(sshDir, 'authorized_keys');
  if (!existsSync(file)) return;
  await withDirLock(join(sshDir, '.cp-testkit.lock'), 'authorized_keys', () =>
    rewrite(
      user,
      file,
      readLines(file).filter((l) => l !== line.trim()),
    ),
  );
}
