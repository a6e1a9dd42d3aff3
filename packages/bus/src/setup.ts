import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { defaultReplicas } from './config.js';
import { isPermissionDenied, isStreamMissing, ProvisioningMissingError } from './errors.js';

const NS = 1_000_000;

export interface StreamSpec {
  readonly name: string;
  readonly subjects: string[];
  /** 'workqueue': each message is delivered to one consumer and removed on ack. */
  readonly retention: 'workqueue' | 'limits';
  readonly maxAgeMs?: number;
  readonly maxMsgs?: number;
  readonly maxBytes?: number;
  readonly duplicateWindowMs?: number;
  readonly replicas?: number;
  /** Messages kept per subject (the oldest of that subject go first); default unlimited. */
  readonly maxMsgsPerSubject?: number;
  /** Answer direct gets (`$JS.API.DIRECT.GET.<stream>.<subject>`), which permissions can scope by subject. */
  readonly allowDirect?: boolean;
}

/**
 * Creates the stream, or updates its subjects/limits if it exists. Safe to race. With
 * least-privilege credentials (the secure default) the project's admin made every stream
 * beforehand: a stream this service may not even look at is not its business, and one it may
 * see but not create is missing provisioning, said as such.
 */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  const config: Partial<StreamConfig> & { name: string } = {
    name: spec.name,
    subjects: spec.subjects,
    retention: spec.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: (spec.maxAgeMs ?? 0) * NS,
    max_msgs: spec.maxMsgs ?? -1,
    max_bytes: spec.maxBytes ?? -1,
    duplicate_window: (spec.duplicateWindowMs ?? 120_000) * NS,
    num_replicas: spec.replicas ?? defaultReplicas(),
    max_msgs_per_subject: spec.maxMsgsPerSubject ?? -1,
    ...(spec.allowDirect ? { allow_direct: true } : {}),
  };
  for (let attempt = 0, looks = 0; attempt < 3; attempt++) {
    let existing: Awaited<ReturnType<JetStreamManager['streams']['info']>> | undefined;
    try {
      existing = await jsm.streams.info(spec.name);
    } catch (err) {
      if (isPermissionDenied(err)) return;
      // Only "not found" says it is missing. Anything else (a timeout, JetStream not ready on a
      // cluster node after a restart) is asked again: taken for missing, a service that may not
      // create streams stopped saying the project is not provisioned (fresh-clone CI run 91,
      // nats-cluster.test: the fswatcher, its stream there all along).
      if (!isStreamMissing(err)) {
        if (++looks >= INFO_TRIES) throw err;
        attempt--;
        await sleep(INFO_RETRY_MS * 2 ** (looks - 1));
        continue;
      }
      existing = undefined;
    }
    try {
      if (!existing) await jsm.streams.add(config);
      else if (
        existing.config.subjects?.join() !== spec.subjects.join() ||
        existing.config.max_age !== config.max_age ||
        existing.config.max_msgs !== config.max_msgs ||
        existing.config.max_bytes !== config.max_bytes ||
        existing.config.duplicate_window !== config.duplicate_window ||
        unlimited(existing.config.max_msgs_per_subject) !==
          unlimited(config.max_msgs_per_subject) ||
        (existing.config.allow_direct ?? false) !== (config.allow_direct ?? false)
      ) {
        await jsm.streams.update(spec.name, {
          subjects: spec.subjects,
          max_age: config.max_age,
          max_msgs: config.max_msgs,
          max_bytes: config.max_bytes,
          duplicate_window: config.duplicate_window,
          max_msgs_per_subject: config.max_msgs_per_subject,
          allow_direct: config.allow_direct ?? false,
        });
      }
      return;
    } catch (err) {
      if (isPermissionDenied(err)) {
        // Seen but not ours to change: the admin's copy stands (its limits may differ).
        if (existing) return;
        // Not found and not ours to make: looked for again a while (a cluster node may answer
        // before the admin's new stream reaches it), then said missing.
        if (++looks < INFO_TRIES) {
          attempt--;
          await sleep(INFO_RETRY_MS * 2 ** (looks - 1));
          continue;
        }
        throw new ProvisioningMissingError(`stream ${spec.name}`, { cause: err });
      }
      // Another service created it between our info and add: look again.
      if (attempt === 2) throw err;
    }
  }
}

/**
 * Looks for a stream that get no answer about it, or find it missing where the service may not
 * create it, before giving up; and the wait before the second (doubling): ~6 s in all.
 */
const INFO_TRIES = 6;
const INFO_RETRY_MS = 200;

/** A limit as the server may report it: 0 and -1 both mean none. */
function unlimited(n: number | undefined): number {
  return n === undefined || n <= 0 ? -1 : n;
}

export interface ConsumerSpec {
  readonly stream: string;
  readonly durable: string;
  readonly filterSubject?: string;
  readonly maxDeliver?: number;
  readonly ackWaitMs?: number;
  readonly maxAckPending?: number;
  /**
   * Made (the first time only) to start after the stream's last message instead of its first: a
   * consumer of a KV bucket's stream that wants the writes from now on, not every record kept.
   * An existing durable keeps its place.
   */
  readonly deliverNew?: boolean;
}

export async function ensureConsumer(jsm: JetStreamManager, spec: ConsumerSpec): Promise<void> {
  const wanted = {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: spec.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
    max_deliver: spec.maxDeliver ?? 5,
    ack_wait: (spec.ackWaitMs ?? 30_000) * NS,
    max_ack_pending: spec.maxAckPending ?? 1000,
    ...(spec.filterSubject ? { filter_subject: spec.filterSubject } : {}),
  };
  const existing = await jsm.consumers.info(spec.stream, spec.durable).catch(() => undefined);
  if (!existing) {
    try {
      await jsm.consumers.add(spec.stream, wanted);
    } catch (err) {
      if (!(await jsm.consumers.info(spec.stream, spec.durable).catch(() => undefined))) throw err;
    }
    return;
  }
  const c = existing.config;
  if (
    c.max_deliver !== wanted.max_deliver ||
    c.ack_wait !== wanted.ack_wait ||
    c.max_ack_pending !== wanted.max_ack_pending
  ) {
    await jsm.consumers.update(spec.stream, spec.durable, {
      max_deliver: wanted.max_deliver,
      ack_wait: wanted.ack_wait,
      max_ack_pending: wanted.max_ack_pending,
    });
  }
}

export interface KvSpec {
  readonly history?: number;
  readonly replicas?: number;
  /**
   * How long a key's value is kept after it was last written (the bucket's max age; 0: for ever).
   * Given, a bucket that exists with another max age is changed to it, when this connection may
   * (like ensureStream's limits; a least-privileged service leaves the provisioned one alone).
   */
  readonly maxAgeMs?: number;
  /** The max age of a bucket created here, when maxAgeMs is not given; an existing one keeps its own. */
  readonly defaultMaxAgeMs?: number;
  /**
   * Gets answered by the bucket stream's leader (TypedKv.get): on a cluster a direct get may be
   * answered by a replica that has not applied the latest write yet (3-node cluster under load:
   * 90 of 1,500 reads right after their write were stale), so records read right after they are
   * written (the registry's: a resource made, then a queue bound to it) read from the leader.
   * Default: on a cluster (CP_REPLICAS > 1) yes, for every bucket (a chef reads a result it has
   * just stored, a runner a task MajorDomo has just queued again); on one server a direct get
   * sees every acknowledged write, and is the cheaper read.
   */
  readonly leaderReads?: boolean;
}

/** Opens the bucket, creating it first when missing (and setting its max age, see KvSpec). */
export async function ensureKv(nc: NatsConnection, name: string, spec: KvSpec = {}): Promise<KV> {
  const kvm = new Kvm(nc);
  const ttl = spec.maxAgeMs ?? spec.defaultMaxAgeMs;
  let kv: KV;
  try {
    kv = await kvm.create(name, {
      history: spec.history ?? 1,
      replicas: spec.replicas ?? defaultReplicas(),
      ...(ttl ? { ttl } : {}),
    });
  } catch {
    return await kvm.open(name);
  }
  if (spec.maxAgeMs !== undefined)
    await ensureKvMaxAge(await jetstreamManager(nc), name, spec.maxAgeMs);
  return kv;
}

/**
 * Sets an existing bucket's max age (its stream's `max_age`); a missing bucket, or one this
 * connection may not change, is left. On a bucket made before it had one, the server drops at
 * once every value older than the new age.
 */
export async function ensureKvMaxAge(
  jsm: JetStreamManager,
  name: string,
  maxAgeMs: number,
): Promise<void> {
  const stream = `KV_${name}`;
  let info: Awaited<ReturnType<JetStreamManager['streams']['info']>>;
  try {
    info = await jsm.streams.info(stream);
  } catch {
    return; // missing (made later, with its max age), or not ours to see
  }
  if ((info.config.max_age ?? 0) === maxAgeMs * NS) return;
  try {
    await jsm.streams.update(stream, { max_age: maxAgeMs * NS });
  } catch (err) {
    if (isPermissionDenied(err)) return;
    throw err;
  }
}
