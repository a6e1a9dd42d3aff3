// A runner process for crash tests: `start` submits the tasks in CRASH_TASKS and prints
// "ready" once CRASH_READY says so; the test then kills it with SIGKILL. `recover` adopts the
// records left behind, waits until every task ended, prints "done" and exits.
import { existsSync } from 'node:fs';
import { parseResource, type Resource, type TaskSubmitted } from '@computepods/protocol';
import { defined } from '@computepods/testkit';
import { createExecutor } from './create-executor.js';
import { LoopLiveness } from './liveness.js';
import { FileHooks } from './test-file-hooks.js';

const [mode] = process.argv.slice(2);
const env = process.env;
// CRASH_HOLD_RUNNING=id: the starting runner never gets that task's running record written.
const hooks = new FileHooks(
  defined(env.CRASH_RECORDS, 'env.CRASH_RECORDS'),
  mode === 'start' ? env.CRASH_HOLD_RUNNING : undefined,
);
// CRASH_LIVENESS=1: queued tasks start before their running record (liveness.ts).
const liveness = env.CRASH_LIVENESS ? new LoopLiveness({ stallMs: 5_000 }) : undefined;
const resource = parseResource(
  JSON.parse(defined(env.CRASH_RESOURCE, 'env.CRASH_RESOURCE')),
) as Resource;
const ex = createExecutor({
  resource,
  profile: env.CRASH_PROFILE ? JSON.parse(env.CRASH_PROFILE) : undefined,
  hooks,
  clientEnv: env.CRASH_CLIENT_ENV ? JSON.parse(env.CRASH_CLIENT_ENV) : undefined,
  backendOptions: {
    pollMs: env.CRASH_POLL_MS ? Number(env.CRASH_POLL_MS) : 300,
    batchWindowMs: 200,
    retry: { attempts: 3, baseMs: 100, maxMs: 500 },
    ...(env.CRASH_K8S_STAGING ? { kubernetesStaging: JSON.parse(env.CRASH_K8S_STAGING) } : {}),
    // {okMs, failedMs}: how long ended job folders / Jobs are kept (default DEFAULT_KEEP).
    ...(env.CRASH_KEEP ? { keep: JSON.parse(env.CRASH_KEEP) } : {}),
    ...(liveness ? { liveness } : {}),
  },
});

if (mode === 'start') {
  const tasks = JSON.parse(defined(env.CRASH_TASKS, 'env.CRASH_TASKS')) as TaskSubmitted[];
  for (const t of tasks) await ex.submit(t);
  // "id:state,id:state": print ready once every listed task is in its state.
  const want = (env.CRASH_READY ?? '')
    .split(',')
    .filter(Boolean)
    .map((p) => p.split(':'));
  // CRASH_READY_FILE: and once that file exists.
  const file = env.CRASH_READY_FILE;
  for (;;) {
    if (
      want.every(([id, state]) => ex.get(defined(id, 'id'))?.state === state) &&
      (!file || existsSync(file))
    )
      break;
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log('ready');
  await new Promise(() => {});
} else {
  const records = hooks.load();
  await ex.adopt(records);
  await Promise.all(records.map((r) => ex.wait(r.task.taskId)));
  await ex.close();
  console.log('done');
  process.exit(0);
}
