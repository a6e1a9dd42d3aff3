import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { busEnv, USAGE_ERROR, VERSION } from '@computepods/bus';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { bundle, SERVICES } from '../../scripts/bundle.mjs';
import { warm } from '../../scripts/warm-code-caches.mjs';
import { chefEnv } from '../../services/chef/src/config.js';
import { fsWatcherEnv } from '../../services/fswatcher/src/config.js';
import { majorDomoEnv } from '../../services/majordomo/src/config.js';
import { runnerEnv } from '../../services/runner/src/config.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const declared = {
  majordomo: majorDomoEnv,
  chef: chefEnv,
  runner: runnerEnv,
  fswatcher: fsWatcherEnv,
};

/** Runs a service's bin as a user does (its bundle, or its sources while the bundle is stale). */
async function bin(name: string, args: string[]) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [`services/${name}/bin/${name}.js`, ...args],
      {
        cwd: root,
        // Nothing listens here: a service that started instead of answering would only retry.
        env: { ...process.env, NATS_URL: 'nats://127.0.0.1:9' },
        timeout: 60_000,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * Each service answers `--help` (the variables it reads, from the declarations its README's
 * table comes from), `--version`, and refuses other arguments, without connecting anywhere;
 * so its code cache can be written at an image's build (scripts/warm-code-caches.mjs).
 */
describe('services on the command line', () => {
  const tmp = new TempDir('cp-program-help-');
  afterAll(() => tmp[Symbol.dispose]());

  for (const [name, env] of Object.entries(declared)) {
    it(`${name} --help -o json lists every variable it reads, and exits 0`, async () => {
      const got = await bin(name, ['--help', '-o', 'json']);
      expect(got.code, got.stderr).toBe(0);
      const json = JSON.parse(got.stdout);
      expect(json.program).toBe(name);
      expect(json.version).toBe(VERSION);
      const variables = json.env.map((v: { variable: string }) => v.variable);
      expect(variables).toEqual([...Object.keys(env), ...Object.keys(busEnv)]);
      expect(existsSync(`${root}${json.readme}`)).toBe(true);
    }, 90_000);
  }

  it('majordomo --help as text, --version, and a bad argument refused with exit 64', async () => {
    const text = await bin('majordomo', ['--help']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`majordomo ${VERSION}: `);
    expect(text.stdout).toMatch(/\n {2}CP_PROJECT {2}\(default: demo\)\n {6}\S/);
    expect(text.stdout).toContain('\n  NATS_URL  (default: nats://127.0.0.1:4222)\n');
    expect(text.stderr).toBe('');
    expect(await bin('majordomo', ['--version'])).toEqual({
      code: 0,
      stdout: `majordomo ${VERSION}\n`,
      stderr: '',
    });
    const bad = await bin('runner', ['--queue', 'x']);
    expect(bad.code).toBe(USAGE_ERROR);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(
      /^runner: Unknown option '--queue'\. .*runner --help lists the variables/,
    );
  }, 90_000);

  it('scripts/warm-code-caches.mjs leaves a fresh bundle with a usable code cache', async () => {
    const runner = SERVICES.find((s) => s.outfile.endsWith('/runner.mjs'));
    if (!runner) throw new Error('no runner in SERVICES');
    const outfile = tmp.join('runner.mjs');
    await bundle({ ...runner, outfile });
    expect(existsSync(tmp.join('runner.cjs.v8cache'))).toBe(false);
    const got = warm(outfile);
    expect(got, got.why).toMatchObject({ ok: true });
    expect(existsSync(tmp.join('runner.cjs.v8cache'))).toBe(true);
  }, 90_000);
});

describe('the version', () => {
  it('is the one every package.json of the workspace gives', () => {
    const manifests = [
      'package.json',
      ...['packages', 'apps', 'services'].flatMap((dir) =>
        readdirSync(join(root, dir)).map((name) => join(dir, name, 'package.json')),
      ),
    ].filter((file) => existsSync(join(root, file)));
    expect(manifests.length).toBeGreaterThan(15);
    for (const file of manifests) {
      const { version } = JSON.parse(readFileSync(join(root, file), 'utf8'));
      if (version !== undefined) expect(version, file).toBe(VERSION);
    }
  });
});
