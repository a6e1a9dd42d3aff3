import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defined } from './defined.js';
import { ManagedProcess } from './process.js';
import { type ReservedPort, startOnReservedPorts } from './reserved-port.js';
import { TempDir } from './temp-dir.js';
import { makeTestCa, makeTestCertificate } from './test-ca.js';
import { which } from './which.js';

/** deploy/nats/cluster-node.conf.template: the one config every cluster node is made from. */
export const CLUSTER_NODE_TEMPLATE = fileURLToPath(
  new URL('../../../deploy/nats/cluster-node.conf.template', import.meta.url),
);

/** What differs between one cluster node's config and another's, or a site's and a test's. */
export interface ClusterNodeVars {
  /** 1, 2 or 3. */
  readonly node: number;
  readonly name: string;
  /** host:port for clients. */
  readonly listen: string;
  /** host:port for the other nodes' routes. */
  readonly clusterListen: string;
  /** Holds server.pem, server.key and ca.pem. */
  readonly tlsDir: string;
  readonly storeDir: string;
  /** Every node's route URL, this one's included (nats-server skips its own). */
  readonly routes: readonly string[];
}

/**
 * Fills the template's `{{key}}` placeholders. An unknown or unfilled placeholder is an error:
 * a template and a renderer that drifted apart must not make a config that half works.
 */
export function renderClusterNodeConfig(template: string, vars: ClusterNodeVars): string {
  const values: Record<string, string> = {
    node: String(vars.node),
    name: vars.name,
    listen: vars.listen,
    cluster_listen: vars.clusterListen,
    tls_dir: vars.tlsDir,
    store_dir: vars.storeDir,
    routes: vars.routes.map((r) => `    ${r}`).join('\n'),
  };
  const used = new Set<string>();
  const out = template.replace(/\{\{([a-z_]+)\}\}/g, (_, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`cluster node template: unknown placeholder {{${key}}}`);
    used.add(key);
    return v;
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length)
    throw new Error(`cluster node template: no place for ${unused.map((k) => `{{${k}}}`)}`);
  return out;
}

/** The values deploy/nats/cluster-node{1,2,3}.conf are rendered with: hosts cp-nats-1..3. */
export function siteClusterNodeVars(node: number): ClusterNodeVars {
  return {
    node,
    name: `cp-nats-${node}`,
    listen: '0.0.0.0:4222',
    clusterListen: '0.0.0.0:6222',
    tlsDir: '/etc/computepods/nats/tls',
    storeDir: '/var/lib/computepods/nats',
    routes: [1, 2, 3].map((n) => `nats-route://cp-nats-${n}:6222`),
  };
}

export interface NatsClusterOptions {
  /**
   * Operator mode's lines (the auth package's serverConfigLines), written as each node's
   * auth.conf at every (re)start, as a site writes `cpctrl creds server-config > auth.conf`.
   * Called with the node's own resolver dir.
   */
  readonly configLines?: (resolverDir: string) => readonly string[];
  /** Where nodes keep config, certificates, store and resolver; default a temp dir removed on dispose. */
  readonly dir?: string;
  /** Client ports (one per node); default reserved ones (reserved-port.ts). */
  readonly ports?: readonly [number, number, number];
  /** Route ports (one per node); default reserved ones. */
  readonly clusterPorts?: readonly [number, number, number];
  readonly startTimeoutMs?: number;
  /** Run each node in its own process group (see ManagedProcessOptions.detached). */
  readonly detached?: boolean;
}

const HINT = "install Debian's nats-server (bash scripts/setup does), or set NATS_SERVER_BIN";
// The meta group has a leader, as this node sees it (nats-server 2.9 and 2.10+ both log these).
const META_LEADER =
  /JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/;
// A node that hears no meta leader this long after its start is taken as stuck (see metaLeader).
const STUCK_MS = 12_000;

/** One node of a NatsCluster: its own process, ports, store, resolver dir and certificate. */
export class NatsClusterNode {
  #proc: ManagedProcess | undefined;
  /** Every earlier process's output, kept across restarts for diagnostics. */
  #earlier = '';

  constructor(
    readonly index: number,
    readonly name: string,
    readonly port: number,
    readonly clusterPort: number,
    readonly dir: string,
    readonly config: string,
    /** Writes what is read at every start (auth.conf: the accounts a restarted node preloads). */
    readonly beforeStart: () => void,
    readonly detached: boolean,
  ) {}

  get url(): string {
    return `tls://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  get running(): boolean {
    return this.#proc?.running ?? false;
  }

  get output(): string {
    return `${this.#earlier}${this.#proc?.output ?? ''}`;
  }

  get storeDir(): string {
    return join(this.dir, 'store');
  }

  /** Starts (or restarts) the node on its ports, store and resolver dir; resolves once it is ready. */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.#proc?.running) return;
    if (this.#proc) this.#earlier += this.#proc.output;
    this.beforeStart();
    const bin = which(process.env.NATS_SERVER_BIN ?? 'nats-server', HINT);
    this.#proc = new ManagedProcess({
      name: this.name,
      command: bin,
      args: ['-c', this.config],
      detached: this.detached,
    });
    await this.#proc.waitForOutput('Server is ready', timeoutMs);
  }

  /**
   * Waits until the node has logged a JetStream meta leader since its last start. A node that
   * has not within STUCK_MS is restarted, up to the deadline: nats-server 2.9.10 nodes that
   * start together dial each other at once, close the pairs' extra routes ("Duplicate Route"),
   * and now and then one node was left for good without hearing the leader (seen once in a few
   * dozen starts; its routes are made anew by a restart).
   */
  async metaLeader(timeoutMs = 30_000): Promise<void> {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const proc = this.#proc;
      if (!proc) throw new Error(`${this.name} was never started`);
      const left = end - performance.now();
      try {
        await proc.waitForOutput(META_LEADER, Math.max(1, Math.min(left, STUCK_MS)));
        return;
      } catch (err) {
        if (left <= STUCK_MS) throw err;
        this.restarts++;
        await this.stop();
        await this.start(Math.max(1, end - performance.now()));
      }
    }
  }

  /** Restarts metaLeader() made (a node stuck without a meta leader). */
  restarts = 0;

  async stop(): Promise<void> {
    await this.#proc?.stop();
  }

  /** SIGKILL, as a crashed host: what the node had not synced is lost, its peers keep the data. */
  async kill9(): Promise<void> {
    await this.#proc?.kill9();
  }
}

/**
 * A real 3-node JetStream cluster on 127.0.0.1, each node run from the same template a site's
 * deploy/nats/cluster-node{1,2,3}.conf are made from: TLS for clients and routes (a CA and one
 * certificate per node made with openssl), routes verified by certificate, and the operator
 * lines (auth.conf) included: the security of a single-node `up`.
 *
 *   await using cluster = await NatsCluster.start({ configLines: (dir) => serverConfigLines(auth, dir) });
 *   // NATS_URL=cluster.url NATS_CA=cluster.caFile CP_REPLICAS=3
 *   await cluster.nodes[0].kill9(); await cluster.nodes[0].start();
 */
export class NatsCluster implements AsyncDisposable {
  readonly #temp: TempDir | undefined;
  /** The ports not given in the options, reserved until dispose (reserved-port.ts). */
  #reserved: readonly ReservedPort[] = [];
  readonly nodes: readonly NatsClusterNode[];

  private constructor(
    readonly dir: string,
    temp: TempDir | undefined,
    nodes: NatsClusterNode[],
  ) {
    this.#temp = temp;
    this.nodes = nodes;
  }

  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const temp = options.dir ? undefined : new TempDir('cp-nats-cluster-');
    const dir = options.dir ?? (temp as TempDir).path;
    const timeout = options.startTimeoutMs ?? 30_000;
    // Ports not given are reserved (reserved-port.ts), kept across the nodes' restarts; others
    // are tried when something outside the test kit holds one.
    let cluster: NatsCluster | undefined;
    let output = '';
    try {
      const reserved = await startOnReservedPorts(
        (options.ports ? 0 : 3) + (options.clusterPorts ? 0 : 3),
        async (chosen) => {
          const ports = options.ports ?? chosen.slice(0, 3);
          const clusterPorts = options.clusterPorts ?? chosen.slice(-3);
          const c = new NatsCluster(dir, temp, makeNodes(dir, ports, clusterPorts, options));
          try {
            await c.start(timeout);
          } catch (err) {
            await Promise.allSettled(c.nodes.map((n) => n.kill9()));
            output = c.output;
            throw err;
          }
          cluster = c;
        },
        () => /address already in use/.test(output),
      );
      const started = defined(cluster, 'the started cluster');
      started.#reserved = reserved;
      return started;
    } catch (err) {
      temp?.[Symbol.dispose]();
      throw err;
    }
  }

  /** Every node's client URL, comma-separated: what NATS_URL takes. */
  get url(): string {
    return this.nodes.map((n) => n.url).join(',');
  }

  /** The CA that signed every node's certificate: what NATS_CA takes. */
  get caFile(): string {
    return join(this.dir, 'ca.pem');
  }

  /** True while every node runs. */
  get running(): boolean {
    return this.nodes.every((n) => n.running);
  }

  /** The first node's pid (for a caller that shows one). */
  get pid(): number | undefined {
    return this.nodes[0]?.pid;
  }

  get output(): string {
    return this.nodes.map((n) => `=== ${n.name}\n${n.output}`).join('\n');
  }

  /** The node of that server name (as a stream's cluster.leader names it). */
  node(name: string): NatsClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in the cluster (${this.nodes.map((x) => x.name)})`);
    return n;
  }

  /** Starts every node that is not running, together (a lone node has no quorum). */
  async start(timeoutMs = 30_000): Promise<void> {
    await Promise.all(this.nodes.filter((n) => !n.running).map((n) => n.start(timeoutMs)));
    await Promise.all(this.nodes.map((n) => n.metaLeader(timeoutMs)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }

  async kill9(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill9()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    for (const r of this.#reserved) r.release();
    this.#temp?.[Symbol.dispose]();
  }
}

function makeNodes(
  dir: string,
  ports: readonly number[],
  clusterPorts: readonly number[],
  options: NatsClusterOptions,
): NatsClusterNode[] {
  makeCertificates(dir);
  const template = readFileSync(CLUSTER_NODE_TEMPLATE, 'utf8');
  const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`);
  return [1, 2, 3].map((i) => {
    const nodeDir = join(dir, `node${i}`);
    mkdirSync(join(nodeDir, 'tls'), { recursive: true });
    mkdirSync(join(nodeDir, 'store'), { recursive: true });
    const config = join(nodeDir, 'nats.conf');
    writeFileSync(
      config,
      renderClusterNodeConfig(template, {
        node: i,
        name: `cp-nats-${i}`,
        listen: `127.0.0.1:${ports[i - 1]}`,
        clusterListen: `127.0.0.1:${clusterPorts[i - 1]}`,
        tlsDir: join(nodeDir, 'tls'),
        storeDir: join(nodeDir, 'store'),
        routes,
      }),
    );
    const writeAuth = () =>
      writeFileSync(
        join(nodeDir, 'auth.conf'),
        `${(options.configLines?.(join(nodeDir, 'resolver')) ?? []).join('\n')}\n`,
      );
    return new NatsClusterNode(
      i,
      `cp-nats-${i}`,
      ports[i - 1] as number,
      clusterPorts[i - 1] as number,
      nodeDir,
      config,
      writeAuth,
      options.detached ?? false,
    );
  });
}

/**
 * A CA and, per node, a certificate for 127.0.0.1 and localhost it signed (used both to serve
 * clients and to present on routes), made once per dir with Debian's openssl.
 */
function makeCertificates(dir: string): void {
  const ca = makeTestCa(dir, 'cp-nats-ca');
  for (const i of [1, 2, 3]) {
    const tls = join(dir, `node${i}`, 'tls');
    makeTestCertificate(ca, tls, `cp-nats-${i}`);
    writeFileSync(join(tls, 'ca.pem'), readFileSync(ca.ca));
  }
}
