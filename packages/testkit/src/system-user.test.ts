import { chownSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addAuthorizedKey, ensureSystemUser } from './system-user.js';

/**
 * The test kit's local accounts (root only, as CI runs). A fresh machine once had cpuser's home
 * owned by a uid no account had (concurrent useradd runs of several test files), and sshd's
 * StrictModes refused every key of that account from then on.
 */
describe.runIf(process.getuid?.() === 0)('ensureSystemUser', () => {
  it('gives an account back a home (and ~/.ssh) that another uid owns', async () => {
    const user = await ensureSystemUser('cptk-home');
    await addAuthorizedKey(user, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8testkeyonly cptk');
    const ssh = join(user.home, '.ssh');
    chownSync(user.home, 65534, 65534);
    chownSync(ssh, 65534, 65534);
    const again = await ensureSystemUser('cptk-home');
    expect(again).toEqual(user);
    for (const dir of [user.home, ssh])
      expect([statSync(dir).uid, statSync(dir).gid]).toEqual([user.uid, user.gid]);
  });

  it('creates accounts asked for at once, each once, each home its own', async () => {
    const names = ['cptk-a', 'cptk-b', 'cptk-c', 'cptk-a', 'cptk-b', 'cptk-c'];
    const users = await Promise.all(names.map((n) => ensureSystemUser(n)));
    const uids = new Map(users.map((u) => [u.username, u.uid]));
    expect(uids.size).toBe(3);
    for (const u of users) {
      expect(u.uid).toBe(uids.get(u.username));
      expect(statSync(u.home).uid).toBe(u.uid);
    }
  });
});
