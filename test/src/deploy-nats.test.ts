import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuthStore } from '@computepods/auth';
import { requireBinary, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The shipped nats-server configs (deploy/nats) are what a site runs: each, with the auth.conf
 * that `cpctrl creds server-config` writes and certificates beside it, is a configuration the
 * real nats-server accepts; none is open, and every one that leaves loopback speaks TLS.
 */
describe('deploy/nats configs', () => {
  const dir = new TempDir('cp-deploy-nats-');
  afterAll(() => dir[Symbol.dispose]());

  it('are valid for nats-server with the operator lines cpctrl writes, and secured', async () => {
    const bin = requireBinary(
      'nats-server',
      "install Debian's nats-server (bash scripts/setup does)",
    );
    await AuthStore.open(dir.join('auth'));
    const out = spawnSync(
      process.execPath,
      [join(root, 'apps/cpctrl/bin/cpctrl.js'), 'creds', 'server-config'],
      { cwd: root, env: { ...process.env, CP_AUTH_DIR: dir.join('auth') }, encoding: 'utf8' },
    );
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^operator: /m);
    expect(out.stdout).toMatch(/^resolver: \{ type: full/m);
    writeFileSync(dir.join('auth.conf'), out.stdout);
    mkdirSync(dir.join('tls'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        dir.join('tls/server.key'),
        '-out',
        dir.join('tls/server.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=cp-nats',
      ],
      { stdio: 'pipe' },
    );
    copyFileSync(dir.join('tls/server.pem'), dir.join('tls/ca.pem'));
    const confs = readdirSync(join(root, 'deploy/nats')).filter((f) => f.endsWith('.conf'));
    expect(confs.length).toBeGreaterThanOrEqual(4);
    for (const f of confs) {
      const text = readFileSync(join(root, 'deploy/nats', f), 'utf8');
      // Certificates are named absolutely (nats-server reads them from its working directory
      // otherwise): here they are in the temp dir.
      writeFileSync(dir.join(f), text.replaceAll('/etc/computepods/nats/', `${dir.path}/`));
      const t = spawnSync(bin, ['-c', dir.join(f), '-t'], { encoding: 'utf8' });
      expect(`${t.stdout}${t.stderr}`, `${f}: ${t.stdout}${t.stderr}`).toMatch(/is valid/);
      expect(text, `${f} must include the operator lines`).toMatch(/^include "auth.conf"/m);
      if (/listen: 0\.0\.0\.0/.test(text)) {
        expect(text, `${f} leaves loopback: clients must use TLS`).toMatch(/^tls \{/m);
        expect(text, `${f}: routes must use TLS`).toMatch(
          /cluster \{[\s\S]*tls \{[\s\S]*verify: true/,
        );
      }
    }
  });
});
