import { join } from 'node:path';
import type { Resource } from '@computepods/protocol';

/**
 * Where a local runner's task folders go: `<jobs_local_dir>/projects/<project>/<task id>/`. A
 * folder is named by its task id, and ids are unique only within a project: two projects' runners
 * given one jobs_local_dir (one CP_STATE_DIR; pnpm bench e2e's LaTeX part, a paper built in two
 * projects, gets the same build and task ids in both) ran a task of one id in one folder, the
 * second emptying the first's files while it ran (task-id-again.test). A pilot worker keeps
 * `<jobs_local_dir>/<task id>/`: its folder is its pilot's, of one project, and the pilot's sweep
 * reads its tasks there (pilot-sweep.ts). Undefined: the resource's own (not local, or a pilot).
 */
export function localJobsDir(
  resource: Resource,
  project: string,
  pilotWorker: boolean,
): string | undefined {
  if (resource.type !== 'local' || pilotWorker) return undefined;
  return join(resource.jobs_local_dir, 'projects', project);
}
