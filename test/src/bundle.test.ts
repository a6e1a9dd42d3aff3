import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NatsServer, runCommand, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, TOOLS } from '../../scripts/bundle.mjs';
import { bundleIsFresh } from '../../scripts/fresh-bundle.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCommand(process.execPath, args, { env: { ...process.env, ...env }, cwd: root });

/**
 * The one-file bundles the bins start from (scripts/bundle.mjs), built into a temp dir: they run
 * against a real nats-server, and the bins' freshness check refuses a bundle older than a source.
 */
describe('command-line bundles', () => {
  const dir = new TempDir('cp-bundle-');
  let nats: NatsServer;
  const cpctrl = dir.join('cpctrl.mjs');

  beforeAll(async () => {
    nats = await NatsServer.start();
    for (const tool of TOOLS)
      await bundle({ ...tool, outfile: dir.join(tool.outfile.split('/').pop()!) });
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('lists what went into a bundle, sources and lockfile included', () => {
    const inputs = JSON.parse(readFileSync(`${cpctrl}.inputs.json`, 'utf8')) as string[];
    expect(inputs).toEqual(
      expect.arrayContaining([
        join(root, 'apps/cpctrl/src/main.ts'),
        join(root, 'packages/protocol/src/index.ts'),
        join(root, 'pnpm-lock.yaml'),
      ]),
    );
  });

  it('runs cpctrl from its bundle against a real server: create a resource, list it as JSON', async () => {
    const env = {
      NATS_URL: nats.url,
      CP_PROJECT: 'bundled',
      CPCTRL_CONFIG: dir.join('cpctrl.json'),
    };
    const file = join(root, 'apps/cpctrl/src/fixtures/slurm_sudo.json');
    const created = await run([cpctrl, 'resource', 'create', '-f', file], env);
    expect(created.code, created.stderr).toBe(0);
    const listed = await run([cpctrl, '-o', 'json', 'resource', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ type: 'slurm_sudo', name: 'SLURM cluster' }),
    ]);
  });

  it('runs inotify2nats from its bundle: --help, and a missing setting named with what to do', async () => {
    const bin = dir.join('inotify2nats.mjs');
    const help = await run([bin, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: inotify2nats/);
    const bad = await run([bin, '--project', 'p', '--pod', 'x', '--root', dir.path], {
      NATS_URL: nats.url,
      INOTIFY2NATS_SSH: '',
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/missing ssh: give --ssh <user@host\[:port\]>/);
  });

  it('calls a bundle fresh only while it is newer than every input, all of them present', () => {
    const b = dir.join('tool.mjs');
    const inputs = [dir.join('a.ts'), dir.join('b.ts')];
    const url = pathToFileURL(b);
    for (const f of [b, ...inputs]) writeFileSync(f, '');
    const at = (f: string, seconds: number) => utimesSync(f, seconds, seconds);
    at(b, 2_000_000_000);
    for (const f of inputs) at(f, 1_900_000_000);
    expect(bundleIsFresh(url)).toBe(false); // no list of inputs yet
    writeFileSync(`${b}.inputs.json`, JSON.stringify(inputs));
    expect(bundleIsFresh(url)).toBe(true);
    at(inputs[1]!, 2_000_000_001);
    expect(bundleIsFresh(url)).toBe(false);
    at(inputs[1]!, 1_900_000_000);
    writeFileSync(`${b}.inputs.json`, JSON.stringify([...inputs, dir.join('gone.ts')]));
    expect(bundleIsFresh(url)).toBe(false);
    expect(bundleIsFresh(pathToFileURL(dir.join('never-built.mjs')))).toBe(false);
  });
});
