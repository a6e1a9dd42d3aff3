import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskSubmitted } from '@computepods/protocol';
import { defined, makeWheel, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendContext } from './backend.js';
import { Executor } from './executor.js';
import { LocalBackend } from './local-backend.js';
import { withEnvironment } from './task-environment.js';
import { RecordingHooks, testLocalResource } from './test-hooks.js';

const tmp = new TempDir('cp-task-env-');
const wheels = tmp.join('wheels');
const envs = tmp.join('tasks', 'envs');
afterAll(() => tmp[Symbol.dispose]());
beforeAll(async () => {
  mkdirSync(wheels);
  await makeWheel(wheels, 'cphello', '1.0', {
    '__init__.py': 'def greet():\n    return "hello from cphello"\n',
  });
});

// pip finds packages in the test's folder only: no network, no index.
const offline = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels, PIP_NO_CACHE_DIR: '1' };
const python = { default_version: '3.11', versions: { '3.11': '/usr/bin/python3' } };

function setup() {
  const resource = testLocalResource(tmp.path, 2, python);
  const makeBackend = (ctx: BackendContext) =>
    new LocalBackend({ resource, killGraceMs: 300 }, ctx);
  return new Executor({
    resource: 'local',
    backend: makeBackend,
    hooks: new RecordingHooks(),
    runner: 'test',
  });
}

let n = 0;
const task = (command: string, extra: Partial<TaskSubmitted> = {}): TaskSubmitted => ({
  taskId: `env${++n}-${process.pid}`,
  resource: 'local',
  command,
  cwd: tmp.path,
  env: offline,
  gpu: false,
  ...extra,
});

describe('task environments on the local resource (a real python3 -m venv, a wheel built here)', {
  timeout: 180_000,
}, () => {
  it('makes the environment once, with the package installed, and reuses it for the next tasks', async () => {
    const ex = setup();
    const environment = { requirements: ['cphello==1.0'] };
    const run = 'python -c "import cphello, sys; print(cphello.greet(), sys.prefix)"';
    // Two at once: one makes it, the other waits for it (flock), neither makes it twice.
    const first = [task(run, { environment }), task(run, { environment })];
    await Promise.all(first.map((t) => ex.submit(t)));
    const done = await Promise.all(first.map((t) => ex.wait(t.taskId)));
    expect(
      done.map((d) => d.state),
      done.map((d) => d.reason).join(' '),
    ).toEqual(['finished', 'finished']);
    const made = readdirSync(envs).filter((d) => !d.endsWith('.lock'));
    expect(made).toHaveLength(1);
    expect(made[0]).toMatch(/^py3\.11-[0-9a-f]{16}$/);
    for (const t of first)
      expect(await ex.logs(t.taskId)).toBe(
        `hello from cphello ${join(envs, defined(made[0], 'made[0]'))}\n`,
      );
    const makers = await Promise.all(first.map((t) => ex.logs(t.taskId, 'stderr')));
    expect(makers.filter((e) => e.includes('making the task environment'))).toHaveLength(1);

    const again = task(run, { environment: { python: '3.11', requirements: ['cphello==1.0'] } });
    await ex.submit(again);
    expect((await ex.wait(again.taskId)).state).toBe('finished');
    expect(await ex.logs(again.taskId, 'stderr')).not.toMatch(/making the task environment/);
    // without an environment: the runner's own python, where cphello is not installed
    const plain = task('python3 -c "import cphello"');
    await ex.submit(plain);
    expect((await ex.wait(plain.taskId)).state).toBe('failed');
    await ex.close();
  });

  it("fails a task whose environment cannot be made with pip's log, and one naming a version the resource lacks", async () => {
    const ex = setup();
    const missing = task('true', { environment: { requirements: ['cp-no-such-package==9.9'] } });
    const version = task('true', { environment: { python: '3.99', requirements: [] } });
    await Promise.all([ex.submit(missing), ex.submit(version)]);
    const [m, v] = await Promise.all([ex.wait(missing.taskId), ex.wait(version.taskId)]);
    expect(m).toMatchObject({ state: 'failed', exitCode: 97 });
    expect(m.reason).toMatch(/its environment could not be made/);
    const log = await ex.logs(missing.taskId, 'stderr');
    expect(log).toMatch(/No matching distribution found for cp-no-such-package==9\.9/);
    expect(log).toMatch(/could not make the task environment/);
    // the half-made environment is gone: the next task tries again
    const left = readdirSync(envs).filter((d) => !d.endsWith('.lock'));
    expect(left.every((d) => readdirSync(join(envs, d)).includes('.cp-ready'))).toBe(true);
    expect(v).toMatchObject({ state: 'failed' });
    expect(v.reason).toMatch(
      /environment\.python "3\.99" is not one of the resource's tasks_python_config versions \(3\.11\)/,
    );
    await ex.close();
  });

  it('quotes every value it puts in the script', () => {
    const script = withEnvironment(
      'echo ok',
      { requirements: ['pkg==1'] },
      { dir: "/x/it's here", python: { default_version: '3.11', versions: { '3.11': '/p y' } } },
    );
    expect(script).toContain("cp_env='/x/it'\\''s here/py3.11-");
    expect(script).toContain("'/p y' -m venv");
    expect(script).toContain("'pkg==1'");
    expect(script.endsWith('\necho ok')).toBe(true);
  });
});
