import { mkdirSync, writeFileSync } from 'node:fs';
import { Bus, createLogger } from '@computepods/bus';
import { buckets, subjects, TaskRecord } from '@computepods/protocol';
import { KubeApi, NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRunner, startRunner } from './runner.js';

/*
 * The runner on a kubernetes resource, end to end: a task published on the queue's subject
 * over a real nats-server runs as a Job on KubeApi (the test kit's STAND-IN for a Kubernetes
 * API server; its Jobs' commands run as local processes), and its record ends in KV.
 */

const P = 'runnerk8s';

describe('runner on a kubernetes resource (KubeApi stand-in) over a real nats-server', () => {
  let nats: NatsServer;
  let kube: KubeApi;
  let bus: Bus;
  let runner: RunningRunner;
  const dir = new TempDir('cp-runner-k8s-');
  const logger = createLogger('runner-k8s-test');
  logger.level = 'silent';
  const ws = dir.join('ws');

  beforeAll(async () => {
    mkdirSync(ws);
    kube = await KubeApi.start({ namespace: 'builds' });
    writeFileSync(
      dir.join('resource.json'),
      JSON.stringify({
        type: 'kubernetes',
        name: 'Cluster',
        id: 'cluster',
        namespace: 'builds',
        kubeconfig_path: kube.writeKubeconfig(dir.join('kubeconfig')),
        jobs_local_dir: dir.join('jobs'),
        jobs_poll_interval: 0.2,
        jobs_runner_config: { image: 'debian:bookworm-slim' },
      }),
    );
    writeFileSync(
      dir.join('profile.json'),
      JSON.stringify({ resource_type: 'kubernetes', name: 'CI', service_account: 'builder' }),
    );
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    runner = await startRunner(bus, {
      project: P,
      resource: 'cluster',
      queue: 'gpu-team',
      runnerId: 'r1',
      stateDir: dir.join('state'),
      parallel: 2,
      intake: 16,
      workspaceRoots: [ws],
      resourceFile: dir.join('resource.json'),
      profileFile: dir.join('profile.json'),
    });
  });
  afterAll(async () => {
    await runner?.stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    await kube?.stop();
    dir[Symbol.dispose]();
  });

  it('runs a task from the queue as a Job labelled with the queue, and records its end', async () => {
    const task = {
      taskId: 'k-1',
      resource: 'cluster',
      command: 'echo built; exit 0',
      cwd: ws,
      env: {},
      gpu: false,
    };
    await bus.publish('task.submitted', subjects.tasks(P, 'gpu-team'), task);
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    let rec: TaskRecord | undefined;
    await until(async () => {
      rec = (await kv.get('k-1'))?.value;
      return rec !== undefined && ['finished', 'failed', 'killed'].includes(rec.state);
    }, 'task k-1 ended');
    expect(rec?.state, rec?.reason).toBe('finished');
    expect(rec?.exitCode).toBe(0);
    expect(rec?.queue).toBe('gpu-team');
    expect(await runner.executor.logs('k-1')).toBe('built\n');
    const job = kube.jobs().find((j) => j.metadata.uid === rec?.jobId);
    expect(job?.metadata.labels?.['kueue.x-k8s.io/queue-name']).toBe('gpu-team');
    expect(kube.invalidResponses).toEqual([]);
  });
});
