import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuthStore, bootstrapProject, type Grant, serverConfigLines } from '@computepods/auth';
import { Bus, quietLogger } from '@computepods/bus';
import {
  ArtefactRecord,
  ArtefactReply,
  type ArtefactStatus,
  type BuildResult,
  buckets,
  Envelope,
  subjects,
} from '@computepods/protocol';
import {
  type CommandResult,
  killProcessesUsing,
  ManagedProcess,
  NatsCluster,
  NatsServer,
  runCommand,
  TempDir,
  until,
} from '@computepods/testkit';
import { followBuildRecords } from './build-records.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
// One OS process per service, started by its bin as `up` starts it: the bundle `pnpm build` wrote
// (scripts/bundle.mjs) while it is newer than every source, else the sources through tsx's loader
// registered in that same process (scripts/fresh-bundle.mjs), so an edit is never hidden behind a
// stale bundle. Never the tsx CLI, which runs node as a child (a SIGKILL would hit the wrapper and
// leave the service running). The bundles start in a fraction of tsx's time and CPU, which the
// test files running side by side share: 6 stack test files took 32 s of CPU instead of 63 s.
// CP_STACK_NODE_ARGS: more node options for every service process, space-separated (a profile of
// each in a bench: `--cpu-prof --cpu-prof-dir=/tmp/prof`; node refuses those in NODE_OPTIONS).
const nodeArgs = (process.env.CP_STACK_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Node's arguments to run a program from its bin (`services/chef/bin/chef.js`, relative to root). */
const program = (bin: string) => [...nodeArgs, join(root, bin)];

export type ServiceName = 'majordomo' | 'chef' | 'runner' | 'fswatcher';

const READY: Record<ServiceName, RegExp> = {
  majordomo: /"msg":"majordomo ready"/,
  chef: /"msg":"rules declared"/,
  runner: /"msg":"runner ready"/,
  fswatcher: /"msg":"watching workspace"/,
};

/**
 * A whole ComputePods deployment for one test file, in the mode `up` ships: a real nats-server
 * in operator mode, the project as its own NATS account, each service as its own OS process
 * (tsx) with its role's least-privilege credentials, one workspace in a temp dir. Services can
 * be SIGKILLed and restarted. The test itself (stack.bus, cpctrl) acts as the project's admin.
 */
export class Stack implements AsyncDisposable {
  readonly workspace: string;
  readonly procs = new Map<string, ManagedProcess>();
  /** Processes a restart under the same name replaced (a MajorDomo killed -9): kept for the dump. */
  readonly #replaced: Array<[string, ManagedProcess]> = [];
  #disposed = false;
  readonly apiToken = 'test-token-0123456789';

  private constructor(
    readonly dir: TempDir,
    readonly auth: AuthStore,
    readonly nats: NatsServer | NatsCluster,
    readonly project: string,
    /** The project admin's creds file (what cpctrl and `bus` connect with). */
    readonly adminCreds: string,
    /** The test's own connection, as the project's admin. */
    readonly bus: Bus,
  ) {
    this.workspace = dir.join('workspace');
    mkdirSync(this.workspace, { recursive: true });
  }

  /**
   * `natsConfigLines`: more nats-server configuration (a bench's `prof_port`, say). `cluster`:
   * a 3-node NatsCluster (TLS, R3) instead of one server; this process then provisions and
   * connects with its CA and 3 replicas (NATS_CA and CP_REPLICAS set here), as do the services.
   */
  static async start(
    project: string,
    options: { natsConfigLines?: readonly string[]; cluster?: boolean } = {},
  ): Promise<Stack> {
    const dir = new TempDir('cp-e2e-');
    const auth = await AuthStore.open(dir.join('auth'));
    const lines = (resolverDir: string) => [
      ...serverConfigLines(auth, resolverDir),
      ...(options.natsConfigLines ?? []),
    ];
    const nats = options.cluster
      ? await NatsCluster.start({ configLines: lines })
      : await NatsServer.start({ configLines: () => lines(dir.join('nats-resolver')) });
    if (nats instanceof NatsCluster) {
      process.env.NATS_CA = nats.caFile;
      process.env.CP_REPLICAS = '3';
    }
    // Nothing is returned until the end, so the caller has nothing to dispose: a failure from
    // here on stops the server(s) and removes the folder itself, or they outlive the test run.
    try {
      const adminCreds = await bootstrapProject({
        store: auth,
        servers: nats.url,
        project,
        runnerDir: dir.join('state', 'runner'),
      });
      const logger = quietLogger('e2e');
      const bus = await Bus.connect({
        servers: nats.url,
        credsFile: adminCreds,
        service: 'e2e',
        project,
        logger,
        discoverable: false,
      });
      return new Stack(dir, auth, nats, project, adminCreds, bus);
    } catch (err) {
      await nats[Symbol.asyncDispose]();
      dir[Symbol.dispose]();
      throw err;
    }
  }

  /**
   * Another project on the same server, provisioned as the stack's own: its own NATS account,
   * record and local queue. Start its services with `{ CP_PROJECT: name }`. Returns its admin's
   * creds file.
   */
  addProject(name: string): Promise<string> {
    return bootstrapProject({
      store: this.auth,
      servers: this.nats.url,
      project: name,
      runnerDir: this.dir.join('state', `runner-${name}`),
    });
  }

  /** Credentials for a role of this project (written into the stack's auth dir). */
  creds(grant: Omit<Grant, 'project'>): Promise<string> {
    return this.auth.grantCreds({ ...grant, project: this.project });
  }

  /** The grant a service process of this kind connects with. */
  #grantOf(kind: ServiceName, env: NodeJS.ProcessEnv): Omit<Grant, 'project'> {
    switch (kind) {
      case 'majordomo':
        return { role: 'majordomo' };
      case 'chef':
        return { role: 'chef', scope: env.CP_CHEF ?? 'chef' };
      case 'runner':
        return { role: 'runner', scope: env.CP_QUEUE ?? env.CP_RESOURCE ?? 'local' };
      case 'fswatcher':
        return { role: 'fswatcher', scope: env.CP_POD ?? 'pod-test' };
    }
  }

  env(name: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      NATS_URL: this.nats.url,
      NATS_CREDS: this.adminCreds,
      CP_PROJECT: this.project,
      CP_WORKSPACE: this.workspace,
      CP_STATE_DIR: this.dir.join('state', name),
      CP_POD: 'pod-test',
      CP_LOG_FORMAT: 'json',
      CP_LOG_LEVEL: 'debug',
      CP_HTTP_PORT: '0',
      CP_API_TOKEN: this.apiToken,
      ...extra,
    };
  }

  /**
   * Starts a service process (name may carry a suffix: 'chef-2') and waits until it is ready
   * (`ready`: another line to wait for, e.g. a standby MajorDomo's "majordomo standing by").
   */
  async start(
    kind: ServiceName,
    extra: Record<string, string> = {},
    name: string = kind,
    ready: RegExp = READY[kind],
  ): Promise<ManagedProcess> {
    const proc = await this.spawn(kind, extra, name);
    await proc.waitForOutput(ready, 60_000);
    return proc;
  }

  /** Starts a service process as `start` does, without waiting for anything it logs. */
  async spawn(
    kind: ServiceName,
    extra: Record<string, string> = {},
    name: string = kind,
  ): Promise<ManagedProcess> {
    const env = this.env(name, extra);
    // Its role's credentials in its project's account (another project's, when extra says so).
    env.NATS_CREDS = await this.auth.grantCreds({
      ...this.#grantOf(kind, env),
      project: env.CP_PROJECT ?? this.project,
    });
    // A start still here when the stack was disposed (a `Promise.all` of starts in a beforeAll
    // rejects at the first failure, and afterAll disposes while the others go on) spawns
    // nothing: its process would come after the stop and outlive the test run.
    if (this.#disposed) throw new Error(`stack disposed while ${name} was starting`);
    const proc = new ManagedProcess({
      name,
      command: process.execPath,
      args: program(`services/${kind}/bin/${kind}.js`),
      env,
      cwd: root,
    });
    const before = this.procs.get(name);
    if (before) this.#replaced.push([`${name}.${this.#replaced.length + 1}`, before]);
    this.procs.set(name, proc);
    return proc;
  }

  /**
   * The keys of `bucket` read with a JetStream direct get from now on (anyone's, as they cross
   * the server: a core subscription on the direct-get subject), in the order they were asked.
   */
  async directGets(bucket: string): Promise<string[]> {
    const keys: string[] = [];
    this.bus.nc.subscribe(`$JS.API.DIRECT.GET.KV_${bucket}.$KV.${bucket}.>`, {
      callback: (_e, m) => {
        keys.push(m.subject.slice(m.subject.lastIndexOf('.') + 1));
      },
    });
    await this.bus.nc.flush();
    return keys;
  }

  /** MajorDomo's REST base URL, read from its log line (it listens on a free port). */
  async httpUrl(name = 'majordomo'): Promise<string> {
    const proc = this.procs.get(name);
    if (!proc) throw new Error(`no process ${name} in this stack`);
    const line = await proc.waitForOutput(/"url":"http:\/\/[^"]+"/, 10_000);
    return line.slice(7, -1);
  }

  /** Runs cpctrl against this stack; stdout and stderr kept apart (JSON must be alone on stdout). */
  async cpctrl(args: string[]): Promise<CommandResult> {
    const res = await runCommand(
      process.execPath,
      [...program('apps/cpctrl/bin/cpctrl.js'), ...args],
      {
        env: {
          ...this.env('cpctrl'),
          CPCTRL_CONFIG: this.dir.join('cpctrl.json'),
          // The lab admin's: this stack's operator, registry and project admins.
          CP_AUTH_DIR: this.auth.dir,
        },
        cwd: root,
        timeoutMs: 30_000,
      },
    );
    if (res.code === null)
      throw new Error(
        `cpctrl ${args.join(' ')} hung; stdout: ${res.stdout}\nstderr: ${res.stderr}`,
      );
    return res;
  }

  async kill9(name: string): Promise<void> {
    await this.procs.get(name)?.kill9();
  }

  /**
   * Writes the plainest chef definition, one rule `upper` (src/{stem}.txt → out/{stem}.upper,
   * by default `tr a-z A-Z`; a test's own `command` counts runs or waits for a gate), into the
   * stack's dir; returns its path for CP_CHEF_DEFINITION.
   */
  writeUpperChef(command = 'tr a-z A-Z < {in0} > {out0}'): string {
    const file = this.dir.join('chef.yaml');
    writeFileSync(
      file,
      [
        'rules:',
        '  - id: upper',
        "    inputs: ['src/{stem}.txt']",
        "    outputs: ['out/{stem}.upper']",
        // A JSON string is a YAML double-quoted scalar: any command, quoted as YAML reads it.
        `    command: ${JSON.stringify(command)}`,
        '',
      ].join('\n'),
    );
    return file;
  }

  /**
   * The chef `text` (writeUpperChef's rule `upper`, running `command`) and a runner, with no
   * MajorDomo: the test asks for builds itself (requestUpper). Returns the build results
   * published from then on (collectBuildResults).
   */
  async startUpperChef(command?: string, env: Record<string, string> = {}): Promise<BuildResult[]> {
    const chefFile = this.writeUpperChef(command);
    await Promise.all([
      this.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chefFile, ...env }),
      this.start('runner'),
    ]);
    return this.collectBuildResults();
  }

  /**
   * Every valid build result stored for the project from now on, in the order they come
   * (appended to the array returned; build-records.ts); anything else is skipped.
   */
  collectBuildResults(): BuildResult[] {
    const results: BuildResult[] = [];
    followBuildRecords(this.bus, (r) => results.push(r));
    return results;
  }

  /**
   * Asks the chef `text` (writeUpperChef's) to build `out/<stem>.upper` from `src/<stem>.txt`
   * (its content's SHA-256 `inputSha256`), as MajorDomo would: build `buildId`, pass 1. Returns
   * the request's sequence in the builds stream.
   */
  async requestUpper(buildId: string, stem: string, inputSha256: string): Promise<number> {
    const ack = await this.bus.publish(
      'build.requested',
      subjects.buildRequest(this.project, 'text'),
      {
        buildId,
        taskId: `upper:${stem}`,
        chef: 'text',
        ruleId: 'upper',
        stem,
        pass: 1,
        inputs: { [`src/${stem}.txt`]: inputSha256 },
        outputs: [`out/${stem}.upper`],
        locations: {},
        // As MajorDomo asks: the result heard from the builds bucket (collectBuildResults).
        resultFromRecord: true,
      },
    );
    return ack.seq;
  }

  /**
   * Waits until `results` (collectBuildResults') holds `n` results, with the services' logs on a
   * timeout (30 s).
   */
  async untilResults(results: readonly BuildResult[], n: number): Promise<void> {
    await until(
      () => results.length >= n,
      `${n} build results`,
      30_000,
      () => this.logs(),
    );
  }

  /** Cancels build `buildId` as MajorDomo does (`upTo`: its last request's stream sequence). */
  async cancelBuild(buildId: string, reason: string, upTo?: number): Promise<void> {
    await this.bus.publish('build.cancel', subjects.buildCancel(this.project), {
      buildId,
      reason,
      ...(upTo === undefined ? {} : { upTo }),
    });
  }

  /** A file in the stack's folder that commands append lines to (`path`), and its text so far. */
  ledger(name = 'ledger'): { readonly path: string; read(): string } {
    const path = this.dir.join(name);
    return { path, read: () => (existsSync(path) ? readFileSync(path, 'utf8') : '') };
  }

  /**
   * Saves `content` at `path` in the workspace as an editor that saves atomically does: written
   * outside the workspace, then renamed in, so the file appears with its whole content at once.
   * Written in place (`writeFileSync` creates or truncates, then writes), a watcher may see it
   * empty in between and MajorDomo plans a build of the empty file, cancelled for the next: right,
   * but a test that counts build requests or follows the first one's task then fails (fresh-clone
   * CI saw it in replicas, runner-liveness and chefs). Tests of partial writes use their own I/O.
   */
  write(path: string, content: string): void {
    const full = join(this.workspace, path);
    mkdirSync(dirname(full), { recursive: true });
    const aside = this.dir.join(`.save-${process.pid}-${++this.#saves}`);
    writeFileSync(aside, content);
    renameSync(aside, full);
  }
  #saves = 0;

  /** Every message of a stream, in order (an ordered consumer from the first sequence). */
  async readStream(stream: string): Promise<Envelope[]> {
    const { jsm, js } = this.bus;
    const last = (await jsm.streams.info(stream)).state.last_seq;
    const out: Envelope[] = [];
    if (last === 0) return out;
    const consumer = await js.consumers.get(stream);
    const msgs = await consumer.consume();
    for await (const m of msgs) {
      const env = Envelope.safeParse(m.json());
      if (env.success) out.push(env.data);
      if (m.seq >= last) break;
    }
    await msgs.close();
    return out;
  }

  async artefact(path: string): Promise<ArtefactRecord | undefined> {
    const kv = await this.bus.kv(buckets.artefacts(this.project), ArtefactRecord);
    return (await kv.get(path))?.value;
  }

  /**
   * MajorDomo's own record of `path` (undefined: it knows none), which has the states it keeps
   * in memory only: `queued` is not written to KV (a restart plans the build again).
   */
  async mdArtefact(path: string): Promise<ArtefactRecord | undefined> {
    try {
      return (await this.bus.request('artefact', { path }, ArtefactReply)).artefact;
    } catch (err) {
      if ((err as { code?: string }).code === 'CP_UNKNOWN_ARTEFACT') return undefined;
      throw err;
    }
  }

  /** Waits until the artefact's KV record satisfies `ok` (default: up to date). */
  async until(
    path: string,
    ok: (a: ArtefactRecord) => boolean = (a) => a.status === 'up_to_date',
    timeoutMs = 30_000,
  ): Promise<ArtefactRecord> {
    const end = performance.now() + timeoutMs;
    let last: ArtefactRecord | undefined;
    while (performance.now() < end) {
      last = await this.artefact(path);
      if (last && ok(last)) return last;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `${path} not as expected within ${timeoutMs} ms; last record: ${JSON.stringify(last)}\n${this.logs()}`,
    );
  }

  status(path: string, status: ArtefactStatus) {
    return this.until(path, (a) => a.status === status);
  }

  logs(chars = 3000): string {
    return [...this.procs.values()].map((p) => `--- ${p.name}\n${p.tail(chars)}`).join('\n');
  }

  /**
   * CP_TEST_DUMP=DIR keeps every service's output as DIR/<project>-<stack folder>/<name>.log
   * (for a failing run; one folder per stack, so files running at once do not overwrite each
   * other); a process a restart replaced as <name>.<n>.log.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#disposed = true;
    const root = process.env.CP_TEST_DUMP;
    if (root) {
      const dump = join(root, `${this.project}-${basename(this.dir.path)}`);
      mkdirSync(dump, { recursive: true });
      for (const [name, p] of [...this.procs, ...this.#replaced])
        writeFileSync(join(dump, `${name}.log`), p.output);
      writeFileSync(join(dump, 'nats-server.log'), this.nats.output);
    }
    await Promise.allSettled([...this.procs.values()].map((p) => p.stop()));
    await this.bus.close().catch(() => undefined);
    await this.nats[Symbol.asyncDispose]();
    // Tasks outlive their runner by design (a restarted runner adopts them): one a test left
    // waiting (a gate never opened, its chef killed) would poll for ever in a deleted folder.
    // Whatever still works in this stack's unique folder is this stack's own.
    killProcessesUsing(this.dir.path);
    this.dir[Symbol.dispose]();
  }
}
