import { describe, expect, it } from 'vitest';
import { PIXI_NOT_SUPPORTED } from './environments.js';
import { parseResource, resourceWarning } from './resources.js';
import { TaskSubmitted } from './tasks.js';

// pixi is packaged neither for Debian nor on npm: no pixi environment can be made or tested
// here, so asking for one is refused saying so, and a resource's tasks_pixi_config (Fractal's
// JSON, accepted as written) is said to be unused.

const task = {
  taskId: 't1',
  resource: 'local',
  command: 'true',
  cwd: '/w',
  env: {},
  gpu: false,
};

const local = (pixi: Record<string, unknown>) =>
  parseResource({
    type: 'local',
    name: 'Local',
    tasks_local_dir: '/tmp/t',
    jobs_local_dir: '/tmp/j',
    jobs_runner_config: {},
    tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
    tasks_pixi_config: pixi,
  });

describe('pixi environments: not supported yet, said plainly', () => {
  it('a task asking for a pixi environment is refused, naming environment.pixi', () => {
    const r = TaskSubmitted.safeParse({ ...task, environment: { pixi: { environment: 'x' } } });
    expect(r.success).toBe(false);
    const issue = r.error?.issues[0];
    expect(issue?.path).toEqual(['environment', 'pixi']);
    expect(issue?.message).toBe(PIXI_NOT_SUPPORTED);
    expect(issue?.message).toMatch(/^pixi environments are not supported yet/);
    // A Python environment is still taken.
    expect(TaskSubmitted.safeParse({ ...task, environment: { python: '3.12' } }).success).toBe(
      true,
    );
  });

  it('a resource with tasks_pixi_config is accepted and warned about; {} says nothing', () => {
    const withPixi = local({
      versions: { '0.41.4': '/opt/pixi/0.41.4' },
      default_version: '0.41.4',
    });
    expect(resourceWarning(withPixi)).toBe(
      `tasks_pixi_config is accepted but not used: ${PIXI_NOT_SUPPORTED}`,
    );
    expect(resourceWarning(local({}))).toBeUndefined();
  });
});
