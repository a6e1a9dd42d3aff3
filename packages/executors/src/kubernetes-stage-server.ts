import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CpError, InvalidConfigError, type TaskRecord } from '@computepods/protocol';
import type { StagedInput } from './kubernetes-stage-pod.js';
import { outputTarget, readInput, TaskFileError, taskTree } from './slurm-files.js';

/*
 * The runner's side of Kubernetes staging (kubernetes-stage-pod.ts is the pod's): an HTTPS
 * server the Job's containers reach. GET /v1/jobs/<job>/inputs/<i> serves the task's i-th
 * declared input from its cwd (confined as SLURM staging is: no symlink out of cwd, regular
 * files only, opened without following a symlink); PUT /v1/jobs/<job>/outputs|auxiliaries/<i>
 * takes one back, checked against the SHA-256 the pod sends, into <jobs dir>/<job>.files,
 * from where `collect` puts it into cwd once the Job completed, so a task that fails later
 * changes nothing in cwd. What may be read or written comes from the task's record, never
 * from the request: the path names only the Job and an index. Each Job has its own bearer
 * token, HMAC-SHA256 of its name under a key kept in the jobs folder (mode 0600), so a runner
 * restarted while a pod runs still knows it, and a token opens nothing but its own task's
 * files, and only while the task is submitted or running.
 */

export interface KubernetesStagingOptions {
  /** Address and port the server listens on (port 0: any free one). */
  readonly host: string;
  readonly port: number;
  /** How the pods reach it (default https://<host>:<port>). */
  readonly url?: string | undefined;
  /** The server's TLS certificate chain and key (PEM files). */
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA the pods trust for it (PEM file; default the certificate itself). */
  readonly caFile?: string | undefined;
}

/** A stage request refused: the pod's curl shows this text, and so does the task's reason. */
class StageHttpError extends CpError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super('CP_STAGE_REFUSED', message);
  }
}

const ROUTE = /^\/v1\/jobs\/([a-z0-9-]{1,63})\/(inputs|outputs|auxiliaries)\/(\d{1,6})$/;
const SHA256 = /^[0-9a-f]{64}$/;
const LIVE = new Set(['submitted', 'running']);

export class KubernetesStageServer {
  readonly #server: Server;
  readonly #key: Buffer;
  readonly #jobsDir: string;
  readonly #lookup: (jobName: string) => TaskRecord | undefined;
  readonly #log: (msg: string, data: Record<string, unknown>) => void;
  /** What the pods are told: the URL and the CA's PEM. */
  url = '';
  readonly caPem: string;

  private constructor(
    o: KubernetesStagingOptions,
    jobsDir: string,
    lookup: (jobName: string) => TaskRecord | undefined,
    log: (msg: string, data: Record<string, unknown>) => void,
  ) {
    this.#jobsDir = jobsDir;
    this.#lookup = lookup;
    this.#log = log;
    this.#key = stageKey(jobsDir);
    this.caPem = readFileSync(o.caFile ?? o.certFile, 'utf8');
    this.#server = createServer(
      { cert: readFileSync(o.certFile), key: readFileSync(o.keyFile) },
      (req, res) => {
        void this.#handle(req, res);
      },
    );
  }

  static async start(
    o: KubernetesStagingOptions,
    jobsDir: string,
    lookup: (jobName: string) => TaskRecord | undefined,
    log: (msg: string, data: Record<string, unknown>) => void,
  ): Promise<KubernetesStageServer> {
    const s = new KubernetesStageServer(o, jobsDir, lookup, log);
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(o.port, o.host, () => resolve());
    });
    const port = (s.#server.address() as AddressInfo).port;
    s.url = (o.url ?? `https://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`).replace(
      /\/+$/,
      '',
    );
    return s;
  }

  /** The bearer token of one Job (a pod gets it in its environment). */
  tokenFor(jobName: string): string {
    return createHmac('sha256', this.#key).update(`stage:${jobName}`).digest('hex');
  }

  /**
   * The task's declared inputs with their SHA-256, read now from cwd, and the folders its
   * outputs go in; throws TaskFileError for an input missing, not a regular file, or reached
   * through a symlink out of cwd, and for an output whose place in cwd is refused.
   */
  async prepare(rec: TaskRecord): Promise<{ inputs: StagedInput[]; dirs: string[] }> {
    const tree = await taskTree(0, rec.task);
    const inputs: StagedInput[] = [];
    for (const c of tree.copies) {
      const hash = createHash('sha256');
      await pipeline(readInput(c.from), hash);
      inputs.push({ rel: posix.relative('0.work', c.to), sha256: hash.digest('hex') });
    }
    const dirs = tree.dirs.map((d) => posix.relative('0.work', d)).filter((d) => d !== '');
    return { inputs, dirs };
  }

  /**
   * After the Job completed: the declared outputs the pod sent back, put into cwd (each
   * through a temp name, then renamed; a symlink in its place is refused), then the
   * auxiliaries. Resolves with why the task fails (an output not sent: not written), or
   * undefined. Throws TaskFileError for an output whose place in cwd is refused.
   */
  async collect(rec: TaskRecord, jobName: string): Promise<string | undefined> {
    const dir = this.#filesDir(jobName);
    const outputs = rec.task.files?.outputs ?? [];
    for (const [i, rel] of outputs.entries())
      if (!(await stat(join(dir, `outputs-${i}`)).catch(() => undefined)))
        return `declared output ${rel} was not written by the command (the pod sent no regular file ${rel} back)`;
    for (const [i, rel] of outputs.entries())
      await place(join(dir, `outputs-${i}`), rec.task.cwd, rel, 'files.outputs');
    await this.collectAuxiliaries(rec, jobName);
    return undefined;
  }

  /** The auxiliaries the pod sent back (after a failure too: a failed run's .log says why). */
  async collectAuxiliaries(rec: TaskRecord, jobName: string): Promise<void> {
    const dir = this.#filesDir(jobName);
    for (const [i, rel] of (rec.task.files?.auxiliaries ?? []).entries()) {
      const from = join(dir, `auxiliaries-${i}`);
      if (!(await stat(from).catch(() => undefined))) continue;
      try {
        await place(from, rec.task.cwd, rel, 'files.auxiliaries');
      } catch (err) {
        if (!(err instanceof TaskFileError)) throw err;
        this.#log('auxiliary file not brought back', { jobName, err: err.message });
      }
    }
  }

  /** Forgets what a Job's pod sent (after collect, or when its task ended otherwise). */
  async discard(jobName: string): Promise<void> {
    await rm(this.#filesDir(jobName), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => {
      this.#server.closeAllConnections();
      this.#server.close(() => r());
    });
  }

  #filesDir(jobName: string): string {
    return join(this.#jobsDir, `${jobName}.files`);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.#serve(req, res);
    } catch (err) {
      const status = err instanceof StageHttpError ? err.status : 500;
      const message =
        err instanceof StageHttpError || err instanceof TaskFileError
          ? err.message
          : 'the runner could not stage this file (its log says why)';
      if (!(err instanceof StageHttpError))
        this.#log('a stage request failed', { url: req.url, err: String(err) });
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(err instanceof TaskFileError ? 409 : status, {
          'content-type': 'text/plain',
        });
        res.end(`${message}\n`);
      }
      req.resume();
    }
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = ROUTE.exec(new URL(req.url ?? '/', 'https://x').pathname);
    const [, jobName, kind, index] = m ?? [];
    if (!jobName || !kind || index === undefined)
      throw new StageHttpError(404, 'not a stage path: /v1/jobs/<job>/<kind>/<index>');
    const auth = Buffer.from(req.headers.authorization ?? '');
    const want = Buffer.from(`Bearer ${this.tokenFor(jobName)}`);
    if (auth.length !== want.length || !timingSafeEqual(auth, want))
      throw new StageHttpError(401, `wrong or missing token for Job ${jobName}`);
    const rec = this.#lookup(jobName);
    if (!rec || !LIVE.has(rec.state))
      throw new StageHttpError(404, `Job ${jobName} has no live task on this runner`);
    const files = rec.task.files;
    const list =
      kind === 'inputs' ? files?.inputs : kind === 'outputs' ? files?.outputs : files?.auxiliaries;
    const rel = list?.[Number(index)];
    if (rel === undefined)
      throw new StageHttpError(404, `the task declares no ${kind} number ${index}`);
    if (kind === 'inputs') {
      if (req.method !== 'GET') throw new StageHttpError(405, 'inputs are only read (GET)');
      const tree = await taskTree(0, { ...rec.task, files: { inputs: [rel], outputs: [] } });
      const [copy] = tree.copies;
      if (!copy) throw new StageHttpError(404, `declared input ${rel} is not staged`);
      const size = (await stat(copy.from)).size;
      const input = readInput(copy.from);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      await pipeline(input, res);
      return;
    }
    if (req.method !== 'PUT') throw new StageHttpError(405, `${kind} are only sent (PUT)`);
    const sent = String(req.headers['x-computepods-sha256'] ?? '');
    if (!SHA256.test(sent))
      throw new StageHttpError(400, 'header X-ComputePods-SHA256 must be the hex SHA-256 sent');
    const dir = this.#filesDir(jobName);
    await mkdir(dir, { recursive: true });
    const dest = join(dir, `${kind}-${index}`);
    const part = `${dest}.${randomBytes(4).toString('hex')}.part`;
    const hash = createHash('sha256');
    req.on('data', (c: Buffer) => hash.update(c));
    try {
      await pipeline(req, createWriteStream(part, { mode: 0o600 }));
      const got = hash.digest('hex');
      if (got !== sent)
        throw new StageHttpError(
          422,
          `${kind} ${rel} arrived with SHA-256 ${got}, not the ${sent} the pod sent`,
        );
      await rename(part, dest);
    } catch (err) {
      await rm(part, { force: true });
      throw err;
    }
    res.writeHead(204).end();
  }
}

/** Copies a received file into its place in cwd: a temp name there, then renamed. */
async function place(
  from: string,
  cwd: string,
  rel: string,
  field: 'files.outputs' | 'files.auxiliaries',
): Promise<void> {
  const to = await outputTarget(cwd, rel, field);
  const tmp = `${to}.cp-${randomBytes(4).toString('hex')}.part`;
  try {
    await copyFile(from, tmp);
    await rename(tmp, to);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The key tokens are made with: in the jobs folder, made once (mode 0600). */
function stageKey(jobsDir: string): Buffer {
  const path = join(jobsDir, 'stage.key');
  try {
    writeFileSync(path, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const hex = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw new InvalidConfigError(`Kubernetes stage key ${path}`, [
      'is not 64 hex digits; remove it (running pods then cannot send their outputs back)',
    ]);
  return Buffer.from(hex, 'hex');
}
