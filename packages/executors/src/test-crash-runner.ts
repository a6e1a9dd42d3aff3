import { fileURLToPath } from 'node:url';
import { ManagedProcess } from '@computepods/testkit';

const fixture = fileURLToPath(new URL('./crash-runner.fixture.ts', import.meta.url));
/** Where `--import tsx` resolves: the workspace's root. */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Test support for kill -9 tests: crash-runner.fixture.ts as a process of its own, named
 * `<name>-<mode>`, so the test can kill it as hard as a crash does. `start` submits the tasks
 * and prints "ready"; `recover` adopts what a killed one left and exits. `env` (the fixture's
 * CRASH_* settings) goes on top of this process's environment.
 */
export function crashRunner(
  name: string,
  mode: 'start' | 'recover',
  env: Record<string, string>,
): ManagedProcess {
  return new ManagedProcess({
    name: `${name}-${mode}`,
    command: process.execPath,
    args: ['--import', 'tsx', fixture, mode],
    cwd: repoRoot,
    env: { ...process.env, ...env },
  });
}
