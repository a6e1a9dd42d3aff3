/**
 * Test fixtures that start REAL servers as plain processes on loopback, free ports, temp dirs.
 *
 *   import { NatsServer, Slurm, Sshd } from '@computepods/testkit';
 *   await using nats = await NatsServer.start();
 *   // connect to nats.url; nats.stop() / nats.start() restart it on the same port and store
 *   await using cluster = await NatsCluster.start(); // 3 nodes, TLS: cluster.url, cluster.caFile
 *   await using sshd = await Sshd.start({ users: ['cpuser', 'cpuser2'] });
 *   // sshd.target('cpuser') = { host, port, username, privateKeyPath, knownHostsPath }
 *   await using slurm = await Slurm.start();
 *   await slurm.command(['sbatch', '--parsable', '--wrap', 'true'], { user: 'cpuser' });
 *   await using kube = await KubeApi.start(); // a STAND-IN for a Kubernetes API server (Jobs, Pods)
 *   kube.writeKubeconfig('/tmp/x/kubeconfig');
 */

export { defined } from './defined.js';
export { BinaryMissingError, ServerStartError } from './errors.js';
export { freePort } from './free-port.js';
export { jsonLines, type LogLine } from './json-lines.js';
export { KubeApi, type KubeApiOptions, type KubeRequest } from './kube-api.js';
export {
  CLUSTER_NODE_TEMPLATE,
  type ClusterNodeVars,
  NatsCluster,
  NatsClusterNode,
  type NatsClusterOptions,
  renderClusterNodeConfig,
  siteClusterNodeVars,
} from './nats-cluster.js';
export { NatsServer, type NatsServerOptions } from './nats-server.js';
export { type PrivateWorkspace, privateWorkspace } from './private-workspace.js';
export { killProcessesUsing, processesUsing } from './proc-sweep.js';
export { ManagedProcess, type ManagedProcessOptions } from './process.js';
export { isAlive } from './process-tree.js';
export { makeWheel } from './python-wheel.js';
export { requireBinary } from './require-binary.js';
export {
  ephemeralRange,
  type ReservedPort,
  reservePort,
  startOnReservedPorts,
  tryReserve,
} from './reserved-port.js';
export { type CommandResult, type RunCommandOptions, runCommand } from './run-command.js';
export { sha256 } from './sha256.js';
export { openFolders, shareDirs } from './shared-folders.js';
export { Slurm, type SlurmCommandOptions, type SlurmOptions } from './slurm.js';
export { Sshd, type SshdOptions, type SshdUser, type SshOptions } from './sshd.js';
export { startTogether } from './start-together.js';
export {
  addAuthorizedKey,
  ensureSystemUser,
  isAccountLocked,
  removeAuthorizedKey,
  type SystemUser,
} from './system-user.js';
export { TempDir } from './temp-dir.js';
export { makeTestCa, makeTestCertificate, type TestCa } from './test-ca.js';
export { ensureTex } from './tex.js';
export { until, untilDefined } from './until.js';
export { which } from './which.js';
