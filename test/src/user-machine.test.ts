import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { quietLogger } from '@computepods/bus';
import { resolveSettings, startDaemon } from '@computepods/inotify2nats';
import { Sshd, sha256, startTogether } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The whole path from a person's machine: inotify2nats copies a saved file into the pod's
 * workspace over a real sshd, announces it on a real nats-server, and MajorDomo, the chef and the
 * runner (real processes, no fswatcher in the pod) rebuild the artefact from it.
 */
describe('user machine → inotify2nats → pod → rebuilt artefact', () => {
  let stack: Stack;
  let sshd: Sshd;

  beforeAll(async () => {
    [stack, sshd] = await startTogether([Stack.start('laptop'), Sshd.start({ users: ['cpuser'] })]);
    // The pod's SSH user writes into the workspace the services use.
    chmodSync(stack.dir.path, 0o755);
    chmodSync(stack.workspace, 0o777);
    await Promise.all([
      stack.start('majordomo'),
      stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: 'generic' }),
      stack.start('runner'),
    ]);
  }, 180_000);
  afterAll(async () => {
    await Promise.allSettled([stack?.[Symbol.asyncDispose](), sshd?.[Symbol.asyncDispose]()]);
  });

  it('builds out/u.upper in the pod from src/u.txt saved on the user side, and rebuilds on edit', async () => {
    const local = stack.dir.join('laptop');
    const save = (rel: string, text: string) => {
      mkdirSync(dirname(join(local, rel)), { recursive: true });
      writeFileSync(join(local, rel), text);
    };
    save('src/u.txt', 'from the laptop\n');
    const user = sshd.user('cpuser');
    const logger = quietLogger('inotify2nats-test');
    const daemon = await startDaemon(
      resolveSettings({
        cli: {
          project: stack.project,
          pod: 'laptop',
          root: local,
          ssh: `cpuser@127.0.0.1:${sshd.port}`,
          key: user.privateKeyPath,
          knownHosts: sshd.knownHostsPath,
          remoteRoot: stack.workspace,
          stateDir: stack.dir.join('i2n-state'),
          nats: stack.nats.url,
          // The laptop's own credentials: it may announce pod "laptop"'s files and nothing else.
          creds: await stack.creds({ role: 'inotify2nats', scope: 'laptop' }),
        },
        env: {},
        cwd: repo,
        home: homedir(),
      }),
      { logger },
    );
    try {
      const built = await stack.until('out/u.upper');
      expect(built.sha256).toBe(sha256('FROM THE LAPTOP\n'));
      expect(readFileSync(join(stack.workspace, 'out/u.upper'), 'utf8')).toBe('FROM THE LAPTOP\n');
      // Saved on the laptop, uploaded into the pod, built there: both hold that hash.
      expect((await stack.artefact('src/u.txt'))?.pods).toEqual(['laptop', 'pod-test']);

      save('src/u.txt', 'edited on the laptop\n');
      await stack.until(
        'out/u.upper',
        (a) => a.status === 'up_to_date' && a.sha256 === sha256('EDITED ON THE LAPTOP\n'),
      );
    } finally {
      await daemon.stop();
    }
  });
});
