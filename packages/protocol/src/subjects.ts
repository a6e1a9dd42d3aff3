import { KeyTooLongError } from './errors.js';
import { taskToken } from './logs.js';
import { checkName, checkProject } from './names.js';
import { MAX_PATH_BYTES } from './paths.js';

/**
 * Subject, stream and bucket names. Every name is made here and nowhere else, and every one
 * is namespaced by project: a project is the unit of isolation.
 */
export const subjects = {
  /**
   * One subject per pod, so the server can hold a watcher's credentials to its own pod and
   * MajorDomo can check that a batch says the pod its subject names.
   */
  filesChanged: (p: string, pod: string) =>
    `cp.${checkProject(p)}.files.changed.${checkName('pod name', pod)}`,
  filesChangedAll: (p: string) => `cp.${checkProject(p)}.files.changed.*`,
  buildRequest: (p: string, chef: string) =>
    `cp.${checkProject(p)}.build.request.${checkName('chef name', chef)}`,
  buildRequestAll: (p: string) => `cp.${checkProject(p)}.build.request.*`,
  /**
   * The fence a new leader MajorDomo stores in the builds stream (standby mode): no chef name
   * starts with "_", so no chef consumes it. See services/majordomo/src/fence.ts.
   */
  buildFence: (p: string) => `cp.${checkProject(p)}.build.request._fence`,
  buildResult: (p: string) => `cp.${checkProject(p)}.build.result`,
  /**
   * Every write of the builds bucket (a chef's stored result): its stream's subjects, which
   * MajorDomo's durable `majordomo-builds` follows (BuildRequested.resultFromRecord).
   */
  buildRecords: (p: string) => `$KV.${buckets.builds(p)}.>`,
  buildCancel: (p: string) => `cp.${checkProject(p)}.build.cancel`,
  tasks: (p: string, resource: string) =>
    `cp.${checkProject(p)}.tasks.${checkName('resource name', resource)}`,
  tasksAll: (p: string) => `cp.${checkProject(p)}.tasks.*`,
  taskState: (p: string) => `cp.${checkProject(p)}.task.state`,
  taskControl: (p: string) => `cp.${checkProject(p)}.task.control`,
  /**
   * A queue's pilot workers ask the runner that started them to stage a task's declared files
   * in and out (request/reply): the runner sees the pods' workspace, the cluster does not.
   */
  pilotStage: (p: string, queue: string) =>
    `cp.${checkProject(p)}.pilot.${checkName('queue name', queue)}.stage`,
  artefactState: (p: string) => `cp.${checkProject(p)}.artefact.state`,
  /** "How to build": MajorDomo asks every chef at once (no queue group) and gathers answers. */
  howToBuild: (p: string) => `cp.${checkProject(p)}.rules.how-to-build`,
  /** MajorDomo's request/reply API (status, build) for cpctrl. */
  api: (p: string, verb: string) => `cp.${checkProject(p)}.api.${checkName('api verb', verb)}`,
  /** The parts of one process's answers too big for one message (ChunkedResult). */
  apiChunk: (p: string, instance: string) =>
    `cp.${checkProject(p)}.api.chunk.${checkName('instance', instance)}`,
  logs: (p: string, stream: string) =>
    `cp.${checkProject(p)}.logs.${checkName('log stream', stream)}`,
  /**
   * A task's stdout or stderr, published by the runner of `queue` (its credentials name the
   * queue, so a runner writes only under its own). The task id is a token (taskToken).
   */
  taskLog: (p: string, queue: string, taskId: string, stream: 'stdout' | 'stderr') =>
    `cp.${checkProject(p)}.tasklog.${checkName('queue name', queue)}.${taskToken(taskId)}.${stream}`,
  /** Both outputs of one task. */
  taskLogBoth: (p: string, queue: string, taskId: string) =>
    `cp.${checkProject(p)}.tasklog.${checkName('queue name', queue)}.${taskToken(taskId)}.*`,
  /** Every task log a queue's runners publish. */
  taskLogQueue: (p: string, queue: string) =>
    `cp.${checkProject(p)}.tasklog.${checkName('queue name', queue)}.>`,
  taskLogAll: (p: string) => `cp.${checkProject(p)}.tasklog.>`,
  deadLetter: (p: string, service: string) =>
    `cp.${checkProject(p)}.dlq.${checkName('service name', service)}`,
  deadLetterAny: () => 'cp.*.dlq.*',
} as const;

/** JetStream stream names (no dots allowed in stream names). */
export const streams = {
  files: (p: string) => `cp_${checkProject(p)}_files`,
  builds: (p: string) => `cp_${checkProject(p)}_builds`,
  events: (p: string) => `cp_${checkProject(p)}_events`,
  /** The builds bucket's own stream (subjects.buildRecords): chefs' stored results. */
  buildRecords: (p: string) => `KV_${buckets.builds(p)}`,
  tasks: (p: string) => `cp_${checkProject(p)}_tasks`,
  deadLetters: (p: string) => `cp_${checkProject(p)}_dlq`,
  /** Task stdout/stderr, kept for a while (subjects.taskLog). */
  taskLogs: (p: string) => `cp_${checkProject(p)}_tasklogs`,
} as const;

/** KV bucket names. */
export const buckets = {
  artefacts: (p: string) => `cp_${checkProject(p)}_artefacts`,
  traces: (p: string) => `cp_${checkProject(p)}_traces`,
  rules: (p: string) => `cp_${checkProject(p)}_rules`,
  /** Goals built by on-demand rules: the chosen "can build from" answer per goal. */
  goals: (p: string) => `cp_${checkProject(p)}_goals`,
  /** Which MajorDomo leads the project (standby mode): one compare-and-set lease record. */
  leader: (p: string) => `cp_${checkProject(p)}_leader`,
  /** MajorDomo's snapshot of its restored graph and records (a restart reads it, then the KV tail). */
  snapshot: (p: string) => `cp_${checkProject(p)}_snapshot`,
  tasks: (p: string) => `cp_${checkProject(p)}_tasks`,
  builds: (p: string) => `cp_${checkProject(p)}_builds`,
  /** The project's own copy of its record (`project`) and resolved queues (`queue.<name>`); admins write. */
  config: (p: string) => `cp_${checkProject(p)}_config`,
  /** REST API tokens (hashed) by id; admins write, MajorDomo reads. */
  tokens: (p: string) => `cp_${checkProject(p)}_tokens`,
  resources: () => 'cp_resources',
  profiles: () => 'cp_profiles',
  projects: () => 'cp_projects',
  /**
   * Who uses each resource and profile (`resource.<id>`, `profile.<id>`): profiles and queues take
   * a use with a revision-checked update, a delete marks the record deleted the same way, so an
   * in-use check cannot race (packages/projects).
   */
  usage: () => 'cp_usage',
} as const;

/**
 * A path kvKey leaves as it is: allowed characters only, no dot first, last or beside another.
 * Nearly every path; one test instead of a Buffer and a regex test per byte (every KV write of
 * every service makes its key: ~1 % of MajorDomo's CPU in pnpm bench cbuild).
 */
const PLAIN_KEY = /^[A-Za-z0-9_\-/]+(?:\.[A-Za-z0-9_\-/]+)*$/;

/**
 * Encodes a project-relative path as a KV key. KV keys allow [-/_=.A-Za-z0-9] and treat '.' as
 * a token separator (no empty tokens), so everything else, '=' itself, and dots that would make
 * an empty token are written as =XX hex. Readable for ordinary paths: `out/a.upper` stays as is.
 */
export function kvKey(path: string): string {
  // Cheap refusal before encoding: each byte becomes at most 3 characters.
  if (path.length > MAX_KV_KEY) throw new KeyTooLongError(path, MAX_KV_KEY);
  if (PLAIN_KEY.test(path)) return path;
  let out = '';
  const bytes = Buffer.from(path, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.readUInt8(i);
    const c = String.fromCharCode(b);
    const isDot = c === '.';
    const badDot =
      isDot &&
      (i === 0 || i === bytes.length - 1 || bytes[i - 1] === 0x2e || bytes[i + 1] === 0x2e);
    if (/[A-Za-z0-9_\-/]/.test(c) || (isDot && !badDot)) out += c;
    else out += `=${b.toString(16).padStart(2, '0').toUpperCase()}`;
  }
  if (out.length > MAX_KV_KEY) throw new KeyTooLongError(path, MAX_KV_KEY);
  return out;
}

/**
 * The longest KV key kvKey makes: room for any valid path (MAX_PATH_BYTES, every byte escaped)
 * and a task id around it, while `$KV.<bucket>.<key>` plus a reply subject stays well under the
 * 4 KiB control line of a default nats-server, which drops the connection of a client that
 * goes over it.
 */
export const MAX_KV_KEY = MAX_PATH_BYTES * 3 + 200;

export function fromKvKey(key: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < key.length; i++) {
    if (key[i] === '=') {
      bytes.push(Number.parseInt(key.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(key.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}
