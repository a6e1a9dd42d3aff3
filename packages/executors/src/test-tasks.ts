import type { TaskSubmitted } from '@computepods/protocol';

/**
 * Test support: a maker of tasks on `resource`, run in `cwd` with no environment of their own,
 * numbered in the order made: `<prefix><n>-<pid>`, so that ids stay apart in the resource's
 * folders and in a KubeApi stand-in when test files run at once. `extra` overrides any field.
 */
export function numberedTasks(prefix: string, resource: string, cwd: string) {
  let n = 0;
  return (command: string, extra: Partial<TaskSubmitted> = {}): TaskSubmitted => {
    n++;
    return {
      taskId: `${prefix}${n}-${process.pid}`,
      resource,
      command,
      cwd,
      env: {},
      gpu: false,
      ...extra,
    };
  };
}
