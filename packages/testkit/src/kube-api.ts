import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { JobList } from 'kubernetes-models/batch/v1/JobList';
import { Pod } from 'kubernetes-models/v1/Pod';
import { PodList } from 'kubernetes-models/v1/PodList';
import { type Isolation, spawnContainer } from './kube-container.js';
import { TempDir } from './temp-dir.js';
import { makeTestCa, makeTestCertificate } from './test-ca.js';

/*
 * KubeApi: a STAND-IN for a Kubernetes API server, not one. No API server can run on these
 * machines (none is packaged for Debian or npm), so the test kit answers the part of the
 * Jobs/Pods API that @kubernetes/client-node calls for the kubernetes backend, the way the
 * real one answers it (paths, verbs, Status errors, JSON and merge patches, propagation
 * policies), and plays a one-node kubelet and Job controller: a Job's container command runs
 * as a real local process (no image is pulled; `image` is only checked to be there), its
 * stdout and stderr merged into the pod's log as a kubelet does, with real exit codes, real
 * SIGTERM/SIGKILL on suspend and delete. Every Job sent to it, and every Job and Pod (and list)
 * it returns, is validated against the published OpenAPI schema (kubernetes-models); names
 * and labels are checked as the API server's own validation does (DNS labels, label syntax),
 * which the schema does not say. Served over HTTPS with a CA made by openssl; a request
 * without the bearer token is refused (401) as a real server refuses it.
 *
 * Init containers run one after the other before the pod's container, each to its end; one
 * that fails fails the pod (restartPolicy Never), as the kubelet does. A pod's log is per
 * container (`?container=`). With `isolatePods` each container runs as a container runtime
 * would start it (kube-container.ts: its own root file system of this machine's system
 * folders, its volumes at their mountPaths, as its securityContext's user): a pod then sees
 * nothing of the runner's files but what a volume or the network brings it.
 *
 * Not emulated: watches, Kueue (its queue label is kept, no admission happens), image pulls,
 * resource requests, node selection, retries with backoff delays, finalizers other than
 * foreground deletion, field selectors, resourceVersion conflicts.
 */

export interface KubeApiOptions {
  /** The bearer token it accepts (default: random). */
  readonly token?: string;
  /** The namespace the kubeconfig's context names (default "default"). */
  readonly namespace?: string;
  /** Start new pods' processes at once (default true); false holds them Pending. */
  readonly startPods?: boolean;
  /**
   * Run each container isolated (kube-container.ts) instead of on this machine as the test's
   * user: emptyDir and persistentVolumeClaim volumes mounted, runAsUser honoured.
   */
  readonly isolatePods?: boolean;
  /** Isolated pods: the folder on this machine each PersistentVolumeClaim (by name) holds. */
  readonly claims?: Readonly<Record<string, string>>;
}

/** One request as it arrived (for tests: what reached the API, and how). */
export interface KubeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly contentType?: string;
  readonly status: number;
}

type Obj = Record<string, unknown> & {
  metadata: Record<string, unknown> & {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
  };
  spec: Record<string, unknown>;
  status: Record<string, unknown>;
};

type Container = Record<string, unknown> & { name: string };

interface PodRun {
  obj: Obj;
  jobKey: string;
  /** The process of the container running now (an init container's, then the pod's). */
  proc?: ChildProcess;
  /** Each container's log, by name. */
  logs: Map<string, Buffer[]>;
  followers: Set<{ container: string; res: ServerResponse }>;
  ended: boolean;
  killTimer?: NodeJS.Timeout;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** A Kubernetes API stand-in over HTTPS on 127.0.0.1 (see the comment above). */
export class KubeApi implements AsyncDisposable {
  readonly requests: KubeRequest[] = [];
  /** Objects it was about to return that failed schema validation: a test expects none. */
  readonly invalidResponses: string[] = [];
  readonly namespace: string;
  startPods: boolean;
  readonly #isolate: boolean;
  readonly #claims: Readonly<Record<string, string>>;
  readonly #jobs = new Map<string, Obj>();
  readonly #pods = new Map<string, PodRun>();
  readonly #token: string;
  readonly #temp = new TempDir('cp-kube-api-');
  #server!: Server;
  #rv = 1;
  url = '';
  caFile = '';

  private constructor(options: KubeApiOptions) {
    this.#token = options.token ?? randomBytes(24).toString('hex');
    this.namespace = options.namespace ?? 'default';
    this.startPods = options.startPods ?? true;
    this.#isolate = options.isolatePods ?? false;
    this.#claims = options.claims ?? {};
  }

  static async start(options: KubeApiOptions = {}): Promise<KubeApi> {
    if (options.isolatePods && process.getuid?.() !== 0)
      throw new Error(
        'KubeApi isolatePods runs each container in its own mount namespace and root, which only root may make: run the tests as root (the test kit does)',
      );
    const api = new KubeApi(options);
    const { key, cert, ca } = makeCertificate(api.#temp.path);
    api.caFile = ca;
    api.#server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) =>
      api.#handle(req, res),
    );
    await new Promise<void>((resolve, reject) => {
      api.#server.once('error', reject);
      api.#server.listen(0, '127.0.0.1', () => resolve());
    });
    api.url = `https://127.0.0.1:${(api.#server.address() as AddressInfo).port}`;
    return api;
  }

  /** Writes a kubeconfig (mode 0600) for this server: its CA, a bearer token (default the right one). */
  writeKubeconfig(path: string, token = this.#token): string {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'standin',
          cluster: {
            server: this.url,
            'certificate-authority-data': readFileSync(this.caFile).toString('base64'),
          },
        },
      ],
      users: [{ name: 'cp', user: { token } }],
      contexts: [
        {
          name: 'standin',
          context: { cluster: 'standin', user: 'cp', namespace: this.namespace },
        },
      ],
      'current-context': 'standin',
    };
    writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
    return path;
  }

  /** The Jobs stored now (copies). */
  jobs(): Obj[] {
    return [...this.#jobs.values()].map((j) => structuredClone(j));
  }

  /** The Pods stored now (copies), with the pid of each one's process while it runs. */
  pods(): (Obj & { pid?: number })[] {
    return [...this.#pods.values()].map((p) => ({
      ...structuredClone(p.obj),
      ...(p.proc?.pid !== undefined && !p.ended ? { pid: p.proc.pid } : {}),
    }));
  }

  /** Starts every Pending pod's process (after startPods was false). */
  releasePods(): void {
    this.startPods = true;
    for (const p of this.#pods.values()) if (!p.proc && !p.ended) this.#run(p);
  }

  /** Deletes a Job as another client would (kubectl delete job --cascade=...). */
  deleteJob(namespace: string, name: string, propagation = 'Background'): void {
    this.#deleteJob(namespace, name, propagation);
  }

  async stop(): Promise<void> {
    for (const p of this.#pods.values()) if (p.proc && !p.ended) killGroup(p.proc, 'SIGKILL');
    await new Promise<void>((r) => {
      this.#server.closeAllConnections();
      this.#server.close(() => r());
    });
    this.#temp[Symbol.dispose]();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  // --- HTTP ---------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'https://x');
    const query = Object.fromEntries(u.searchParams);
    const note = (status: number) =>
      this.requests.push({
        method: req.method ?? '',
        path: u.pathname,
        query,
        ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
        status,
      });
    try {
      const body = await readBody(req);
      const auth = Buffer.from(req.headers.authorization ?? '');
      const want = Buffer.from(`Bearer ${this.#token}`);
      if (auth.length !== want.length || !timingSafeEqual(auth, want))
        throw new ApiError(401, 'Unauthorized', 'Unauthorized');
      const out = this.#route(req.method ?? 'GET', u.pathname, query, body, req, res);
      if (out === 'streaming') {
        note(200);
        return;
      }
      note(out.status);
      send(res, out.status, out.body);
    } catch (err) {
      const e =
        err instanceof ApiError ? err : new ApiError(500, 'InternalError', (err as Error).message);
      note(e.status);
      send(res, e.status, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: e.message,
        reason: e.reason,
        code: e.status,
      });
    }
  }

  #route(
    method: string,
    path: string,
    query: Record<string, string>,
    body: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): { status: number; body: unknown } | 'streaming' {
    let m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(path);
    if (m?.[1] !== undefined) {
      const ns = decodeURIComponent(m[1]);
      const name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
      if (name === undefined && method === 'GET') return this.#listJobs(ns, query.labelSelector);
      if (name === undefined && method === 'POST') return this.#createJob(ns, parseJson(body));
      if (name !== undefined && method === 'GET')
        return { status: 200, body: this.#out(this.#job(ns, name)) };
      if (name !== undefined && method === 'PATCH')
        return this.#patchJob(ns, name, req.headers['content-type'] ?? '', parseJson(body));
      if (name !== undefined && method === 'DELETE') {
        const opts = body ? (parseJson(body) as { propagationPolicy?: string }) : {};
        // The Job API's own default is Orphan (kept for compatibility): pods go on running.
        return this.#deleteJob(
          ns,
          name,
          query.propagationPolicy ?? opts.propagationPolicy ?? 'Orphan',
        );
      }
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?(\/log)?$/.exec(path);
    if (m?.[1] !== undefined) {
      const ns = decodeURIComponent(m[1]);
      const name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
      if (name === undefined && method === 'GET') return this.#listPods(ns, query.labelSelector);
      if (name !== undefined && !m[3] && method === 'GET')
        return { status: 200, body: this.#outPod(this.#pod(ns, name).obj) };
      if (name !== undefined && m[3] && method === 'GET') return this.#log(ns, name, query, res);
    }
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  }

  // --- Jobs ---------------------------------------------------------------------------

  #job(ns: string, name: string): Obj {
    const j = this.#jobs.get(`${ns}/${name}`);
    if (!j) throw new ApiError(404, 'NotFound', `jobs.batch "${name}" not found`);
    return j;
  }

  #listJobs(ns: string, selector: string | undefined): { status: number; body: unknown } {
    const items = [...this.#jobs.values()].filter(
      (j) => j.metadata.namespace === ns && matches(j.metadata.labels, selector),
    );
    const list = {
      apiVersion: 'batch/v1',
      kind: 'JobList',
      metadata: { resourceVersion: String(this.#rv) },
      items,
    };
    this.#check('JobList', () => new JobList(list as never).validate());
    return { status: 200, body: list };
  }

  #createJob(ns: string, input: unknown): { status: number; body: unknown } {
    const job = input as Obj;
    try {
      new Job(job as never).validate();
    } catch (err) {
      throw new ApiError(422, 'Invalid', `Job is invalid: ${(err as Error).message}`);
    }
    if (job.kind !== 'Job' || job.apiVersion !== 'batch/v1')
      throw new ApiError(400, 'BadRequest', 'the object is not a batch/v1 Job');
    const md = (job.metadata ?? {}) as Obj['metadata'];
    if (md.namespace !== undefined && md.namespace !== ns)
      throw new ApiError(
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    checkJob(job);
    const key = `${ns}/${md.name}`;
    if (this.#jobs.has(key))
      throw new ApiError(409, 'AlreadyExists', `jobs.batch "${md.name}" already exists`);
    const uid = randomUUID();
    const spec = job.spec as Record<string, unknown> & { template: { metadata?: Obj['metadata'] } };
    const stored: Obj = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        ...md,
        namespace: ns,
        uid,
        resourceVersion: String(++this.#rv),
        generation: 1,
        creationTimestamp: now(),
        labels: {
          ...md.labels,
          'batch.kubernetes.io/controller-uid': uid,
          'batch.kubernetes.io/job-name': md.name,
          'controller-uid': uid,
          'job-name': md.name,
        },
      },
      spec: {
        backoffLimit: 6,
        completions: 1,
        parallelism: 1,
        suspend: false,
        ...spec,
        template: {
          ...spec.template,
          metadata: {
            ...spec.template.metadata,
            labels: {
              ...spec.template.metadata?.labels,
              'batch.kubernetes.io/controller-uid': uid,
              'batch.kubernetes.io/job-name': md.name,
              'controller-uid': uid,
              'job-name': md.name,
            },
          },
        },
      },
      status: {},
    };
    this.#jobs.set(key, stored);
    if (stored.spec.suspend)
      this.#condition(stored, 'Suspended', 'True', 'JobSuspended', 'Job suspended');
    else this.#startJob(stored);
    return { status: 201, body: this.#out(stored) };
  }

  #patchJob(
    ns: string,
    name: string,
    type: string,
    patch: unknown,
  ): { status: number; body: unknown } {
    const job = this.#job(ns, name);
    const before = job.spec.suspend === true;
    let next: Obj;
    if (type.startsWith('application/json-patch+json')) next = jsonPatch(job, patch);
    else if (
      type.startsWith('application/merge-patch+json') ||
      type.startsWith('application/strategic-merge-patch+json')
    )
      next = mergePatch(job, patch) as Obj;
    else
      throw new ApiError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format (${type})`,
      );
    // Only what a client may change: suspend, labels and annotations.
    job.spec.suspend = next.spec?.suspend === true;
    job.metadata.labels = next.metadata?.labels as Record<string, string>;
    job.metadata.annotations = next.metadata?.annotations;
    try {
      new Job(job as never).validate();
      checkJob(job);
    } catch (err) {
      job.spec.suspend = before;
      throw err instanceof ApiError
        ? err
        : new ApiError(422, 'Invalid', `Job is invalid: ${(err as Error).message}`);
    }
    job.metadata.resourceVersion = String(++this.#rv);
    const done = this.#finished(job);
    if (!done && job.spec.suspend !== before) {
      if (job.spec.suspend) {
        for (const p of this.#podsOf(job)) this.#terminate(p);
        delete job.status.startTime;
        job.status.active = 0;
        this.#condition(job, 'Suspended', 'True', 'JobSuspended', 'Job suspended');
      } else {
        this.#condition(job, 'Suspended', 'False', 'JobResumed', 'Job resumed');
        this.#startJob(job);
      }
    }
    return { status: 200, body: this.#out(job) };
  }

  #deleteJob(ns: string, name: string, policy: string): { status: number; body: unknown } {
    const job = this.#job(ns, name);
    if (!['Orphan', 'Background', 'Foreground'].includes(policy))
      throw new ApiError(422, 'Invalid', `propagationPolicy: Unsupported value: "${policy}"`);
    const pods = this.#podsOf(job);
    const key = `${ns}/${name}`;
    if (policy === 'Orphan') {
      for (const p of pods) p.jobKey = '';
      this.#jobs.delete(key);
    } else if (policy === 'Background') {
      this.#jobs.delete(key);
      for (const p of pods) this.#terminate(p);
    } else {
      job.metadata.deletionTimestamp = now();
      job.metadata.finalizers = ['foregroundDeletion'];
      job.metadata.resourceVersion = String(++this.#rv);
      for (const p of pods) this.#terminate(p);
      if (pods.length === 0) this.#jobs.delete(key);
      return { status: 200, body: this.#out(job) };
    }
    return {
      status: 200,
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { name, group: 'batch', kind: 'jobs', uid: job.metadata.uid },
      },
    };
  }

  #finished(job: Obj): boolean {
    const conds = (job.status.conditions ?? []) as { type: string; status: string }[];
    return conds.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  }

  #condition(job: Obj, type: string, status: string, reason: string, message: string): void {
    const conds = ((job.status.conditions ?? []) as Record<string, unknown>[]).filter(
      (c) => c.type !== type,
    );
    const t = now();
    conds.push({ type, status, reason, message, lastProbeTime: t, lastTransitionTime: t });
    job.status.conditions = conds;
    job.metadata.resourceVersion = String(++this.#rv);
  }

  #startJob(job: Obj): void {
    job.status.startTime = now();
    job.status.active = 1;
    this.#createPod(job);
    const deadline = job.spec.activeDeadlineSeconds;
    if (typeof deadline === 'number') {
      const started = job.status.startTime;
      setTimeout(() => {
        if (this.#finished(job) || job.status.startTime !== started || job.spec.suspend) return;
        for (const p of this.#podsOf(job)) this.#terminate(p);
        job.status.active = 0;
        this.#condition(
          job,
          'FailureTarget',
          'True',
          'DeadlineExceeded',
          'Job was active longer than specified deadline',
        );
        this.#condition(
          job,
          'Failed',
          'True',
          'DeadlineExceeded',
          'Job was active longer than specified deadline',
        );
      }, deadline * 1000).unref();
    }
  }

  // --- Pods (the kubelet's part) ------------------------------------------------------

  #podsOf(job: Obj): PodRun[] {
    const key = `${job.metadata.namespace}/${job.metadata.name}`;
    return [...this.#pods.values()].filter(
      (p) => p.jobKey === key && !p.obj.metadata.deletionTimestamp,
    );
  }

  #pod(ns: string, name: string): PodRun {
    const p = this.#pods.get(`${ns}/${name}`);
    if (!p) throw new ApiError(404, 'NotFound', `pods "${name}" not found`);
    return p;
  }

  #listPods(ns: string, selector: string | undefined): { status: number; body: unknown } {
    const items = [...this.#pods.values()]
      .map((p) => p.obj)
      .filter((o) => o.metadata.namespace === ns && matches(o.metadata.labels, selector));
    const list = {
      apiVersion: 'v1',
      kind: 'PodList',
      metadata: { resourceVersion: String(this.#rv) },
      items,
    };
    this.#check('PodList', () => new PodList(list as never).validate());
    return { status: 200, body: list };
  }

  #createPod(job: Obj): void {
    const tpl = job.spec.template as { metadata: Obj['metadata']; spec: Record<string, unknown> };
    const name = `${job.metadata.name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const ns = job.metadata.namespace;
    const obj: Obj = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: ns,
        uid: randomUUID(),
        resourceVersion: String(++this.#rv),
        creationTimestamp: now(),
        labels: { ...tpl.metadata.labels },
        ...(tpl.metadata.annotations ? { annotations: tpl.metadata.annotations } : {}),
        ownerReferences: [
          {
            apiVersion: 'batch/v1',
            kind: 'Job',
            name: job.metadata.name,
            uid: job.metadata.uid as string,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: { ...structuredClone(tpl.spec), nodeName: 'standin-node' },
      status: {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now() }],
      },
    };
    const run: PodRun = {
      obj,
      jobKey: `${ns}/${job.metadata.name}`,
      logs: new Map(),
      followers: new Set(),
      ended: false,
    };
    this.#pods.set(`${ns}/${name}`, run);
    if (this.startPods) this.#run(run);
  }

  #containers(run: PodRun, kind: 'containers' | 'initContainers' = 'containers'): Container[] {
    return (run.obj.spec[kind] as Container[] | undefined) ?? [];
  }

  #container(run: PodRun): Container {
    const [c] = this.#containers(run);
    if (!c) throw new Error(`pod ${run.obj.metadata.name} has no container to run`);
    return c;
  }

  /** Starts the pod: its init containers one after the other, each to its end, then its container. */
  #run(run: PodRun): void {
    let volumes: Map<string, string> | undefined;
    if (this.#isolate) {
      const v = this.#volumes(run);
      if (typeof v === 'string') {
        // As the scheduler leaves a pod whose claim does not exist: Pending, saying why.
        run.obj.status.conditions = [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: v,
            lastTransitionTime: now(),
          },
        ];
        run.obj.metadata.resourceVersion = String(++this.#rv);
        return;
      }
      volumes = v;
    }
    const inits = this.#containers(run, 'initContainers');
    const main = this.#container(run);
    run.obj.status = {
      ...run.obj.status,
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      startTime: now(),
      ...(inits.length
        ? { initContainerStatuses: inits.map((c) => waiting(c, 'PodInitializing')) }
        : {}),
      containerStatuses: [waiting(main, inits.length ? 'PodInitializing' : 'ContainerCreating')],
    };
    this.#step(run, 0, volumes);
  }

  /** Runs init container `i` (or the pod's container once they all ran). */
  #step(run: PodRun, i: number, volumes: Map<string, string> | undefined): void {
    const inits = this.#containers(run, 'initContainers');
    const init = inits[i];
    const c = init ?? this.#container(run);
    const startedAt = now();
    const containerID = `standin://${randomBytes(8).toString('hex')}`;
    const status = {
      name: c.name,
      image: c.image,
      imageID: '',
      containerID,
      ready: !init,
      started: true,
      restartCount: 0,
      state: { running: { startedAt } },
    };
    if (init) this.#setStatus(run, 'initContainerStatuses', i, status);
    else run.obj.status = { ...run.obj.status, phase: 'Running', containerStatuses: [status] };
    run.obj.metadata.resourceVersion = String(++this.#rv);
    const env = containerEnv(c, run.obj.metadata.name);
    const argv = [...((c.command as string[]) ?? []), ...((c.args as string[]) ?? [])].map((a) =>
      expand(a, env),
    );
    const proc = spawnContainer(
      { argv, env, workingDir: c.workingDir as string | undefined },
      this.#temp.path,
      volumes && this.#isolation(run, c, volumes),
    );
    run.proc = proc;
    const log: Buffer[] = [];
    run.logs.set(c.name, log);
    const take = (chunk: Buffer) => {
      log.push(chunk);
      for (const f of run.followers) if (f.container === c.name) f.res.write(chunk);
    };
    proc.stdout?.on('data', take);
    proc.stderr?.on('data', take);
    let code: number | null = null;
    let signal: NodeJS.Signals | null = null;
    proc.on('error', (err) => take(Buffer.from(`exec: ${err.message}\n`)));
    // The container ends with its first process: whatever it left behind is killed with it.
    proc.on('exit', (c2, s) => {
      code = c2;
      signal = s;
      killGroup(proc, 'SIGKILL');
    });
    proc.on('close', (c2, s) => {
      const exitCode = code ?? c2 ?? 128 + signalNumber(signal ?? s);
      const ended = {
        ...status,
        ready: false,
        started: false,
        state: {
          terminated: {
            exitCode,
            reason: exitCode === 0 ? 'Completed' : 'Error',
            startedAt,
            finishedAt: now(),
            containerID,
          },
        },
      };
      for (const f of [...run.followers])
        if (f.container === c.name) {
          f.res.end();
          run.followers.delete(f);
        }
      if (init) {
        this.#setStatus(run, 'initContainerStatuses', i, ended);
        run.obj.metadata.resourceVersion = String(++this.#rv);
        if (exitCode === 0 && !run.obj.metadata.deletionTimestamp) {
          this.#step(run, i + 1, volumes);
          return;
        }
      } else run.obj.status = { ...run.obj.status, containerStatuses: [ended] };
      this.#ended(run, exitCode);
    });
  }

  #setStatus(run: PodRun, field: string, i: number, status: Record<string, unknown>): void {
    const list = [...((run.obj.status[field] as Record<string, unknown>[] | undefined) ?? [])];
    list[i] = status;
    run.obj.status = { ...run.obj.status, [field]: list };
  }

  /** Isolated pods: each volume's folder here, or why the pod cannot be scheduled. */
  #volumes(run: PodRun): Map<string, string> | string {
    const out = new Map<string, string>();
    const vols = (run.obj.spec.volumes ?? []) as {
      name: string;
      emptyDir?: unknown;
      persistentVolumeClaim?: { claimName: string };
    }[];
    for (const v of vols) {
      if (v.emptyDir) {
        // An emptyDir is made for the pod, world-writable, as the kubelet makes it.
        const d = join(this.#temp.path, 'pods', run.obj.metadata.name, 'volumes', v.name);
        mkdirSync(d, { recursive: true });
        chmodSync(d, 0o777);
        out.set(v.name, d);
      } else if (v.persistentVolumeClaim) {
        const d = this.#claims[v.persistentVolumeClaim.claimName];
        if (d === undefined)
          return `persistentvolumeclaim "${v.persistentVolumeClaim.claimName}" not found`;
        out.set(v.name, d);
      } else
        return `volume "${v.name}": the stand-in mounts only emptyDir and persistentVolumeClaim volumes`;
    }
    return out;
  }

  #isolation(run: PodRun, c: Container, volumes: Map<string, string>): Isolation {
    const rootDir = join(this.#temp.path, 'pods', run.obj.metadata.name, `root-${c.name}`);
    mkdirSync(rootDir, { recursive: true });
    const sc = {
      ...(run.obj.spec.securityContext as Record<string, unknown> | undefined),
      ...(c.securityContext as Record<string, unknown> | undefined),
    };
    const mounts = ((c.volumeMounts ?? []) as { name: string; mountPath: string }[]).map(
      (m): [string, string] => [volumes.get(m.name) ?? '/nonexistent', m.mountPath],
    );
    return {
      rootDir,
      mounts,
      uid: typeof sc.runAsUser === 'number' ? sc.runAsUser : 0,
      gid: typeof sc.runAsGroup === 'number' ? sc.runAsGroup : 0,
    };
  }

  #terminate(run: PodRun): void {
    if (run.obj.metadata.deletionTimestamp) return;
    const grace = (run.obj.spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
    run.obj.metadata.deletionTimestamp = now();
    run.obj.metadata.deletionGracePeriodSeconds = grace;
    run.obj.metadata.resourceVersion = String(++this.#rv);
    if (!run.proc || run.ended) {
      this.#remove(run);
      return;
    }
    killGroup(run.proc, 'SIGTERM');
    run.killTimer = setTimeout(() => run.proc && killGroup(run.proc, 'SIGKILL'), grace * 1000);
    run.killTimer.unref();
  }

  #remove(run: PodRun): void {
    const key = `${run.obj.metadata.namespace}/${run.obj.metadata.name}`;
    this.#pods.delete(key);
    for (const f of run.followers) f.res.end();
    run.followers.clear();
    const job = this.#jobs.get(run.jobKey);
    const left = [...this.#pods.values()].some((p) => p.jobKey === run.jobKey);
    if (job?.metadata.deletionTimestamp && !left) this.#jobs.delete(run.jobKey);
  }

  /** The pod is over: its container (or an init container) ended with exitCode. */
  #ended(run: PodRun, exitCode: number): void {
    run.ended = true;
    clearTimeout(run.killTimer);
    run.obj.status = { ...run.obj.status, phase: exitCode === 0 ? 'Succeeded' : 'Failed' };
    run.obj.metadata.resourceVersion = String(++this.#rv);
    for (const f of run.followers) f.res.end();
    run.followers.clear();
    const deleted = run.obj.metadata.deletionTimestamp !== undefined;
    if (deleted) this.#remove(run);
    const job = this.#jobs.get(run.jobKey);
    // A pod deleted by suspend or deletion does not count for the Job; an ended one does.
    if (!job || deleted || this.#finished(job)) return;
    job.status.active = 0;
    if (exitCode === 0) {
      job.status.succeeded = ((job.status.succeeded as number) ?? 0) + 1;
      job.status.completionTime = now();
      this.#condition(
        job,
        'SuccessCriteriaMet',
        'True',
        'CompletionsReached',
        'Reached expected number of succeeded pods',
      );
      this.#condition(
        job,
        'Complete',
        'True',
        'CompletionsReached',
        'Reached expected number of succeeded pods',
      );
      return;
    }
    const failed = ((job.status.failed as number) ?? 0) + 1;
    job.status.failed = failed;
    if (failed > ((job.spec.backoffLimit as number) ?? 6)) {
      this.#condition(
        job,
        'FailureTarget',
        'True',
        'BackoffLimitExceeded',
        'Job has reached the specified backoff limit',
      );
      this.#condition(
        job,
        'Failed',
        'True',
        'BackoffLimitExceeded',
        'Job has reached the specified backoff limit',
      );
    } else this.#startJob(job);
  }

  #log(
    ns: string,
    name: string,
    query: Record<string, string>,
    res: ServerResponse,
  ): { status: number; body: unknown } | 'streaming' {
    const run = this.#pod(ns, name);
    const mains = this.#containers(run).map((c) => c.name);
    const inits = this.#containers(run, 'initContainers').map((c) => c.name);
    const [only] = mains;
    const container =
      query.container ?? (mains.length === 1 && inits.length === 0 ? only : undefined);
    if (container === undefined)
      throw new ApiError(
        400,
        'BadRequest',
        `a container name must be specified for pod ${name}, choose one of: [${mains.join(' ')}]${inits.length ? ` or one of the init containers: [${inits.join(' ')}]` : ''}`,
      );
    if (!mains.includes(container) && !inits.includes(container))
      throw new ApiError(400, 'BadRequest', `container ${container} is not valid for pod ${name}`);
    const log = run.logs.get(container);
    if (!log)
      throw new ApiError(
        400,
        'BadRequest',
        `container "${container}" in pod "${name}" is waiting to start: ${inits.length && mains.includes(container) ? 'PodInitializing' : 'ContainerCreating'}`,
      );
    let data = Buffer.concat(log);
    if (query.tailLines !== undefined) {
      const lines = data.toString('utf8').split(/(?<=\n)/);
      data = Buffer.from(lines.slice(-Number(query.tailLines)).join(''));
    }
    if (query.limitBytes !== undefined) data = data.subarray(0, Number(query.limitBytes));
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(data);
    const running =
      run.proc && !run.ended && run.logs.get(container) === [...run.logs.values()].at(-1);
    if (query.follow === 'true' && running && query.limitBytes === undefined) {
      const f = { container, res };
      run.followers.add(f);
      res.on('close', () => run.followers.delete(f));
    } else res.end();
    return 'streaming';
  }

  // --- validation of what it returns ----------------------------------------------------

  #out(job: Obj): Obj {
    this.#check(`Job ${job.metadata.name}`, () => new Job(job as never).validate());
    return job;
  }

  #outPod(pod: Obj): Obj {
    this.#check(`Pod ${pod.metadata.name}`, () => new Pod(pod as never).validate());
    return pod;
  }

  #check(what: string, validate: () => void): void {
    try {
      validate();
    } catch (err) {
      this.invalidResponses.push(`${what}: ${(err as Error).message}`);
      throw new ApiError(500, 'InternalError', `stand-in produced an invalid ${what}`);
    }
  }
}

/** What the API server's validation says of a Job beyond the schema (names, labels). */
function checkJob(job: Obj): void {
  const bad = (field: string, value: unknown, why: string) =>
    new ApiError(
      422,
      'Invalid',
      `Job.batch "${String(job.metadata?.name)}" is invalid: ${field}: Invalid value: ${JSON.stringify(value)}: ${why}`,
    );
  const name = job.metadata?.name;
  if (typeof name !== 'string' || !DNS_LABEL.test(name) || name.length > 63)
    throw bad(
      'metadata.name',
      name,
      'must be no more than 63 characters and a lowercase RFC 1123 label',
    );
  const labelSets: [string, Record<string, string> | undefined][] = [
    ['metadata.labels', job.metadata.labels],
    [
      'spec.template.metadata.labels',
      (job.spec?.template as { metadata?: { labels?: Record<string, string> } } | undefined)
        ?.metadata?.labels,
    ],
  ];
  for (const [field, labels] of labelSets)
    for (const [k, v] of Object.entries(labels ?? {})) {
      const slash = k.lastIndexOf('/');
      const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
      const short = slash >= 0 ? k.slice(slash + 1) : k;
      if (
        (prefix !== undefined && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253)) ||
        !LABEL_NAME.test(short) ||
        short.length > 63
      )
        throw bad(field, k, 'a valid label key');
      if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))
        throw bad(
          `${field}[${k}]`,
          v,
          'a valid label value must be 63 characters or less, alphanumeric, "-", "_" or "."',
        );
    }
  const pod = (job.spec?.template as { spec?: Record<string, unknown> } | undefined)?.spec ?? {};
  if (pod.restartPolicy !== 'Never' && pod.restartPolicy !== 'OnFailure')
    throw bad(
      'spec.template.spec.restartPolicy',
      pod.restartPolicy,
      'supported values: "OnFailure", "Never"',
    );
  const volumes = new Set(((pod.volumes ?? []) as { name: string }[]).map((v) => v.name));
  const names = new Set<string>();
  for (const kind of ['initContainers', 'containers'] as const)
    for (const [i, c] of ((pod[kind] ?? []) as Record<string, unknown>[]).entries()) {
      const at = `spec.template.spec.${kind}[${i}]`;
      if (typeof c.name !== 'string' || !DNS_LABEL.test(c.name))
        throw bad(`${at}.name`, c.name, 'a lowercase RFC 1123 label');
      if (names.has(c.name)) throw bad(`${at}.name`, c.name, 'Duplicate value');
      names.add(c.name);
      if (!c.image) throw bad(`${at}.image`, '', 'Required value');
      for (const e of (c.env ?? []) as { name: string }[])
        if (!ENV_NAME.test(e.name))
          throw bad(`${at}.env.name`, e.name, 'a valid environment variable name');
      for (const [j, m] of ((c.volumeMounts ?? []) as { name: string }[]).entries())
        if (!volumes.has(m.name)) throw bad(`${at}.volumeMounts[${j}].name`, m.name, 'Not found');
    }
}

/** A container's status before it starts (the kubelet's waiting state). */
function waiting(c: Container, reason: string): Record<string, unknown> {
  return {
    name: c.name,
    image: c.image,
    imageID: '',
    ready: false,
    started: false,
    restartCount: 0,
    state: { waiting: { reason } },
  };
}

/** A container's environment: the image's PATH, HOSTNAME, then its env in order, expanded. */
function containerEnv(c: Container, podName: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOSTNAME: podName,
  };
  const own: Record<string, string> = {};
  for (const e of (c.env as { name: string; value?: string }[] | undefined) ?? []) {
    // A value may refer to the variables defined before it, as $(NAME).
    own[e.name] = expand(e.value ?? '', own);
    env[e.name] = own[e.name] ?? '';
  }
  return env;
}

/**
 * Kubernetes' expansion of command, args and env values: $(NAME) becomes the value of a
 * variable the container defines (left as written when it defines none), and $$ becomes $.
 */
function expand(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) =>
    name === undefined ? '$' : (vars[name] ?? m),
  );
}

function matches(
  labels: Record<string, string> | undefined,
  selector: string | undefined,
): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [, neKey, neValue] = /^([^!=]+)!=(.*)$/.exec(term) ?? [];
    if (neKey !== undefined) return labels?.[neKey.trim()] !== neValue?.trim();
    const [, eqKey, eqValue] = /^([^=]+)==?(.*)$/.exec(term) ?? [];
    if (eqKey !== undefined) return labels?.[eqKey.trim()] === eqValue?.trim();
    const t = term.trim();
    if (t.startsWith('!')) return labels?.[t.slice(1)] === undefined;
    return labels?.[t] !== undefined;
  });
}

function jsonPatch(target: Obj, patch: unknown): Obj {
  if (!Array.isArray(patch))
    throw new ApiError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  const doc = structuredClone(target) as Record<string, unknown>;
  for (const op of patch as { op: string; path: string; value?: unknown }[]) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    if (last === undefined) throw new ApiError(422, 'Invalid', `bad patch path ${op.path}`);
    let at: Record<string, unknown> = doc;
    for (const p of parts) {
      const next = at[p];
      if (typeof next !== 'object' || next === null)
        throw new ApiError(422, 'Invalid', `the path ${op.path} does not exist`);
      at = next as Record<string, unknown>;
    }
    if (op.op === 'add' || op.op === 'replace') at[last] = op.value;
    else if (op.op === 'remove') delete at[last];
    else throw new ApiError(422, 'Invalid', `unsupported patch operation ${op.op}`);
  }
  return doc as Obj;
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new ApiError(400, 'BadRequest', 'the request body is not JSON');
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(data);
}

function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  if (proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // already gone
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const n: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return signal ? (n[signal] ?? 0) : 0;
}

/** A CA and a certificate for 127.0.0.1 it signed (test-ca.ts). */
function makeCertificate(dir: string): { key: string; cert: string; ca: string } {
  const ca = makeTestCa(dir, 'cp-kube-api-ca');
  return { ...makeTestCertificate(ca, dir, '127.0.0.1'), ca: ca.ca };
}
