import { type KubernetesResource, parseResource } from '@computepods/protocol';
import { KubeApi, type KubeApiOptions, type TempDir } from '@computepods/testkit';
import { afterAll, beforeAll } from 'vitest';
import { type BackendTuning, createExecutor } from './create-executor.js';
import type { Executor } from './executor.js';
import { kubernetesHandle } from './handle.js';
import { RecordingHooks } from './test-hooks.js';

type KubeJob = ReturnType<KubeApi['jobs']>[number];

/** A test file's KubeApi stand-in (testKubeApi), once its beforeAll has run. */
export interface TestKubeApi {
  readonly api: KubeApi;
  /** A kubeconfig that reaches the stand-in with its token, in the file's temp dir. */
  readonly kubeconfig: string;
  /**
   * A kubernetes resource as a site writes it (parseResource's input): Jobs of
   * debian:bookworm-slim in the stand-in's namespace, reached through `kubeconfig` (the
   * stand-in's own unless given), polled without delay.
   */
  resourceJson(o: {
    id: string;
    name: string;
    jobsDir: string;
    kubeconfig?: string;
  }): Record<string, unknown>;
  /** The Job the stand-in holds for task `taskId` of `ex`: none before its create or after its delete. */
  jobOf(ex: Executor, taskId: string): KubeJob | undefined;
}

/**
 * Starts the KubeApi stand-in for the test file (beforeAll; `options` as KubeApi.start takes
 * them) and writes a kubeconfig for it into `tmp`; stops it and removes `tmp` after (afterAll).
 * Vitest runs afterAll hooks last-registered first (sequence.hooks 'stack', its default): a
 * file's own afterAll (closing its executors) runs before this one, while the stand-in answers.
 */
export function testKubeApi(
  tmp: TempDir,
  options: KubeApiOptions & { namespace: string },
): TestKubeApi {
  let api: KubeApi | undefined;
  let kubeconfig: string | undefined;
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the KubeApi stand-in is used before its beforeAll ran');
    return v;
  };
  beforeAll(async () => {
    api = await KubeApi.start(options);
    kubeconfig = api.writeKubeconfig(tmp.join('kubeconfig'));
  });
  afterAll(async () => {
    await api?.stop();
    tmp[Symbol.dispose]();
  });
  return {
    get api() {
      return started(api);
    },
    get kubeconfig() {
      return started(kubeconfig);
    },
    resourceJson: (o) => ({
      type: 'kubernetes',
      name: o.name,
      id: o.id,
      namespace: options.namespace,
      kubeconfig_path: o.kubeconfig ?? started(kubeconfig),
      jobs_local_dir: o.jobsDir,
      jobs_poll_interval: 0,
      jobs_runner_config: { image: 'debian:bookworm-slim' },
    }),
    jobOf(ex, taskId) {
      const h = kubernetesHandle(ex.get(taskId)?.handle);
      return (
        h &&
        started(api)
          .jobs()
          .find((j) => j.metadata.name === h.jobName)
      );
    },
  };
}

/** The kubernetes profile of these tests: its Jobs' pods run as `serviceAccount`. */
export function kubeProfile(serviceAccount = 'computepods-runner') {
  return {
    resource_type: 'kubernetes' as const,
    name: 'K8s account',
    service_account: serviceAccount,
  };
}

/**
 * An executor (RecordingHooks, runner "test") on the kubernetes resource `resourceJson`, its
 * Jobs in Kueue queue `queue`, polled every 100 ms, a failed API call tried once more soon
 * after (the stand-in answers at once); `tuning` adds to those (kubernetesStaging...).
 */
export function kubeExecutor(
  resourceJson: Record<string, unknown>,
  profile: ReturnType<typeof kubeProfile>,
  queue: string,
  tuning: BackendTuning = {},
) {
  const hooks = new RecordingHooks();
  const ex = createExecutor({
    resource: parseResource(resourceJson) as KubernetesResource,
    profile,
    hooks,
    queue,
    runner: 'test',
    backendOptions: { pollMs: 100, retry: { attempts: 2, baseMs: 50, maxMs: 100 }, ...tuning },
  });
  return { hooks, ex };
}
