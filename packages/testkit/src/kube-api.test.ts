import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defined } from './defined.js';
import { KubeApi } from './kube-api.js';
import { TempDir } from './temp-dir.js';
import { until } from './until.js';

/*
 * The Kubernetes API stand-in answers as an API server does where the kubernetes backend relies
 * on it: authentication, validation, Status errors, the Job API's default Orphan deletion.
 */

const tmp = new TempDir('cp-kube-api-test-');
let kube: KubeApi;
const TOKEN = 'right-token';

beforeAll(async () => {
  kube = await KubeApi.start({ token: TOKEN, namespace: 'ns' });
});
afterAll(async () => {
  await kube?.stop();
  tmp[Symbol.dispose]();
});

function call(
  method: string,
  path: string,
  body?: unknown,
  token: string | undefined = TOKEN,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${kube.url}${path}`,
      {
        method,
        ca: readFileSync(kube.caFile),
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          'content-type': 'application/json',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const job = (name: string, command = ['sleep', '1000']) => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name },
  spec: {
    backoffLimit: 0,
    template: {
      spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x', command }] },
    },
  },
});

const JOBS = '/apis/batch/v1/namespaces/ns/jobs';

describe('KubeApi (Kubernetes API stand-in)', () => {
  it('refuses a request without the bearer token, or with a wrong one', async () => {
    for (const token of ['', 'wrong-token']) {
      const r = await call('GET', JOBS, undefined, token);
      expect(r.status).toBe(401);
      expect(r.json).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
    }
    expect((await call('GET', JOBS)).status).toBe(200);
  });

  it('refuses invalid Jobs as the API server does, naming the field', async () => {
    const badName = await call('POST', JOBS, job('Not_A_Label'));
    expect(badName.status).toBe(422);
    expect(badName.json.message).toMatch(/metadata\.name: Invalid value: "Not_A_Label"/);
    const badLabel = await call('POST', JOBS, {
      ...job('ok-name'),
      metadata: { name: 'ok-name', labels: { 'kueue.x-k8s.io/queue-name': 'bad value!' } },
    });
    expect(badLabel.status).toBe(422);
    expect(badLabel.json.message).toMatch(/metadata\.labels\[kueue\.x-k8s\.io\/queue-name\]/);
    const schema = await call('POST', JOBS, {
      ...job('ok-name'),
      spec: { template: { spec: { containers: 'not a list' } } },
    });
    expect(schema.status).toBe(422);
    const missing = await call('GET', `${JOBS}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({
      reason: 'NotFound',
      message: 'jobs.batch "nope" not found',
    });
    expect(kube.jobs()).toEqual([]);
  });

  it('a delete without a propagation policy orphans the pod (the Job API default)', async () => {
    expect((await call('POST', JOBS, job('orphaned'))).status).toBe(201);
    expect((await call('POST', JOBS, job('orphaned'))).status).toBe(409);
    await until(() => kube.pods().some((p) => p.pid !== undefined), 'the pod running');
    const orphaned = kube.pods().find((p) => p.metadata.labels?.['job-name'] === 'orphaned');
    const pid = defined(orphaned?.pid, "the orphaned job's pod pid");
    const del = await call('DELETE', `${JOBS}/orphaned`);
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ kind: 'Status', status: 'Success' });
    expect(kube.jobs()).toEqual([]);
    expect(() => process.kill(pid, 0)).not.toThrow();
    expect(kube.invalidResponses).toEqual([]);
  });

  it('isolated pods: init containers then the container, an emptyDir shared, runAsUser, $(VAR) expanded, no host files', async () => {
    await using iso = await KubeApi.start({ token: TOKEN, namespace: 'ns', isolatePods: true });
    const secret = tmp.join('host-only.txt');
    writeFileSync(secret, 'host\n');
    const body = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'iso' },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            securityContext: { runAsUser: 65534, runAsGroup: 65534 },
            volumes: [{ name: 'scratch', emptyDir: {} }],
            initContainers: [
              {
                name: 'first',
                image: 'x',
                command: ['/bin/sh', '-c', 'echo from-init > /scratch/handed'],
                volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
              },
            ],
            containers: [
              {
                name: 'main',
                image: 'x',
                env: [
                  { name: 'A', value: 'one' },
                  { name: 'B', value: '$(A)-two' },
                ],
                command: [
                  '/bin/sh',
                  '-c',
                  `cat /scratch/handed; id -u; echo "$B" '$(A)' '$$(A)'; test -e ${secret} && echo sees-host || echo no-host`,
                ],
                volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
              },
            ],
          },
        },
      },
    };
    const res = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${iso.url}${JOBS}`,
        {
          method: 'POST',
          ca: readFileSync(iso.caFile),
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    expect(res).toBe(201);
    await until(
      () => iso.jobs().some((j) => JSON.stringify(j.status).includes('"Complete"')),
      'the isolated Job to complete',
    );
    const [pod] = iso.pods();
    const status = defined(pod).status as {
      phase: string;
      initContainerStatuses: { state: { terminated?: { exitCode: number } } }[];
    };
    expect(status.phase).toBe('Succeeded');
    expect(status.initContainerStatuses[0]?.state.terminated?.exitCode).toBe(0);
    const name = defined(pod).metadata.name;
    const log = await new Promise<string>((resolve, reject) => {
      const req = request(
        `${iso.url}/api/v1/namespaces/ns/pods/${name}/log?container=main`,
        { ca: readFileSync(iso.caFile), headers: { authorization: `Bearer ${TOKEN}` } },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(log).toBe('from-init\n65534\none-two one $(A)\nno-host\n');
    expect(iso.invalidResponses).toEqual([]);
  });
});
