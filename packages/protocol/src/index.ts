/**
 * Every NATS message and REST body of ComputePods as a zod schema, plus the names of subjects,
 * streams and KV buckets. Imports only zod (and Node built-ins).
 *
 *   import { envelope, messageTypes, subjects } from '@computepods/protocol';
 *   const msg = envelope('files.changed', { pod: 'p1', events }, { project: 'demo', source: 'fswatcher' });
 *   nc.publish(subjects.filesChanged('demo', 'p1'), JSON.stringify(msg));
 */
export {
  ApiError,
  ArtefactReply,
  BuildArtefactReply,
  BuildArtefactRequest,
  BuildsReply,
  CancelReply,
  CancelRequest,
  ChunkedResult,
  ChunkReply,
  ChunkRequest,
  GraphReply,
  GraphRequest,
  PathRequest,
  StatusReply,
  StatusRequest,
  StatusSummary,
  WhyReply,
} from './api.js';
export { newApiToken, parseApiToken, sameSecret, secretMatches, sha256Hex } from './api-tokens.js';
export { ArtefactRecord, ArtefactStates, ArtefactStatus, TaskTrace } from './artefacts.js';
export {
  attemptTaskId,
  BuildCancel,
  BuildRequested,
  BuildResult,
  GroupStep,
  MAX_GROUP_STEPS,
  MAX_STEM,
  OutputRecord,
  ProjectedHashes,
} from './builds.js';
export { DeadLetter } from './dead-letter.js';
export {
  defineEnv,
  type EnvOf,
  type EnvSpec,
  type EnvVar,
  envEnum,
  envFlag,
  envList,
  envName,
  envOptionalName,
  envString,
  envTable,
  envText,
  InvalidEnvError,
  loadEnv,
  projectEnv,
} from './env.js';
export { type EnvIntOptions, envInt, envIntType, TIMER_MS } from './env-int.js';
export { Envelope, envelope, newId, SCHEMA_VERSION } from './envelope.js';
export { PIXI_NOT_SUPPORTED, PythonRequirement, TaskEnvironment } from './environments.js';
export {
  CpError,
  type CpErrorOptions,
  ERROR_CODES,
  type ErrorCode,
  InvalidConfigError,
  InvalidNameError,
  KeyTooLongError,
  UnsafePathError,
} from './errors.js';
export { FileEvent, FilesChanged, Sha256 } from './files.js';
export { CanBuildFrom, HowToBuild } from './how-to-build.js';
export { firstIssue, type Issue, issueLine, issuesOf, normaliseIssues } from './issues.js';
export {
  LOG_CHUNK_MAX_BYTES,
  LogChunk,
  TaskLogChunk,
  TaskLogStream,
  taskToken,
} from './logs.js';
export { type BodyInputOf, type BodyOf, type MessageType, messageTypes } from './messages.js';
export { checkName, checkProject, ProjectName, ServiceName } from './names.js';
export { checkRelativePath, MAX_PATH_BYTES, RelativePath } from './paths.js';
export {
  ApiTokenRecord,
  Member,
  Project,
  type ProjectInput,
  Queue,
  type QueueInput,
  ResolvedQueue,
  Role,
  UserName,
} from './projects.js';
export { publishable } from './publishable.js';
export { REDACTED, shownProfile, shownResource } from './redact.js';
export {
  BatchingConfig,
  checkProfileFor,
  formatIssues,
  JobRunnerConfigKubernetes,
  JobRunnerConfigLocal,
  JobRunnerConfigSlurm,
  KubernetesProfile,
  KubernetesResource,
  LocalProfile,
  LocalResource,
  PilotConfig,
  PosixUsername,
  Profile,
  type ProfileInput,
  parseProfile,
  parseResource,
  pixiNote,
  profileId,
  RESOURCE_TYPES,
  Resource,
  type ResourceInput,
  type ResourceType,
  resourceId,
  resourceWarning,
  SlurmConfigSet,
  SlurmMemory,
  SlurmSshProfile,
  SlurmSshResource,
  SlurmSudoProfile,
  SlurmSudoResource,
  slugify,
  slurmMemToMb,
  TasksPixiConfig,
  TasksPythonConfig,
} from './resources.js';
export { isRetryable, TRANSIENT_ERRNO } from './retryable.js';
export {
  ArtefactType,
  InputProjection,
  PROJECTION_LIMITS,
  Rule,
  type RuleInput,
  RulesDeclared,
} from './rules.js';
export { statusWithAllArtefacts } from './status-pages.js';
export { buckets, fromKvKey, kvKey, MAX_KV_KEY, streams, subjects } from './subjects.js';
export {
  isSupersededReason,
  supersededReason,
  TaskControl,
  TaskControlReply,
  TaskFiles,
  TaskRecord,
  TaskState,
  TaskStateChanged,
  TaskSubmitted,
  TERMINAL_STATES,
} from './tasks.js';
