/**
 * NATS for ComputePods services: connection with backoff, idempotent streams/consumers/KV,
 * typed publish (JetStream msgID dedupe) and consume (explicit ack, redelivery, max deliver,
 * dead letters), typed request/reply, $SRV discovery, pino logs with correlation ids.
 *
 *   const bus = await Bus.connect({ service: 'majordomo', project: 'demo' });
 *   await ensureProjectStreams(bus, 'demo');
 *   await bus.consume({ stream: streams.files('demo'), durable: 'majordomo-files',
 *     accept: ['files.changed'], handler: async (msg, ctx) => ctx.logger.info(msg.body) });
 *   startService(bus.logger, async () => thenClose(await startMyService(bus), bus));
 */
export { Bus, type BusOptions, errorReply, type PublishOptions } from './bus.js';
export {
  type BusSettings,
  busEnv,
  busSettings,
  defaultReplicas,
  EVENT_MAX_AGE_MS,
  RECORD_MAX_AGE_MS,
  RECORD_MIN_AGE_MS,
  type Retention,
  retentionFromEnv,
  TASK_LOG_MAX_AGE_MS,
  taskLogMaxAgeMs,
  tlsFromEnv,
} from './config.js';
export { type ConnectOptions, connectWithBackoff } from './connect.js';
export type { ConsumeOptions, Consumer, MessageContext } from './consume.js';
export { type Decoded, type DecodedView, decode, decodeView, issuesOf } from './decode.js';
export {
  type Issue,
  isPermissionDenied,
  isQuotaExceeded,
  isRetryable,
  isStreamMissing,
  isWrongLastSequence,
  MessageInvalidError,
  NatsAuthError,
  NatsUnavailableError,
  ProvisioningMissingError,
  RemoteError,
  StorageQuotaError,
} from './errors.js';
export { gatherReplies } from './gather.js';
export { issuesFromError, isValidationError, normaliseIssues } from './issues.js';
export { JsonText, jsonPieces, jsonStream } from './json-pieces.js';
export {
  runUntilSignal,
  type Service,
  type Starting,
  startService,
  thenClose,
} from './lifecycle.js';
export {
  type Listener,
  type ListenJsonOptions,
  type ListenOptions,
  type ListenViewOptions,
  listenJson,
  listenView,
} from './listen.js';
export { createLogger, type Logger, quietLogger } from './logger.js';
export {
  helpJson,
  helpText,
  type ProgramArgs,
  type ProgramHelp,
  readProgramArgs,
  runsProgram,
  serviceHelp,
  USAGE_ERROR,
} from './program-args.js';
export {
  DLQ_MAX_BYTES,
  DLQ_MAX_MSGS,
  ensureProjectStreams,
  projectBucketMaxAgeMs,
  TASK_LOG_MAX_BYTES,
  TASK_LOG_MAX_MSGS_PER_SUBJECT,
} from './project.js';
export { type Redelivered, redeliverPending } from './redeliver.js';
export { type EndpointStats, type ServiceIdentity, ServiceResponder } from './service.js';
export {
  type ConsumerSpec,
  ensureConsumer,
  ensureKv,
  ensureStream,
  type KvSpec,
  type StreamSpec,
} from './setup.js';
export { type ReadStored, type ReadStoredOptions, readStored } from './stored-messages.js';
export { SUBSCRIPTION_ENDED, subscribeMessages } from './subscribe.js';
export { KILL_GIVE_UP_MS, killTask } from './task-kill.js';
export { type ReadTaskLogOptions, readTaskLog, type TaskLogEvent } from './task-log.js';
export { TypedKv, type Versioned } from './typed-kv.js';
export { atOwnTierUp, tuneV8 } from './v8-tuning.js';
export { VERSION } from './version.js';
