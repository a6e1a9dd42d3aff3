// The Kubernetes part of `pnpm bench runner`: what the kubernetes backend costs a task against
// KubeApi, the test kit's STAND-IN for an API server (HTTPS, every object schema-checked; its
// pods are local processes: no scheduler, image pull or kubelet latency of a real cluster, so
// these are ComputePods' own costs over the API, not a cluster's). The named peer is the same
// command on the local backend, measured in the same run. Rows: one task at a time (submit to
// finished) and a batch at once, on the plain stand-in; then, on an isolated one (own mount
// namespace and root per container, kube-container.ts), a task without files against one whose
// 100 kB input and output are staged through the runner's stage server (init container +
// curl, then the output sent back): staging's own cost. The batch runs on a fresh stand-in.
// Poll interval 100 ms for both backends.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createExecutor, Executor, type ExecutorHooks, LocalBackend } from '@computepods/executors';
import {
  type KubernetesResource,
  type LocalResource,
  parseResource,
  type TaskSubmitted,
} from '@computepods/protocol';
import { KubeApi, makeTestCa, makeTestCertificate, type TempDir } from '@computepods/testkit';
import { percentile } from '../lib/report.js';

const noHooks: ExecutorHooks = { record: async () => {}, publish: () => {} };
const POLL_MS = 100;

export interface KubernetesFigures {
  readonly rows: (string | number)[][];
  readonly figures: Record<string, number>;
}

const p = (xs: number[], q: number) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    q,
  );

export async function kubernetesCosts(
  tmp: TempDir,
  rounds: number,
  batch: number,
): Promise<KubernetesFigures> {
  const ws = tmp.join('k8s-ws');
  mkdirSync(ws, { recursive: true });
  writeFileSync(`${ws}/in.bin`, randomBytes(100_000));
  const ca = makeTestCa(tmp.join('k8s-ca'), 'cp-bench-k8s-ca');
  const cert = makeTestCertificate(ca, tmp.join('k8s-ca'), '127.0.0.1');
  await using plainApi = await KubeApi.start({ namespace: 'bench' });
  await using isolatedApi = await KubeApi.start({ namespace: 'bench', isolatePods: true });
  const kubeExecutor = (api: KubeApi, name: string) =>
    createExecutor({
      resource: parseResource({
        type: 'kubernetes',
        name: `bench ${name}`,
        id: 'k8s',
        namespace: 'bench',
        kubeconfig_path: api.writeKubeconfig(tmp.join(`kubeconfig-${name}`)),
        jobs_local_dir: tmp.join(`k8s-jobs-${name}`),
        jobs_poll_interval: 0,
        jobs_runner_config: { image: 'debian:bookworm-slim' },
      }) as KubernetesResource,
      profile: { resource_type: 'kubernetes', name: 'bench', service_account: 'bench' },
      hooks: noHooks,
      queue: 'bench',
      runner: 'bench',
      backendOptions: {
        pollMs: POLL_MS,
        kubernetesStaging: {
          host: '127.0.0.1',
          port: 0,
          certFile: cert.cert,
          keyFile: cert.key,
          caFile: ca.ca,
        },
      },
    });
  const local = new Executor({
    resource: 'local',
    backend: (ctx) =>
      new LocalBackend(
        {
          resource: parseResource({
            type: 'local',
            name: 'k8s bench peer',
            jobs_local_dir: tmp.join('k8s-local-jobs'),
            jobs_runner_config: { parallel_tasks_per_job: 2 },
            jobs_poll_interval: 0,
            tasks_local_dir: tmp.join('k8s-local-tasks'),
            tasks_python_config: {
              default_version: '3.11',
              versions: { '3.11': '/usr/bin/python3' },
            },
            tasks_pixi_config: {},
          }) as LocalResource,
          pollMs: POLL_MS,
        },
        ctx,
      ),
    hooks: noHooks,
  });
  const plain = kubeExecutor(plainApi, 'plain');
  const isolated = kubeExecutor(isolatedApi, 'isolated');
  let n = 0;
  const mk = (resource: string, command: string, files?: TaskSubmitted['files']) => ({
    taskId: `k8s-bench-${++n}`,
    resource,
    command,
    cwd: ws,
    env: {},
    gpu: false,
    ...(files ? { files } : {}),
  });
  const one = async (ex: Executor, t: TaskSubmitted): Promise<number> => {
    const t0 = performance.now();
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    if (rec.state !== 'finished') throw new Error(`kubernetes bench task failed: ${rec.reason}`);
    return performance.now() - t0;
  };
  const staged = { inputs: ['in.bin'], outputs: ['out.bin'], auxiliaries: [] };
  const stagedCmd = 'cp in.bin out.bin';
  // Warm each path once (client import, TLS session, the sandbox's first mounts).
  await one(local, mk('local', 'true'));
  await one(plain, mk('k8s', 'true'));
  await one(isolated, mk('k8s', 'true'));
  await one(isolated, mk('k8s', stagedCmd, staged));
  const localMs: number[] = [];
  const k8sMs: number[] = [];
  const isoMs: number[] = [];
  const stagedMs: number[] = [];
  const requestsBefore = plainApi.requests.length;
  // Alternating, so a change of machine load falls on every path alike.
  for (let i = 0; i < rounds; i++) {
    localMs.push(await one(local, mk('local', 'true')));
    k8sMs.push(await one(plain, mk('k8s', 'true')));
    isoMs.push(await one(isolated, mk('k8s', 'true')));
    stagedMs.push(await one(isolated, mk('k8s', stagedCmd, staged)));
  }
  const requestsPerTask = (plainApi.requests.length - requestsBefore) / rounds;
  const atOnce = async (ex: Executor, resource: string): Promise<number> => {
    const ts = Array.from({ length: batch }, () => mk(resource, 'true'));
    const t0 = performance.now();
    for (const t of ts) await ex.submit(t);
    for (const t of ts) {
      const rec = await ex.wait(t.taskId);
      if (rec.state !== 'finished') throw new Error(`kubernetes bench task failed: ${rec.reason}`);
    }
    return (performance.now() - t0) / 1000;
  };
  await Promise.all([plain.close(), isolated.close()]);
  // A fresh stand-in for the batch: it schema-checks every object of each list it answers,
  // and the rounds above left some hundred Jobs and Pods in the first one.
  await using batchApi = await KubeApi.start({ namespace: 'bench' });
  const batchEx = kubeExecutor(batchApi, 'batch');
  const localBatchS = await atOnce(local, 'local');
  const k8sBatchS = await atOnce(batchEx, 'k8s');
  await Promise.all([local.close(), batchEx.close()]);
  const figures = {
    k8s_rounds: rounds,
    k8s_poll_ms: POLL_MS,
    k8s_one_task_p50_ms: p(k8sMs, 50),
    k8s_one_task_p99_ms: p(k8sMs, 99),
    k8s_local_peer_one_task_p50_ms: p(localMs, 50),
    k8s_one_task_over_local: p(k8sMs, 50) / p(localMs, 50),
    k8s_api_requests_per_task: requestsPerTask,
    k8s_isolated_one_task_p50_ms: p(isoMs, 50),
    k8s_staged_one_task_p50_ms: p(stagedMs, 50),
    k8s_staged_one_task_p99_ms: p(stagedMs, 99),
    k8s_staged_over_isolated: p(stagedMs, 50) / p(isoMs, 50),
    k8s_batch_tasks: batch,
    k8s_batch_wall_s: k8sBatchS,
    k8s_batch_tasks_per_s: batch / k8sBatchS,
    k8s_local_peer_batch_wall_s: localBatchS,
    k8s_batch_over_local: k8sBatchS / localBatchS,
  };
  return {
    rows: [
      ['local backend (peer), `true`', rounds, p(localMs, 50), p(localMs, 99)],
      ['kubernetes stand-in, `true`', rounds, p(k8sMs, 50), p(k8sMs, 99)],
      ['kubernetes stand-in, isolated pod, `true`', rounds, p(isoMs, 50), p(isoMs, 99)],
      [
        'kubernetes stand-in, isolated pod, 100 kB in + out staged',
        rounds,
        p(stagedMs, 50),
        p(stagedMs, 99),
      ],
      [`local backend (peer), ${batch} at once: wall ms`, batch, localBatchS * 1000, '-'],
      [`kubernetes stand-in, ${batch} at once: wall ms`, batch, k8sBatchS * 1000, '-'],
    ],
    figures,
  };
}
