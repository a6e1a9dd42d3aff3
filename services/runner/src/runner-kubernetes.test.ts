import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Bus, decode, quietLogger } from '@computepods/bus';
import { KubernetesHandle } from '@computepods/executors';
import { buckets, subjects, TaskRecord } from '@computepods/protocol';
import {
  KubeApi,
  makeTestCa,
  makeTestCertificate,
  NatsServer,
  privateWorkspace,
  TempDir,
  until,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubernetesStagingOf, type RunnerConfig } from './config.js';
import { type RunningRunner, startRunner } from './runner.js';

/*
 * The runner on a kubernetes resource, end to end: a task published on the queue's subject
 * over a real nats-server runs as a Job on KubeApi (the test kit's STAND-IN for a Kubernetes
 * API server; its Jobs' commands run as local processes, here isolated: a pod sees none of
 * this machine's files), and its record ends in KV. A task with declared files is staged
 * through the runner's stage server (CP_K8S_STAGE_*), and a running pod's log reaches the
 * task-log subject before the task ends.
 */

const P = 'runnerk8s';

describe('runner on a kubernetes resource (KubeApi stand-in) over a real nats-server', () => {
  let nats: NatsServer;
  let kube: KubeApi;
  let bus: Bus;
  let runner: RunningRunner;
  let config: RunnerConfig;
  const dir = new TempDir('cp-runner-k8s-');
  const logger = quietLogger('runner-k8s-test');
  const ws = dir.join('ws');
  // The pod asks for this and waits for the answer: it goes on once the test has seen its log.
  let gate: Server;
  let gateUrl = '';
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    privateWorkspace(ws);
    gate = createServer((_req, res) => held.push(res));
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', () => r()));
    gateUrl = `http://127.0.0.1:${(gate.address() as AddressInfo).port}/`;
    const ca = makeTestCa(dir.join('ca'), 'cp-runner-k8s-ca');
    const cert = makeTestCertificate(ca, dir.join('ca'), '127.0.0.1');
    kube = await KubeApi.start({ namespace: 'builds', isolatePods: true });
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
    config = {
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
      kubernetesStaging: kubernetesStagingOf({
        CP_K8S_STAGE_LISTEN: '127.0.0.1:0',
        CP_K8S_STAGE_TLS_CERT: cert.cert,
        CP_K8S_STAGE_TLS_KEY: cert.key,
        CP_K8S_STAGE_CA: ca.ca,
      }),
    };
    runner = await startRunner(bus, config);
  });
  afterAll(async () => {
    await runner?.stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    for (const res of held) res.end();
    gate?.close();
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

  it('stages a task that declares files: its log is published while it runs, its outputs come back', async () => {
    writeFileSync(`${ws}/in.txt`, 'from the workspace\n');
    const task = {
      taskId: 'k-2',
      resource: 'cluster',
      command: `echo started; curl -s ${gateUrl} >/dev/null; tr a-z A-Z < in.txt > out.txt; echo done`,
      cwd: ws,
      env: {},
      gpu: false,
      files: { inputs: ['in.txt'], outputs: ['out.txt'], auxiliaries: [] },
    };
    const seen: string[] = [];
    const sub = bus.nc.subscribe(subjects.taskLog(P, 'gpu-team', 'k-2', 'stdout'), {
      callback: (_err, m) => {
        const chunk = decode(m.data, ['task.log'], P).body;
        seen.push(Buffer.from(chunk.data, 'base64').toString('utf8'));
      },
    });
    await bus.nc.flush();
    await bus.publish('task.submitted', subjects.tasks(P, 'gpu-team'), task);
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    // Followed from the running pod and published, while the command waits at the gate.
    await until(() => seen.join('').includes('started\n'), 'the running pod log on NATS');
    expect((await kv.get('k-2'))?.value?.state).toBe('running');
    // The log's first line comes before the command's request reaches the gate: released
    // before it arrived, the request would be held for ever (a fresh-clone CI run, load 10).
    await until(() => held.length > 0, 'the command at the gate');
    for (const res of held.splice(0)) res.end('go');
    let rec: TaskRecord | undefined;
    await until(async () => {
      rec = (await kv.get('k-2'))?.value;
      return rec !== undefined && ['finished', 'failed', 'killed'].includes(rec.state);
    }, 'task k-2 ended');
    expect(rec?.state, rec?.reason).toBe('finished');
    expect(readFileSync(`${ws}/out.txt`, 'utf8')).toBe('FROM THE WORKSPACE\n');
    await until(() => seen.join('').endsWith('done\n'), 'the whole log on NATS');
    expect(seen.join('')).toBe('started\ndone\n');
    sub.unsubscribe();
    expect(kube.invalidResponses).toEqual([]);
  });

  it('a runner started again with CP_JOB_KEEP_S=0 removes the Job and log copy of a task that ended before', async () => {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    const rec = (await kv.get('k-1'))?.value;
    expect(rec?.state).toBe('finished');
    const h = KubernetesHandle.parse(rec?.handle);
    const job = () => kube.jobs().find((j) => j.metadata.name === h.jobName);
    // Kept by the default keep time (600 s), marked ended once its end was recorded.
    await until(
      () =>
        (job()?.metadata as { annotations?: Record<string, string> } | undefined)?.annotations?.[
          'computepods.io/outcome'
        ] === 'finished',
      'the ended Job marked',
    );
    expect(existsSync(h.logPath)).toBe(true);
    await runner.stop();
    runner = await startRunner(bus, { ...config, jobKeep: { okMs: 0, failedMs: 604_800_000 } });
    await until(() => job() === undefined, 'the Job removed by the restarted runner');
    expect(existsSync(h.logPath)).toBe(false);
    expect(kube.invalidResponses).toEqual([]);
  });
});
