import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { TempDir } from './temp-dir.js';
import { until } from './until.js';

const tmp = new TempDir('cp-managed-');
afterAll(() => tmp[Symbol.dispose]());

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

it('stops the children a process did not dispose when that process exits, as a script that throws does', async () => {
  // A script that starts a child and then throws at its top level (a bench whose scenario
  // failed): node exits at once, and the child must not run on.
  const script = tmp.join('throws.mts');
  writeFileSync(
    script,
    [
      `import { ManagedProcess } from ${JSON.stringify(fileURLToPath(new URL('./process.js', import.meta.url)))};`,
      `const child = new ManagedProcess({ name: 'sleeper', command: 'sleep', args: ['300'] });`,
      "console.log('pid', child.pid);",
      `throw new Error('the scenario failed');`,
    ].join('\n'),
  );
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' });
  expect(run.status).not.toBe(0);
  expect(run.stderr).toContain('the scenario failed');
  const pid = Number(/pid (\d+)/.exec(run.stdout)?.[1]);
  expect(pid).toBeGreaterThan(0);
  await until(() => !alive(pid), 'the child stopped', 10_000);
});
