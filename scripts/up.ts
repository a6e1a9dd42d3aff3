// `pnpm cp-up` (scripts/up installs first): one nats-server (or, with --cluster, a 3-node
// JetStream cluster), all four services, the local resource and the demo project, supervised;
// Ctrl-C stops everything cleanly. `--help` says more.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AuthStore, bootstrapProject, type Grant, serverConfigLines } from '@computepods/auth';
import { NatsCluster, NatsServer } from '@computepods/testkit';
import { apiToken } from '../services/majordomo/src/token.js';
import { formatLogLine } from './log-line.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const state = process.env.CP_STATE_DIR ?? `${root}.state`;
const project = process.env.CP_PROJECT ?? 'demo';
const workspace = process.env.CP_WORKSPACE ?? `${state}/${project}/workspace`;
// One OS process per service: its bin runs the bundle `pnpm build` wrote (scripts/setup runs
// it), or its sources through tsx's loader in the same process while the bundle is stale.
const binOf = (service: string) => `services/${service}/bin/${service}.js`;

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

const USAGE = `usage: bash scripts/up [--cluster] [--help]

Runs ComputePods on this machine: its own nats-server on loopback (operator mode, a NATS
account per project, credentials per role), MajorDomo, a chef, a runner and the fswatcher,
the local resource and the demo project. Ctrl-C stops everything.

  --cluster   a 3-node JetStream cluster instead of one nats-server (CP_NATS_CLUSTER=1):
              the nodes run deploy/nats/cluster-node.conf.template on 127.0.0.1 (client
              ports CP_NATS_PORT..+2, default 4222-4224, routes 6222-6224, free ones when
              taken), TLS for clients and routes (a CA made in <state>/nats-cluster), streams
              and buckets with 3 replicas (CP_REPLICAS=3): kill -9 any one node and the
              services go on. Its data is kept apart from the single server's.
  --help      this text

Environment: CP_STATE_DIR (default .state), CP_PROJECT (demo), CP_WORKSPACE, CP_NATS_PORT,
CP_HTTP_PORT (8080), NATS_URL (use a server someone else runs); see README "Configuration".`;

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  say(USAGE);
  process.exit(0);
}
const unknown = args.filter((a) => a !== '--cluster');
if (unknown.length) {
  process.stderr.write(`up: unknown argument ${unknown[0]}\n${USAGE}\n`);
  process.exit(2);
}
const clustered = args.includes('--cluster') || process.env.CP_NATS_CLUSTER === '1';

/**
 * Our own nats-server in operator mode (accounts per project, credentials per role), on
 * loopback. With NATS_URL, a server someone else runs must trust this auth dir's operator.
 */
async function startNats(
  auth: AuthStore,
): Promise<{ url: string; server?: NatsServer | NatsCluster }> {
  if (process.env.NATS_URL) return { url: process.env.NATS_URL };
  if (clustered) return startCluster(auth);
  const storeDir = `${state}/nats`;
  mkdirSync(storeDir, { recursive: true });
  const configLines = () => serverConfigLines(auth, `${state}/nats-resolver`);
  const port = Number(process.env.CP_NATS_PORT ?? 4222);
  try {
    const server = await NatsServer.start({ port, storeDir, detached: true, configLines });
    return { url: server.url, server };
  } catch (err) {
    say(
      `port ${port} is busy (${(err as Error).message.split('\n')[0]}); using a free port instead`,
    );
    const server = await NatsServer.start({ storeDir, detached: true, configLines });
    return { url: server.url, server };
  }
}

/**
 * Three nodes from deploy/nats's cluster template, on loopback, with the single server's
 * security plus TLS. Provisioning here and every service then use its CA and 3 replicas.
 */
async function startCluster(auth: AuthStore): Promise<{ url: string; server: NatsCluster }> {
  const dir = `${state}/nats-cluster`;
  const configLines = (resolverDir: string) => serverConfigLines(auth, resolverDir);
  const port = Number(process.env.CP_NATS_PORT ?? 4222);
  let server: NatsCluster;
  try {
    server = await NatsCluster.start({
      dir,
      detached: true,
      configLines,
      ports: [port, port + 1, port + 2],
      clusterPorts: [6222, 6223, 6224],
    });
  } catch (err) {
    say(
      `ports ${port}-${port + 2} or 6222-6224 are busy (${(err as Error).message.split('\n')[0]}); using free ports instead`,
    );
    server = await NatsCluster.start({ dir, detached: true, configLines });
  }
  process.env.NATS_CA = server.caFile;
  process.env.CP_REPLICAS = '3';
  return { url: server.url, server };
}

interface Supervised {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  child?: ChildProcess;
  restarts: number;
  log: WriteStream;
}

let stopping = false;

function launch(s: Supervised): void {
  const child = spawn(process.execPath, s.args, {
    detached: true,
    env: s.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: root,
  });
  s.child = child;
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      s.log.write(`${line}\n`);
      if (process.env.CP_UP_QUIET !== '1') say(formatLogLine(s.name, line));
    });
  }
  child.on('exit', (code, signal) => {
    if (stopping) return;
    const delay = Math.min(1000 * 2 ** s.restarts, 30_000);
    s.restarts++;
    say(
      `!! ${s.name} exited (${signal ?? `code ${code}`}); restarting in ${delay / 1000}s (see ${s.log.path})`,
    );
    setTimeout(() => !stopping && launch(s), delay);
  });
}

async function main(): Promise<void> {
  const authDir = `${state}/auth`;
  const auth = await AuthStore.open(authDir);
  const nats = await startNats(auth);
  // The registry, the project's account, streams and buckets, and a local queue: made once,
  // checked at every start.
  const bootstrap = () =>
    bootstrapProject({
      store: auth,
      servers: nats.url,
      project,
      runnerDir: `${state}/${project}/runner`,
      admin:
        process.env.USER && /^[a-z_][a-z0-9_-]{0,31}$/.test(process.env.USER)
          ? process.env.USER
          : 'admin',
    });
  // A cluster restarted on its data elects a leader for each stream and bucket one after the
  // other, for some seconds after the nodes say they are ready: until then requests time out.
  let adminCreds: string;
  for (let end = Date.now() + 90_000; ; ) {
    try {
      adminCreds = await bootstrap();
      break;
    } catch (err) {
      if (!(nats.server instanceof NatsCluster) || Date.now() > end) throw err;
      say(`the cluster is not ready yet (${(err as Error).message}); trying again`);
      await new Promise((r) => setTimeout(r, 2_000));
    }
  }
  const creds = (g: Omit<Grant, 'project'>) => auth.grantCreds({ ...g, project });
  const httpPort = Number(process.env.CP_HTTP_PORT ?? 8080);
  // The bootstrap token MajorDomo will use (CP_API_TOKEN, or the one kept in its state dir,
  // made now if missing): printed below, to log in to the web page with.
  const token = apiToken(process.env.CP_API_TOKEN, `${state}/${project}/majordomo`);
  // The demo's sources, each only when missing: an edited file is kept across restarts.
  mkdirSync(`${workspace}/src`, { recursive: true });
  cpSync(`${root}deploy/demo/src`, `${workspace}/src`, { recursive: true, force: false });
  mkdirSync(`${state}/logs`, { recursive: true });

  const env = {
    ...process.env,
    NATS_URL: nats.url,
    CP_PROJECT: project,
    CP_STATE_DIR: `${state}/${project}`,
    CP_WORKSPACE: workspace,
    CP_POD: process.env.CP_POD ?? 'pod-local',
    CP_LOG_FORMAT: 'json',
    CP_HTTP_PORT: String(httpPort),
  };
  // Each service with its own role's least-privilege credentials (packages/auth/src/roles.ts).
  const services: Supervised[] = [
    {
      name: 'majordomo',
      args: [binOf('majordomo')],
      env: { ...env, NATS_CREDS: await creds({ role: 'majordomo' }) },
      restarts: 0,
    },
    {
      name: 'chef',
      args: [binOf('chef')],
      env: {
        ...env,
        CP_CHEF: 'demo',
        CP_CHEF_DEFINITION: `${root}deploy/demo/chef.yaml`,
        NATS_CREDS: await creds({ role: 'chef', scope: 'demo' }),
      },
      restarts: 0,
    },
    {
      name: 'runner',
      args: [binOf('runner')],
      env: {
        ...env,
        CP_RESOURCE: 'local',
        NATS_CREDS: await creds({ role: 'runner', scope: 'local' }),
      },
      restarts: 0,
    },
    {
      name: 'fswatcher',
      args: [binOf('fswatcher')],
      env: { ...env, NATS_CREDS: await creds({ role: 'fswatcher', scope: env.CP_POD }) },
      restarts: 0,
    },
  ].map((s) => ({ ...s, log: createWriteStream(`${state}/logs/${s.name}.log`, { flags: 'a' }) }));
  for (const s of services) launch(s);

  // What cpctrl needs to find this deployment, when it differs from cpctrl's defaults.
  const stateDefault = process.env.CP_STATE_DIR === undefined;
  const cpEnv = [
    nats.url === 'nats://127.0.0.1:4222' ? '' : `NATS_URL=${nats.url}`,
    process.env.NATS_CA && nats.server instanceof NatsCluster
      ? `NATS_CA=${process.env.NATS_CA}`
      : '',
    project === 'demo' ? '' : `CP_PROJECT=${project}`,
    stateDefault ? '' : `CP_AUTH_DIR=${authDir}`,
  ]
    .filter(Boolean)
    .join(' ');
  say(
    [
      '',
      'ComputePods is up',
      `  NATS        ${nats.url}${
        nats.server instanceof NatsCluster
          ? ` (own 3-node cluster, pids ${nats.server.nodes.map((n) => n.pid).join(' ')}, TLS with CA ${nats.server.caFile}, 3 replicas, data in ${nats.server.dir})`
          : nats.server
            ? ` (own nats-server, pid ${nats.server.pid}, data in ${state}/nats)`
            : ' (NATS_URL)'
      }`,
      `  security    operator mode: the project is its own NATS account; each service has its role's`,
      `              credentials; yours (project admin): ${adminCreds}`,
      `              (cpctrl finds them in ${authDir}; see README "Security" to add people and pods)`,
      `  project     ${project}`,
      `  workspace   ${workspace}`,
      `  services    ${services.map((s) => `${s.name} (pid ${s.child?.pid})`).join(', ')}`,
      `  resource    local (runner on this machine)`,
      `  logs        ${state}/logs/`,
      `  web page    http://127.0.0.1:${httpPort}/  (MajorDomoUI: graph, artefacts, builds, logs; log in with the token below)`,
      `  API         http://127.0.0.1:${httpPort}/api  (OpenAPI: /openapi.json, live events: /api/events)`,
      `  API token   ${token.token}`,
      `              (bootstrap admin${token.file ? `, kept in ${token.file}` : ', CP_API_TOKEN'}; cpctrl token create --user NAME makes per-user ones)`,
      '',
      'The demo: out/hello.upper from src/hello.txt, and out/guide.html from src/guide.md through a',
      'cycle (its table of contents is read back from the page as out/guide.toc): a new document',
      'settles in 3 passes. Rules: deploy/demo/chef.yaml. Try, in another terminal:',
      ...(cpEnv ? [`  export ${cpEnv}`] : []),
      `  pnpm -s cpctrl status                                   services and artefacts`,
      `  echo "## A new section" >> ${workspace}/src/guide.md`,
      `                                                          3 passes, logged here`,
      `  pnpm -s cpctrl build out/guide.html --force --watch     rebuild, with a progress line`,
      `  pnpm -s cpctrl artefact why out/guide.html              what makes it out of date`,
      `  pnpm -s cpctrl graph --dot                              the graph, cycles as clusters`,
      `  pnpm -s cpctrl -o json status                           the same, as JSON on stdout`,
      "Feed the pod from a directory of yours over SSH (your key in the pod user's authorized_keys):",
      `  ${cpEnv.includes('NATS_CA') ? `NATS_CA=${process.env.NATS_CA} ` : ''}NATS_URL=${nats.url} pnpm -s inotify2nats --project ${project} --pod ${env.CP_POD} \\`,
      `    --creds ${await creds({ role: 'inotify2nats', scope: env.CP_POD })} \\`,
      `    --root ~/my-project --ssh ${process.env.USER ?? 'me'}@127.0.0.1:22 --remote-root ${workspace} --log '*.log'`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`\n${signal}: stopping services...`);
    await Promise.all(
      services.map(
        (s) =>
          new Promise<void>((resolve) => {
            const c = s.child;
            if (!c || c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    if (nats.server) await nats.server.stop();
    say('stopped.');
    process.exit(0);
  };
  // Children run in their own process groups (so Ctrl-C reaches only us and we stop them in
  // order); if we die anyway, take them with us.
  process.on('exit', () => {
    for (const s of services) if (s.child?.exitCode === null) s.child.kill('SIGKILL');
    const nodes =
      nats.server instanceof NatsCluster ? nats.server.nodes : nats.server ? [nats.server] : [];
    for (const n of nodes) if (n.running && n.pid) process.kill(n.pid, 'SIGTERM');
  });
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`up: ${(err as Error).message}\n`);
  process.exit(1);
});
