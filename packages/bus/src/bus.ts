import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BodyInputOf,
  type BodyOf,
  ChunkedResult,
  ChunkReply,
  ChunkRequest,
  Envelope,
  envelope,
  type MessageType,
  messageTypes,
  subjects,
} from '@computepods/protocol';
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type PubAck,
} from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { AckedPublisher, type AckedPublishOptions } from './acked-publisher.js';
import { busSettings, defaultReplicas } from './config.js';
import { type ConnectOptions, connectWithBackoff } from './connect.js';
import { type ConsumeOptions, type Consumer, startConsumer } from './consume.js';
import { issuesOf } from './decode.js';
import { DirectGets } from './direct-gets.js';
import {
  type Issue,
  isQuotaExceeded,
  isRetryable,
  MessageInvalidError,
  RemoteError,
  StorageQuotaError,
} from './errors.js';
import { issuesFromError, isValidationError, normaliseIssues } from './issues.js';
import { jsonPieces } from './json-pieces.js';
import { type Listener, type ListenOptions, listen } from './listen.js';
import { createLogger, type Logger } from './logger.js';
import { MuxedReplies } from './muxed-replies.js';
import { projectBucketMaxAgeMs } from './project.js';
import { partsOf, ReplyChunks } from './reply-chunks.js';
import { ServiceResponder } from './service.js';
import {
  type ConsumerSpec,
  ensureConsumer,
  ensureKv,
  ensureStream,
  type KvSpec,
  type StreamSpec,
} from './setup.js';
import { subscribeMessages } from './subscribe.js';
import { TypedKv } from './typed-kv.js';
import { VERSION } from './version.js';

export interface BusOptions {
  /** Comma-separated NATS URLs; default NATS_URL or nats://127.0.0.1:4222. */
  readonly servers?: string;
  /** NATS credentials file (JWT + NKey seed); default NATS_CREDS, else none. */
  readonly credsFile?: string;
  /** TLS to the server; default NATS_CA / NATS_CERT / NATS_KEY, else none (loopback). */
  readonly tls?: ConnectOptions['tls'];
  /** Service name: used for $SRV, logs, dead-letter subjects. A subject token. */
  readonly service: string;
  readonly project: string;
  readonly version?: string;
  readonly description?: string;
  readonly logger?: Logger;
  /** Answer $SRV.* (services do; the CLI does not). Default true. */
  readonly discoverable?: boolean;
  /**
   * More of this instance's $SRV metadata (beside `project`), in its answers from the first:
   * what a watcher of the service tells instances apart by (a runner's id and queue).
   */
  readonly metadata?: Readonly<Record<string, string>>;
  readonly giveUpAfterMs?: number;
  readonly signal?: AbortSignal;
  /** See ConnectOptions.asyncTraces: false for a service whose requests are its hot path. */
  readonly asyncTraces?: boolean;
}

export interface PublishOptions {
  /** Keep retrying an unacknowledged publish this long (default 30 s). */
  readonly retryForMs?: number;
  /** JetStream deduplicates on this id within the stream's duplicate window. */
  readonly msgId?: string;
  readonly cid?: string;
}

const MAX_DEAD_LETTER_DATA = 64 * 1024;

/**
 * How long Bus.publish's tries wait for their ack, in turn (the last for every try after). A
 * JetStream ack takes milliseconds; one that has not come in a second is mostly a publish no
 * leader of its stream will answer (sent as the leader was killed -9, or while there was none),
 * and the one elected next answers it sent again. The msgId makes a repeat of a stored message
 * a duplicate, not a second copy. nats-server elects a stream's next leader 4-9 s after the
 * last one died (its Raft election timeout); with 5 s for every try, MajorDomo's build request
 * sent 0.1 s after the builds stream's leader was killed was stored 5.3 s after the kill (bench
 * scale node loss; with tries of 1, 2, then 5 s, one sent at 1.3 s was stored at 10.2 s, its
 * third try unanswered from 4.8 s to 9.7 s). Tries of 1 s (four), then 2 s (two),
 * then 5 s, each sent as the last one's wait ends, reach the next leader within 1-2 s of its
 * election for the first 8 s, and send a publish to a merely slow server (an ack over 1 s)
 * only a few times.
 */
const ACK_WAIT_MS = [1_000, 1_000, 1_000, 1_000, 2_000, 2_000, 5_000] as const;

/**
 * One service's typed view of NATS: everything it sends is validated before it leaves,
 * everything it receives is validated before a handler sees it, and what fails validation goes
 * to the project's dead-letter subject with the zod issue paths.
 *
 *   const bus = await Bus.connect({ service: 'majordomo', project: 'demo' });
 *   await bus.publish('files.changed', subjects.filesChanged('demo', 'p1'), body, { msgId });
 *   bus.consume({ stream, durable, accept: ['files.changed'], handler: async (msg) => {...} });
 */
export class Bus {
  readonly js: JetStreamClient;
  readonly srv: ServiceResponder | undefined;
  /** JetStream publishes acked on one reply subscription (acked-publisher.ts). */
  readonly #acked: AckedPublisher | undefined;
  /** KV direct gets answered on the same reply subscription (direct-gets.ts). */
  readonly #direct: DirectGets;
  readonly #consumers: Consumer[] = [];
  #closing = false;
  /** This process's answers too big for one message, kept in parts (see serve). */
  readonly #chunks = new ReplyChunks();
  #chunksServed = false;

  private constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly project: string,
    readonly service: string,
    readonly logger: Logger,
    options: BusOptions,
  ) {
    this.js = jetstream(nc);
    const replies = new MuxedReplies(nc);
    this.#acked = AckedPublisher.for(replies, this.js);
    this.#direct = new DirectGets(replies);
    this.srv =
      options.discoverable === false
        ? undefined
        : new ServiceResponder(nc, {
            name: service,
            version: options.version ?? VERSION,
            description: options.description ?? service,
            metadata: { ...options.metadata, project },
          });
    void this.#watchStatus();
  }

  static async connect(options: BusOptions): Promise<Bus> {
    const env = busSettings();
    const servers = options.servers ?? env.servers;
    const logger = options.logger ?? createLogger(options.service, { project: options.project });
    const credsFile = options.credsFile ?? env.credsFile;
    const tls = options.tls ?? env.tls;
    const nc = await connectWithBackoff({
      servers,
      ...(credsFile ? { credsFile } : {}),
      ...(tls ? { tls } : {}),
      name: `${options.service}@${options.project}`,
      logger,
      ...(options.giveUpAfterMs !== undefined ? { giveUpAfterMs: options.giveUpAfterMs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.asyncTraces === false ? { asyncTraces: false } : {}),
    });
    const jsm = await jetstreamManager(nc);
    return new Bus(nc, jsm, options.project, options.service, logger, options);
  }

  async #watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect')
        this.logger.warn({ server: s.server }, 'NATS disconnected; reconnecting');
      else if (s.type === 'reconnect') this.logger.info({ server: s.server }, 'NATS reconnected');
    }
  }

  ensureStream(spec: StreamSpec): Promise<void> {
    return ensureStream(this.jsm, spec);
  }

  ensureConsumer(spec: ConsumerSpec): Promise<void> {
    return ensureConsumer(this.jsm, spec);
  }

  /**
   * Opens (creating when missing) a bucket. The project's tasks and builds buckets are created
   * with the records' max age (CP_RECORD_MAX_AGE_S, projectBucketMaxAgeMs) unless the spec names
   * one; an existing bucket's is ensureProjectStreams' to change (provisioning's), not every
   * opener's.
   */
  async kv<S extends z.ZodType>(bucket: string, schema: S, spec?: KvSpec): Promise<TypedKv<S>> {
    const aged =
      spec?.maxAgeMs === undefined ? projectBucketMaxAgeMs(this.project, bucket) : undefined;
    return new TypedKv(
      await ensureKv(this.nc, bucket, {
        ...spec,
        ...(aged === undefined ? {} : { defaultMaxAgeMs: aged }),
      }),
      schema,
      this.logger,
      this.jsm,
      bucket,
      this.#acked,
      // On a cluster (CP_REPLICAS > 1) every get asks the leader unless told otherwise: a direct
      // get may be answered by a replica behind a write just made (KvSpec.leaderReads).
      spec?.leaderReads ?? defaultReplicas() > 1,
      this.#direct,
    );
  }

  /**
   * A JetStream publish, resolved with its ack: `js.publish` for less CPU (no timer or Error
   * per message), failing as it does.
   */
  jsPublish(subject: string, data: Uint8Array | string, options: AckedPublishOptions = {}) {
    if (this.#acked) return this.#acked.publish(subject, data, options);
    const { msgID, expectLastSubjectSequence: last, timeoutMs } = options;
    return this.js.publish(subject, data, {
      ...(msgID === undefined ? {} : { msgID }),
      ...(last === undefined ? {} : { expect: { lastSubjectSequence: last } }),
      timeout: timeoutMs ?? 5_000,
    });
  }

  /**
   * Validates the body, wraps it in an envelope and publishes to JetStream, waiting for the ack.
   * Every message carries a msgId (the envelope id unless given), so the retries made while the
   * server is unreachable or restarting (up to retryForMs) can never store it twice. Each try
   * waits for its ack as ACK_WAIT_MS says: briefly at first, so a publish lost with its stream's
   * leader is sent again to the one elected next, not after nats.js's 5 s.
   */
  async publish<T extends MessageType>(
    type: T,
    subject: string,
    body: BodyInputOf<T>,
    options: PublishOptions = {},
  ): Promise<PubAck> {
    return this.#publishEnvelope(subject, this.envelope(type, body, options.cid), options);
  }

  /**
   * As publish, for a body its caller validated already (a chef's build result, checked once
   * for its KV write and for this message): enveloped and published with no second parse.
   */
  publishValidated<T extends MessageType>(
    type: T,
    subject: string,
    body: BodyOf<T>,
    options: PublishOptions = {},
  ): Promise<PubAck> {
    const env = envelope(type, body, {
      project: this.project,
      source: this.service,
      cid: options.cid,
    });
    return this.#publishEnvelope(subject, env, options);
  }

  async #publishEnvelope(
    subject: string,
    env: Envelope<unknown>,
    options: PublishOptions,
  ): Promise<PubAck> {
    const data = JSON.stringify(env);
    const msgID = options.msgId ?? env.id;
    const deadline = performance.now() + (options.retryForMs ?? 30_000);
    for (let delay = 100, attempt = 0; ; delay = Math.min(delay * 2, 2_000), attempt++) {
      const timeoutMs = ACK_WAIT_MS[Math.min(attempt, ACK_WAIT_MS.length - 1)];
      const tried = performance.now();
      try {
        return await this.jsPublish(subject, data, { msgID, timeoutMs });
      } catch (err) {
        if (isQuotaExceeded(err))
          throw new StorageQuotaError(this.project, subject, { cause: err });
        // A try that waited for its ack has waited its turn: sent again at once.
        const wait = Math.max(0, delay - (performance.now() - tried));
        if (this.#closing || performance.now() + wait > deadline || !isRetryable(err)) throw err;
        this.logger.warn(
          { subject, err: (err as Error).message, ackWaitMs: timeoutMs, retryInMs: wait },
          'publish not acknowledged; retrying',
        );
        await sleep(wait);
      }
    }
  }

  /** Core NATS publish (no persistence): live events, log lines. */
  emit<T extends MessageType>(type: T, subject: string, body: BodyInputOf<T>, cid?: string): void {
    this.nc.publish(subject, this.encode(type, body, cid));
  }

  /**
   * As emit, for a body made only of parts its caller validated already (MajorDomo's artefact
   * records, each checked once for its KV write): enveloped and sent with no second parse.
   */
  emitValidated<T extends MessageType>(
    type: T,
    subject: string,
    body: BodyOf<T>,
    cid?: string,
  ): void {
    const env = envelope(type, body, { project: this.project, source: this.service, cid });
    this.nc.publish(subject, JSON.stringify(env));
  }

  encode<T extends MessageType>(type: T, body: BodyInputOf<T>, cid?: string): string {
    return JSON.stringify(this.envelope(type, body, cid));
  }

  envelope<T extends MessageType>(
    type: T,
    body: BodyInputOf<T>,
    cid?: string,
  ): Envelope<BodyOf<T>> {
    const parsed = messageTypes[type].safeParse(body);
    if (!parsed.success) {
      throw new MessageInvalidError(
        `refusing to send an invalid ${type}`,
        issuesOf(parsed.error, ['body']),
      );
    }
    return envelope(type, parsed.data as BodyOf<T>, {
      project: this.project,
      source: this.service,
      cid,
    });
  }

  /** Pulls from a durable consumer with explicit ack, redelivery and dead letters. */
  async consume<T extends MessageType>(options: ConsumeOptions<T>): Promise<Consumer> {
    await ensureConsumer(this.jsm, {
      stream: options.stream,
      durable: options.durable,
      ...(options.filterSubject ? { filterSubject: options.filterSubject } : {}),
      maxDeliver: options.maxDeliver ?? 5,
      ackWaitMs: options.ackWaitMs ?? 30_000,
      maxAckPending: options.maxAckPending ?? Math.max(options.concurrency ?? 1, 1) * 4,
      ...(options.deliverNew ? { deliverNew: true } : {}),
    });
    const consumer = await startConsumer(this, options);
    this.#consumers.push(consumer);
    return consumer;
  }

  /**
   * Subscribes (core NATS, no consumer) with `consume`'s validation: the handler gets valid
   * envelopes of the accepted types; anything else is dead-lettered (listen.ts).
   */
  listen<T extends MessageType>(subject: string, options: ListenOptions<T>): Listener {
    return listen(this, subject, options);
  }

  /** Publishes a message that could not be processed to `cp.<project>.dlq.<service>`. */
  async deadLetter(
    subject: string,
    data: Uint8Array,
    reason: string,
    issues: readonly Issue[],
    deliveries = 1,
  ): Promise<void> {
    const text = new TextDecoder().decode(data.subarray(0, MAX_DEAD_LETTER_DATA));
    try {
      // Tried once: a letter is worth keeping, not worth holding its caller (a reply, a handler)
      // for the 30 s a publish may retry while its stream is missing or between leaders.
      await this.publish(
        'dead.letter',
        subjects.deadLetter(this.project, this.service),
        {
          service: this.service,
          subject,
          reason,
          // Whatever a caller passed (zod's own issues have array paths): the letter must validate.
          issues: normaliseIssues(issues),
          data: text,
          deliveries,
        },
        { retryForMs: 0 },
      );
    } catch (err) {
      // The dead-letter stream may not exist (or NATS is down): the log line is the record then.
      this.logger.error({ err, subject, reason }, 'could not publish dead letter');
    }
  }

  /**
   * Answers requests on `cp.<project>.api.<verb>`: the request body is validated (a bad one gets
   * an error reply naming the field), the handler's result is sent back in an envelope. A result
   * too big for one message (the server's max payload) is sent in parts (protocol's
   * ChunkedResult; request() joins them).
   */
  serve<S extends z.ZodType, R>(
    verb: string,
    schema: S,
    handler: (body: z.infer<S>, cid: string) => Promise<R>,
  ): void {
    if (!this.#chunksServed) {
      this.#chunksServed = true;
      this.#answer(
        subjects.apiChunk(this.project, this.#chunks.instance),
        'chunk',
        ChunkRequest,
        async (req) => ({ text: this.#chunks.part(req.id, req.part) }),
      );
    }
    this.#answer(subjects.api(this.project, verb), verb, schema, handler, `${this.service}-api`);
  }

  #answer<S extends z.ZodType, R>(
    subject: string,
    verb: string,
    schema: S,
    handler: (body: z.infer<S>, cid: string) => Promise<R>,
    queue?: string,
  ): void {
    const stats = this.srv?.endpoint(verb, subject);
    subscribeMessages(
      this.nc,
      this.logger,
      subject,
      (msg) => {
        const started = process.hrtime.bigint();
        const reply = (body: unknown, cid: string, error?: string) => {
          if (stats) ServiceResponder.record(stats, started, error);
          if (!msg.reply) return;
          const wrap = (b: unknown) =>
            JSON.stringify(
              envelope('api.reply', b, { project: this.project, source: this.service, cid }),
            );
          const budget = this.#replyBudget();
          const answer = body as { ok?: boolean; result?: unknown };
          // Serialised once, in pieces cut into parts: never one string of tens of MB (100k
          // artefacts' graph) nor copies of it.
          const result = answer.ok ? partsOf(jsonPieces(answer.result), budget) : undefined;
          if (!result || result.bytes <= budget) {
            msg.respond(wrap(body));
            return;
          }
          const { id, parts } = this.#chunks.keep(result);
          msg.respond(wrap({ ok: true, chunked: { instance: this.#chunks.instance, id, parts } }));
        };
        let cid = 'unknown';
        void (async () => {
          try {
            const env = Envelope.safeParse(JSON.parse(new TextDecoder().decode(msg.data)));
            if (!env.success)
              throw new MessageInvalidError('invalid request envelope', issuesOf(env.error));
            cid = env.data.cid;
            const body = schema.safeParse(env.data.body);
            if (!body.success)
              throw new MessageInvalidError(`invalid ${verb} request`, issuesOf(body.error));
            reply({ ok: true, result: await handler(body.data, cid) }, cid);
          } catch (err) {
            const { code, message, field } = errorReply(err);
            if (code === 'CP_INTERNAL')
              this.logger.error({ err, verb, cid }, 'request handler failed');
            else if (code === 'CP_MESSAGE_INVALID') {
              // A request that is not one is kept for whoever looks into it, like any message.
              this.logger.warn({ verb, cid, reason: message }, 'invalid request dead-lettered');
              await this.deadLetter(msg.subject, msg.data, message, issuesFromError(err));
            }
            reply(
              { ok: false, error: { code, message, ...(field ? { field } : {}) } },
              cid,
              message,
            );
          }
        })();
      },
      queue ? { queue } : {},
    );
  }

  /** The bytes one reply may take: the server's max payload less room for the envelope. */
  #replyBudget(): number {
    return (this.nc.info?.max_payload ?? 1024 * 1024) - ENVELOPE_ROOM;
  }

  /**
   * Calls `cp.<project>.api.<verb>` and returns the validated result, or throws RemoteError. A
   * result sent in parts is read part by part (a few at once), joined, then validated whole.
   */
  async request<S extends z.ZodType>(
    verb: string,
    body: unknown,
    resultSchema: S,
    options: { timeoutMs?: number; cid?: string; headers?: MsgHdrs } = {},
  ): Promise<z.infer<S>> {
    const answer = await this.#call(subjects.api(this.project, verb), verb, body, options);
    let result = answer.result;
    if (answer.chunked !== undefined) {
      const c = ChunkedResult.safeParse(answer.chunked);
      if (!c.success)
        throw new MessageInvalidError(`invalid ${verb} reply in parts`, issuesOf(c.error));
      const { instance, id, parts } = c.data;
      const subject = subjects.apiChunk(this.project, instance);
      const texts: string[] = new Array(parts);
      let next = 0;
      const fetchParts = async () => {
        for (let part = next++; part < parts; part = next++) {
          const got = await this.#call(subject, 'chunk', { id, part }, options);
          const r = ChunkReply.safeParse(got.result);
          if (!r.success)
            throw new MessageInvalidError(`invalid part of a ${verb} reply`, issuesOf(r.error));
          texts[part] = r.data.text;
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARTS_AT_ONCE, parts) }, fetchParts));
      try {
        result = JSON.parse(texts.join(''));
      } catch (err) {
        throw new MessageInvalidError(`${verb} reply in parts: ${(err as Error).message}`);
      }
    }
    const parsed = resultSchema.safeParse(result);
    if (!parsed.success)
      throw new MessageInvalidError(`invalid ${verb} reply`, issuesOf(parsed.error));
    return parsed.data;
  }

  /** One request/reply: the answer's body when ok, else its error as a RemoteError. */
  async #call(
    subject: string,
    verb: string,
    body: unknown,
    options: { timeoutMs?: number; cid?: string; headers?: MsgHdrs },
  ): Promise<{ result?: unknown; chunked?: unknown }> {
    const data = JSON.stringify(
      envelope(`api.${verb}`, body, {
        project: this.project,
        source: this.service,
        cid: options.cid,
      }),
    );
    let msg: Awaited<ReturnType<NatsConnection['request']>>;
    try {
      msg = await this.nc.request(subject, data, {
        timeout: options.timeoutMs ?? 5_000,
        ...(options.headers ? { headers: options.headers } : {}),
      });
    } catch (err) {
      throw new RemoteError(
        'CP_UNAVAILABLE',
        `no answer to ${verb} from project ${this.project} (${(err as Error).message}): is MajorDomo running for this project?`,
      );
    }
    const reply = parseAnswer(verb, msg.data);
    if (!reply.ok) throw new RemoteError(reply.error.code, reply.error.message, reply.error.field);
    return reply;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Stops consumers (in-flight handlers finish and ack), then drains the connection. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await Promise.allSettled(this.#consumers.map((c) => c.stop()));
    this.srv?.stop();
    await this.nc.drain().catch(() => this.nc.close());
  }
}

/** Room left in a reply for its envelope (ids, time, project, source, cid). */
const ENVELOPE_ROOM = 4096;
/** Parts of one answer read at once. */
const PARTS_AT_ONCE = 4;

/** The body of an answer `serve` sends: a result (or its parts), or the error. */
const Answer = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    result: z.unknown().optional(),
    chunked: z.unknown().optional(),
  }),
  z.object({
    ok: z.literal(false),
    error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
  }),
]);

/** An answer to a request, validated: anything else is a MessageInvalidError naming the field. */
function parseAnswer(verb: string, data: Uint8Array): z.infer<typeof Answer> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    throw new MessageInvalidError(`malformed ${verb} reply`, [
      { path: '', message: `not JSON: ${(err as Error).message}` },
    ]);
  }
  const env = Envelope.safeParse(json);
  if (!env.success)
    throw new MessageInvalidError(`invalid ${verb} reply envelope`, issuesOf(env.error));
  const answer = Answer.safeParse(env.data.body);
  if (!answer.success)
    throw new MessageInvalidError(`invalid ${verb} reply`, issuesOf(answer.error, ['body']));
  return answer.data;
}

/**
 * What a request's error reply says: malformed JSON and invalid bodies (a MessageInvalidError, or
 * a ZodError from the handler) are validation errors naming the field, not internal ones.
 */
export function errorReply(err: unknown): { code: string; message: string; field?: string } {
  if (err instanceof SyntaxError)
    return { code: 'CP_MESSAGE_INVALID', message: `malformed JSON: ${err.message}` };
  if (isValidationError(err)) {
    const issues = issuesFromError(err);
    const invalid = new MessageInvalidError('invalid request', issues);
    return {
      code: invalid.code,
      message: invalid.message,
      ...(invalid.field ? { field: invalid.field } : {}),
    };
  }
  const e = err as Error & { code?: unknown; field?: unknown };
  return {
    code: typeof e?.code === 'string' ? e.code : 'CP_INTERNAL',
    message: e?.message ?? String(err),
    ...(typeof e?.field === 'string' ? { field: e.field } : {}),
  };
}
