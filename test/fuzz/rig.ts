import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { decode, type Issue, type MessageInvalidError, type TypedKv } from '@computepods/bus';
import {
  BuildArtefactRequest,
  CanBuildFrom,
  CancelRequest,
  DeadLetter,
  Envelope,
  GraphRequest,
  kvKey,
  type MessageType,
  PathRequest,
  RulesDeclared,
  StatusRequest,
  streams,
} from '@computepods/protocol';
import { z } from 'zod';
import { Stack } from '../src/stack.js';
import type { FuzzContext, FuzzInput } from './arbitraries.js';
import { GOAL, sha256 } from './arbitraries.js';

/**
 * How one input was handled:
 *   dead-lettered    a dead letter for exactly these bytes on this subject arrived
 *   answered-error   an error reply (NATS) or a 4xx (REST) a caller can act on
 *   answered-ok      a success reply or a 2xx
 *   accepted         valid, taken in (JetStream acked, KV stored, file written); nothing to wait for
 *   ignored          valid and not this service's to answer (a control for a task no runner holds)
 *   unanswered       nothing came back in time
 * `problem` is set when the outcome breaks a fuzzing property: an invalid input dropped without a
 * dead letter, an invalid request answered as anything but a validation error naming the field,
 * CP_INTERNAL or a 5xx, a route served without a token, no answer where one is due.
 */
export type OutcomeClass =
  | 'dead-lettered'
  | 'answered-error'
  | 'answered-ok'
  | 'accepted'
  | 'ignored'
  | 'unanswered';

export interface Outcome {
  readonly target: string;
  readonly outcome: OutcomeClass;
  /** Whether the input failed the protocol's own validation (what the service must refuse). */
  readonly invalid: boolean;
  readonly problem?: string;
  /** The error code answered (NATS) or the HTTP status and code (REST). */
  readonly code?: string;
  readonly ms: number;
}

/** The message types each consumed subject accepts (what the consuming service decodes). */
const ACCEPTS: Record<string, MessageType[]> = {
  'files.changed': ['files.changed'],
  'build.result': ['build.result'],
  'build.request': ['build.requested'],
  tasks: ['task.submitted'],
  'how-to-build': ['rules.how_to_build'],
  'build.cancel': ['build.cancel'],
  'task.control': ['task.control'],
};
/** MajorDomo's request schemas by api verb (services/majordomo/src/api.ts). */
const API_SCHEMAS: Record<string, z.ZodType> = {
  status: StatusRequest,
  build: BuildArtefactRequest,
  artefact: PathRequest,
  why: PathRequest,
  graph: GraphRequest,
  plan: z.object({}).default({}),
  builds: z.object({}).default({}),
  cancel: CancelRequest,
};

type KV = TypedKv<z.ZodUnknown>['kv'];
const utf8 = new TextDecoder();
const MAX_DEAD_LETTER_DATA = 64 * 1024;
/** MajorDomo's deadline for "can build from" answers in the rig (CP_HOW_TO_BUILD_MS). */
const HOW_TO_BUILD_MS = 500;
const letterKey = (subject: string, data: Uint8Array) =>
  `${subject}\n${utf8.decode(data.subarray(0, MAX_DEAD_LETTER_DATA))}`;

export interface RigOptions {
  readonly project?: string;
  /** How long an invalid input may take to be dead-lettered or answered (default 20 s). */
  readonly answerMs?: number;
}

/**
 * A whole stack for fuzzing (nats-server + MajorDomo, a chef with one rule, a runner and an
 * fswatcher, each its own OS process with its role's credentials) and the means to throw one
 * input at it and judge what came back. The test acts as the project's admin: it may publish on
 * every subject and write every bucket, as a compromised or buggy admin tool could.
 */
export class FuzzRig implements AsyncDisposable {
  readonly ctx: FuzzContext;
  readonly answerMs: number;
  /** Dead letters seen and not yet matched to an input, by subject + data. */
  readonly #letters = new Map<string, number>();
  readonly #waiters = new Map<string, Array<() => void>>();
  /** Valid inputs sent, by letter key: a dead letter for one is counted for its target. */
  readonly #validSent = new Map<string, string>();
  readonly validDeadLettered = new Map<string, number>();
  /** Why inputs the schemas accept were dead-lettered all the same (a handler refused them). */
  readonly validLetterReasons = new Map<string, number>();
  lettersSeen = 0;
  /** Dead letters waited for in vain (the input was judged unanswered), by letter key. */
  readonly #overdue = new Map<string, number>();
  /** Of those, how many came later after all. */
  lateLetters = 0;
  /** The target of each dead letter waited for (for a breakdown of the late and the missing). */
  readonly #letterTarget = new Map<string, string>();
  /** Late dead letters by target. */
  readonly lateByTarget = new Map<string, number>();
  /** Dead letters still overdue, by target, with a few of their keys (subject, data) as samples. */
  overdueByTarget(): Map<string, { n: number; samples: string[] }> {
    const out = new Map<string, { n: number; samples: string[] }>();
    for (const [key, n] of this.#overdue) {
      const t = this.#letterTarget.get(key) ?? '?';
      const e = out.get(t) ?? { n: 0, samples: [] };
      e.n += n;
      if (e.samples.length < 5) e.samples.push(key.slice(0, 300));
      out.set(t, e);
    }
    return out;
  }
  /** Dead letters still overdue: inputs dropped unless they come yet. */
  get overdue(): number {
    let n = 0;
    for (const c of this.#overdue.values()) n += c;
    return n;
  }
  readonly #replies = new Map<string, (data: Uint8Array) => void>();
  #inbox = 0;
  readonly #kv = new Map<string, KV>();
  /** Bucket values put back after a fuzzed write (the project record, its queue). */
  readonly #restore: Array<{ bucket: string; key: string; data: Uint8Array | undefined }> = [];
  #sentinels = 0;
  /** Answers the rogue chef gives, by the goal asked about (how-to-build.answer). */
  readonly #answers = new Map<
    string,
    { data: Uint8Array; asked: (reply: string, lateMs: Promise<number>) => void }
  >();
  #answerGoals = 0;
  /**
   * Answers the server had from the rogue chef only after MajorDomo's gathering deadline (this
   * process busy): MajorDomo no longer reads that question's answers, by design (scatter-gather
   * with a deadline), so nothing of them is owed. Counted, not judged.
   */
  answersAfterDeadline = 0;
  #silent: NodeJS.Timeout | undefined;

  private constructor(
    readonly stack: Stack,
    ctx: FuzzContext,
    options: RigOptions,
  ) {
    this.ctx = ctx;
    this.answerMs = options.answerMs ?? 20_000;
  }

  static async start(options: RigOptions = {}): Promise<FuzzRig> {
    const stack = await Stack.start(options.project ?? 'fuzz');
    try {
      const chefFile = stack.writeUpperChef();
      const quiet = { CP_LOG_LEVEL: 'info' };
      await Promise.all([
        stack.start('majordomo', {
          ...quiet,
          CP_CHEF_TIMEOUT_MS: '3000',
          CP_HOW_TO_BUILD_MS: String(HOW_TO_BUILD_MS),
        }),
        stack.start('chef', {
          ...quiet,
          CP_CHEF: 'text',
          CP_CHEF_DEFINITION: chefFile,
          CP_CHEF_HEARTBEAT_MS: '500',
        }),
        stack.start('runner', quiet),
        stack.start('fswatcher', quiet),
      ]);
      const url = await stack.httpUrl();
      const port = Number(new URL(url).port);
      const spec = (await (
        await fetch(`${url}/openapi.json`, {
          headers: { authorization: `Bearer ${stack.apiToken}` },
        })
      ).json()) as { paths: Record<string, Record<string, unknown>> };
      const routes = Object.entries(spec.paths).flatMap(([path, methods]) =>
        Object.keys(methods).map((m) => [m.toUpperCase(), path] as const),
      );
      const rig = new FuzzRig(
        stack,
        {
          project: stack.project,
          workspace: stack.workspace,
          chef: 'text',
          pod: 'pod-test',
          queue: 'local',
          host: `127.0.0.1:${port}`,
          token: stack.apiToken,
          routes,
        },
        options,
      );
      rig.#listen();
      for (const key of ['project', 'queue.local']) {
        const bucket = `cp_${stack.project}_config`;
        const e = await (await rig.#bucket(bucket)).get(key);
        rig.#restore.push({ bucket, key, data: e?.operation === 'PUT' ? e.value : undefined });
      }
      return rig;
    } catch (err) {
      await stack[Symbol.asyncDispose]();
      throw err;
    }
  }

  #listen(): void {
    const nc = this.stack.bus.nc;
    nc.subscribe(`cp.${this.ctx.project}.dlq.*`, {
      callback: (_e, m) => {
        const env = Envelope.safeParse(m.json());
        const body = env.success ? DeadLetter.safeParse(env.data.body) : undefined;
        if (!body?.success) return;
        this.lettersSeen++;
        const key = `${body.data.subject}\n${body.data.data}`;
        const valid = this.#validSent.get(key);
        if (valid) {
          this.#validSent.delete(key);
          this.validDeadLettered.set(valid, (this.validDeadLettered.get(valid) ?? 0) + 1);
          const why = `${valid} (${body.data.service}): ${body.data.reason.slice(0, 160)}`;
          this.validLetterReasons.set(why, (this.validLetterReasons.get(why) ?? 0) + 1);
          return;
        }
        const waiting = this.#waiters.get(key);
        const w = waiting?.shift();
        if (waiting && waiting.length === 0) this.#waiters.delete(key);
        if (w) return w();
        const overdue = this.#overdue.get(key) ?? 0;
        if (overdue > 0) {
          // Given up on as unanswered, and come after all: late, not dropped.
          if (overdue === 1) this.#overdue.delete(key);
          else this.#overdue.set(key, overdue - 1);
          this.lateLetters++;
          const t = this.#letterTarget.get(key) ?? '?';
          this.lateByTarget.set(t, (this.lateByTarget.get(t) ?? 0) + 1);
          return;
        }
        this.#letters.set(key, (this.#letters.get(key) ?? 0) + 1);
      },
    });
    // The rogue chef: answers MajorDomo's question about a goal with the fuzzed bytes.
    nc.subscribe(`cp.${this.ctx.project}.rules.how-to-build`, {
      callback: (_e, m) => {
        let goal: unknown;
        let asked = Number.NaN;
        try {
          const q = m.json() as { time?: unknown; body?: { goal?: unknown } };
          goal = q.body?.goal;
          asked = typeof q.time === 'string' ? Date.parse(q.time) : Number.NaN;
        } catch {
          return;
        }
        const a = typeof goal === 'string' ? this.#answers.get(goal) : undefined;
        if (!a || !m.reply) return;
        this.#answers.delete(goal as string);
        m.respond(a.data);
        // How long after the question was made the server surely had the answer: its answer to
        // a ping sent after it (one machine, one clock). Before MajorDomo's deadline, MajorDomo
        // reads it (it reads what the server sent it before it gives up); later, not by design.
        a.asked(
          m.reply,
          nc.flush().then(
            () => Date.now() - asked,
            () => Number.NaN,
          ),
        );
      },
    });
    nc.subscribe('_INBOX.fuzz.>', {
      callback: (_e, m) => {
        const done = this.#replies.get(m.subject);
        if (done) {
          this.#replies.delete(m.subject);
          done(m.data);
        }
      },
    });
  }

  /** Resolves true once a dead letter for these bytes on this subject arrived. */
  #letter(subject: string, data: Uint8Array, target = 'ping'): Promise<boolean> {
    const key = letterKey(subject, data);
    const have = this.#letters.get(key) ?? 0;
    if (have > 0) {
      if (have === 1) this.#letters.delete(key);
      else this.#letters.set(key, have - 1);
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const list = this.#waiters.get(key) ?? [];
      list.push(done);
      this.#waiters.set(key, list);
      const timer = setTimeout(() => {
        const l = this.#waiters.get(key);
        const i = l?.indexOf(done) ?? -1;
        if (l && i >= 0) l.splice(i, 1);
        if (l?.length === 0) this.#waiters.delete(key);
        this.#overdue.set(key, (this.#overdue.get(key) ?? 0) + 1);
        this.#letterTarget.set(key, target);
        resolve(false);
      }, this.answerMs);
    });
  }

  /** Publishes with a reply subject of ours; resolves with the first reply or undefined. */
  #request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array | undefined> {
    const inbox = `_INBOX.fuzz.${++this.#inbox}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#replies.delete(inbox);
        resolve(undefined);
      }, timeoutMs);
      this.#replies.set(inbox, (d) => {
        clearTimeout(timer);
        resolve(d);
      });
      this.stack.bus.nc.publish(subject, data, { reply: inbox });
    });
  }

  async #bucket(bucket: string): Promise<KV> {
    let kv = this.#kv.get(bucket);
    if (!kv) {
      kv = (await this.stack.bus.kv(bucket, z.unknown())).kv;
      this.#kv.set(bucket, kv);
    }
    return kv;
  }

  /** Whether the consuming service's own decoding refuses these bytes, and the issues it names. */
  #validity(input: Extract<FuzzInput, { kind: 'js' | 'pub' | 'req' }>): {
    invalid: boolean;
    issues: Issue[];
  } {
    if (input.target === 'api') {
      const verb = input.subject.split('.').pop()!;
      try {
        const env = Envelope.safeParse(JSON.parse(utf8.decode(input.data)));
        if (!env.success)
          return {
            invalid: true,
            issues: env.error.issues.map((i) => ({ path: i.path.join('.'), message: '' })),
          };
        const body = API_SCHEMAS[verb]!.safeParse(env.data.body);
        return body.success
          ? { invalid: false, issues: [] }
          : {
              invalid: true,
              issues: body.error.issues.map((i) => ({ path: i.path.join('.'), message: '' })),
            };
      } catch {
        return { invalid: true, issues: [] };
      }
    }
    try {
      decode(input.data, ACCEPTS[input.target]!, this.ctx.project);
      return { invalid: false, issues: [] };
    } catch (err) {
      return { invalid: true, issues: [...(err as MessageInvalidError).issues] };
    }
  }

  /** Sends one input and judges the outcome (see Outcome). Never throws for the input's sake. */
  async send(input: FuzzInput): Promise<Outcome> {
    const t0 = performance.now();
    let code: string | undefined;
    const done = (outcome: OutcomeClass, invalid: boolean, problem?: string): Outcome => ({
      target: input.target,
      outcome,
      invalid,
      ...(problem ? { problem } : {}),
      ...(code ? { code } : {}),
      ms: performance.now() - t0,
    });
    switch (input.kind) {
      case 'js':
      case 'pub': {
        const { invalid } = this.#validity(input);
        const key = letterKey(input.subject, input.data);
        if (!invalid) this.#validSent.set(key, input.target);
        if (input.kind === 'js') {
          try {
            await this.stack.bus.js.publish(input.subject, input.data, { timeout: 10_000 });
          } catch (err) {
            return done(
              'unanswered',
              invalid,
              `JetStream did not store it: ${(err as Error).message}`,
            );
          }
        } else {
          // A question's answer (how to build) is not awaited: only its refusal matters.
          void this.#request(input.subject, input.data, 2_000);
        }
        if (!invalid) return done('accepted', false);
        return (await this.#letter(input.subject, input.data, input.target))
          ? done('dead-lettered', true)
          : done('unanswered', true, 'invalid input dropped without a dead letter');
      }
      case 'req': {
        const { invalid, issues } = this.#validity(input);
        if (!invalid) this.#validSent.set(letterKey(input.subject, input.data), input.target);
        const lettered = invalid
          ? this.#letter(input.subject, input.data, input.target)
          : undefined;
        // A control for a task no runner holds is answered by no one, by design (every runner
        // hears it, only the holder answers).
        const optional = input.target === 'task.control' && !invalid;
        const raw = await this.#request(input.subject, input.data, optional ? 300 : this.answerMs);
        if (!raw) {
          if (optional) return done('ignored', false);
          return done('unanswered', invalid, 'request not answered');
        }
        let reply: { ok?: boolean; error?: { code?: string; message?: string; field?: string } };
        try {
          const parsed = JSON.parse(utf8.decode(raw)) as Record<string, unknown>;
          reply = (parsed.type === 'api.reply' ? parsed.body : parsed) as typeof reply;
        } catch {
          return done(
            'unanswered',
            invalid,
            `reply is not JSON: ${utf8.decode(raw).slice(0, 200)}`,
          );
        }
        code = reply.error?.code;
        if (code === 'CP_INTERNAL')
          return done('answered-error', invalid, `CP_INTERNAL: ${reply.error?.message}`);
        if (!invalid) return done(reply.ok ? 'answered-ok' : 'answered-error', false);
        if (reply.ok) return done('answered-ok', true, 'invalid request answered ok');
        if (code !== 'CP_MESSAGE_INVALID')
          return done(
            'answered-error',
            true,
            `invalid request answered ${code}, not CP_MESSAGE_INVALID`,
          );
        if (issues[0]?.path && !reply.error?.field)
          return done(
            'answered-error',
            true,
            `validation error names no field: ${reply.error?.message}`,
          );
        if (!(await lettered))
          return done('answered-error', true, 'invalid request answered but not dead-lettered');
        return done('dead-lettered', true);
      }
      case 'kv': {
        const kv = await this.#bucket(input.bucket);
        let key = input.key;
        // The chef's own record holds its rules: only invalid values there (an invalid put must be
        // ignored); a valid foreign declaration is for a chef of another name.
        if (input.target === 'kv.rules' && key === kvKey(this.ctx.chef)) {
          let valid = false;
          try {
            valid = RulesDeclared.safeParse(JSON.parse(utf8.decode(input.data))).success;
          } catch {
            valid = false;
          }
          if (valid) key = `fz${key}`;
        }
        try {
          await kv.put(key, input.data);
        } catch (err) {
          return done('unanswered', false, `KV put refused: ${(err as Error).message}`);
        }
        // The project record and its queue decide whether anything builds: put back at once
        // (the services saw the fuzzed value; fail-closed on an invalid record is by design).
        const back = this.#restore.find((r) => r.bucket === input.bucket && r.key === key);
        if (back) {
          // Retried: a put not acknowledged in time (a loaded server) must not leave it fuzzed.
          for (let attempt = 1; ; attempt++) {
            try {
              if (back.data) await kv.put(key, back.data);
              else await kv.delete(key);
              break;
            } catch (err) {
              if (attempt >= 5) throw err;
            }
          }
        }
        return done('accepted', false);
      }
      case 'rest':
        return this.#rest(input, done);
      case 'answer':
        return this.#answer(input, done);
      case 'fs': {
        const full = join(this.ctx.workspace, input.path);
        try {
          mkdirSync(dirname(full), { recursive: true });
          writeFileSync(full, input.data);
        } catch {
          return done('ignored', false); // the filesystem refused the name
        }
        return done('accepted', false);
      }
    }
  }

  /**
   * MajorDomo asks every declared chef how to build a goal nobody declares (an api.build of it);
   * the rogue chef answers with the input. A declared chef that never answers (fz-silent, put
   * again every second) keeps MajorDomo gathering until its deadline, so the answer is read.
   */
  async #answer(
    input: Extract<FuzzInput, { kind: 'answer' }>,
    done: (o: OutcomeClass, invalid: boolean, problem?: string) => Outcome,
  ): Promise<Outcome> {
    if (!this.#silent) {
      const rules = await this.#bucket(`cp_${this.ctx.project}_rules`);
      const put = () =>
        rules
          .put('fz-silent', JSON.stringify({ chef: 'fz-silent', pod: 'p', rules: [] }))
          .catch(() => undefined);
      await put();
      this.#silent = setInterval(put, 1_000);
      await new Promise((r) => setTimeout(r, 1_000)); // MajorDomo has it declared
    }
    const goal = `fz/answer-${++this.#answerGoals}.goal`;
    const data = new TextEncoder().encode(
      utf8.decode(input.data).replaceAll(JSON.stringify(GOAL), JSON.stringify(goal)),
    );
    let invalid = true;
    try {
      const env = Envelope.safeParse(JSON.parse(utf8.decode(data)));
      invalid = !(env.success && CanBuildFrom.safeParse(env.data.body).success);
    } catch {
      invalid = true;
    }
    let answeredAfterMs: Promise<number> = Promise.resolve(Number.NaN);
    const asked = new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), this.answerMs);
      this.#answers.set(goal, {
        data,
        asked: (reply, lateMs) => {
          clearTimeout(timer);
          answeredAfterMs = lateMs;
          resolve(reply);
        },
      });
    });
    let reply: string | undefined;
    let said = '';
    for (let attempt = 1; ; attempt++) {
      const raw = await this.#request(
        `cp.${this.ctx.project}.api.build`,
        this.#envelope('api.build', { path: goal }),
        this.answerMs,
      );
      said = raw ? utf8.decode(raw) : '';
      if (/"code":"CP_INTERNAL"/.test(said))
        return done('answered-error', invalid, `CP_INTERNAL: ${said.slice(0, 300)}`);
      // The question goes out before the build is answered: once answered, it was asked or not.
      reply = await (raw
        ? Promise.race([
            asked,
            new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000)),
          ])
        : asked);
      // A project record fuzzed a moment ago (kv.config) is refused, fail-closed, until it is put
      // back: the question was not asked because the build was refused; ask again.
      if (reply || !/"code":"CP_PROJECT_INACTIVE"/.test(said) || attempt >= 10) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    this.#answers.delete(goal);
    if (!reply)
      return done(
        'unanswered',
        invalid,
        `MajorDomo never asked how to build the goal: api.build answered ${said.slice(0, 300) || 'nothing'}`,
      );
    if (!invalid) return done('accepted', false);
    // At the server only once MajorDomo's deadline had passed: not read, by design.
    const afterMs = await answeredAfterMs;
    if (!(afterMs < HOW_TO_BUILD_MS)) {
      this.answersAfterDeadline++;
      return done('ignored', true);
    }
    return (await this.#letter(reply, data, input.target))
      ? done('dead-lettered', true)
      : done(
          'unanswered',
          true,
          `invalid answer dropped without a dead letter (at the server ${Math.round(afterMs)} ms after the question)`,
        );
  }

  #envelope(type: string, body: unknown): Uint8Array {
    const id = `${Date.now()}-${Math.random()}`;
    return new TextEncoder().encode(
      JSON.stringify({
        v: 1,
        id,
        time: new Date().toISOString(),
        project: this.ctx.project,
        source: 'fuzz',
        cid: id,
        type,
        body,
      }),
    );
  }

  #rest(
    input: Extract<FuzzInput, { kind: 'rest' }>,
    done: (o: OutcomeClass, invalid: boolean, problem?: string) => Outcome,
  ): Promise<Outcome> {
    const [host, port] = this.ctx.host.split(':');
    return new Promise((resolve) => {
      const socket = connect(Number(port), host!);
      const chunks: Buffer[] = [];
      let settled = false;
      let code: string | undefined;
      const finish = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(code ? { ...o, code } : o);
      };
      const timer = setTimeout(
        () => finish(done('unanswered', false, 'no HTTP answer')),
        this.answerMs,
      );
      socket.on('data', (c) => {
        chunks.push(c);
        const text = Buffer.concat(chunks).toString('latin1');
        // An event stream stays open: its headers are the answer.
        if (/^HTTP\/1\.1 200[\s\S]*content-type: text\/event-stream[\s\S]*\r\n\r\n/i.test(text))
          finish(done('answered-ok', false));
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
        if (!m)
          return finish(
            input.incomplete
              ? done('ignored', true)
              : done('unanswered', false, 'connection closed without an answer'),
          );
        const status = Number(m[1]);
        const body = text.slice(text.indexOf('\r\n\r\n') + 4);
        let error: { code?: string; message?: string; field?: string } | undefined;
        try {
          const b = body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '');
          error = (JSON.parse(b) as { error?: typeof error }).error;
        } catch {
          error = undefined;
        }
        code = `${status}${error?.code ? ` ${error.code}` : ''}`;
        // The API and its description need a token; the health probe and the web page's files do not.
        const protectedRoute = /^\/(api(\/|\?|$)|openapi\.json)/.test(input.path);
        if (status >= 500 && !(status === 503 && error?.code === 'CP_TOO_MANY_STREAMS'))
          return finish(
            done(
              'answered-error',
              false,
              `HTTP ${status} ${error?.code ?? ''}: ${error?.message ?? body.slice(0, 200)}`,
            ),
          );
        if (error?.code === 'CP_INTERNAL')
          return finish(done('answered-error', false, `CP_INTERNAL: ${error.message}`));
        if (status < 400) {
          if (!input.token && protectedRoute && input.method !== 'OPTIONS')
            return finish(done('answered-ok', false, `HTTP ${status} without a token`));
          return finish(done('answered-ok', false));
        }
        // A 4xx from the API says what was wrong (node's own 400 for a malformed request has no body).
        // Not a request node's HTTP parser can read (a space in the request line, headers over
        // 16 KiB): refused before any route, in fastify's client-error body.
        const notHttp = /^\{"error":"[^"]*","message":"[^"]*","statusCode":4\d\d\}$/.test(
          body.trim(),
        );
        if (body.trim() && !error?.code && input.method !== 'HEAD' && !notHttp)
          return finish(
            done(
              'answered-error',
              true,
              `HTTP ${status} without an error code: ${body.slice(0, 200)}`,
            ),
          );
        return finish(done('answered-error', true));
      });
      // Not half-closed: node's HTTP server drops a request whose client ended its side before
      // the answer was ready. A request short of its body is ended after a moment instead.
      socket.write(input.request);
      if (input.incomplete) setTimeout(() => socket.end(), 300);
    });
  }

  /** Processes that are not running any more (a crash is a failed fuzz run). */
  dead(): string[] {
    return [...this.stack.procs.values()]
      .filter((p) => !p.running)
      .map((p) => `${p.name} (exit ${p.exitCode})`);
  }

  /**
   * The system still builds: a new source saved in the workspace (the fswatcher sees it) is built
   * by the chef and runner into its artefact, recorded by MajorDomo with the right hash.
   */
  async sentinel(label = 'sentinel'): Promise<void> {
    const stem = `${label}-${++this.#sentinels}`;
    const text = `${stem} ${Date.now()}\n`;
    this.stack.write(`src/${stem}.txt`, text);
    const want = sha256(text.toUpperCase());
    await this.stack.until(
      `out/${stem}.upper`,
      (a) => a.status === 'up_to_date' && a.sha256 === want,
      90_000,
    );
  }

  /**
   * One ping through each service's input path, each resolving with its latency: an invalid
   * message through each JetStream consumer and plain subscription (answered by a dead letter,
   * in order behind what is queued), a request through MajorDomo's state queue and the runner's
   * control, a REST call. Infinity: no answer within `timeoutMs`.
   */
  async ping(timeoutMs = 30_000): Promise<Record<string, number>> {
    const p = this.ctx.project;
    const n = `${Date.now()}-${Math.random()}`;
    const junk = (tag: string) => new TextEncoder().encode(JSON.stringify({ ping: tag, n }));
    const timed = async (f: () => Promise<boolean>): Promise<number> => {
      const t0 = performance.now();
      const ok = await Promise.race([
        f(),
        new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs)),
      ]);
      return ok ? performance.now() - t0 : Number.POSITIVE_INFINITY;
    };
    const viaLetter = (subject: string, tag: string, js: boolean) =>
      timed(async () => {
        const data = junk(tag);
        if (js) await this.stack.bus.js.publish(subject, data, { timeout: timeoutMs });
        else this.stack.bus.nc.publish(subject, data);
        return this.#letter(subject, data);
      });
    const env = (type: string, body: unknown) =>
      new TextEncoder().encode(
        JSON.stringify({
          v: 1,
          id: `ping-${n}`,
          time: new Date().toISOString(),
          project: p,
          source: 'ping',
          cid: `ping-${n}`,
          type,
          body,
        }),
      );
    const [a, b, c, d, e, f, g, h] = await Promise.all([
      viaLetter(`cp.${p}.files.changed.${this.ctx.pod}`, 'files', true),
      viaLetter(`cp.${p}.build.result`, 'results', true),
      viaLetter(`cp.${p}.build.request.${this.ctx.chef}`, 'builds', true),
      viaLetter(`cp.${p}.tasks.${this.ctx.queue}`, 'tasks', true),
      viaLetter(`cp.${p}.rules.how-to-build`, 'how', false),
      // MajorDomo's state queue (every change goes through it): cancel a build it never had.
      timed(async () =>
        Boolean(
          await this.#request(
            `cp.${p}.api.cancel`,
            env('api.cancel', { taskId: `ping-${n}` }),
            timeoutMs,
          ),
        ),
      ),
      timed(async () =>
        Boolean(
          await this.#request(
            `cp.${p}.task.control`,
            env('task.control', { taskId: '', action: 'kill' }),
            timeoutMs,
          ),
        ),
      ),
      timed(async () => {
        const r = await fetch(`http://${this.ctx.host}/api/status`, {
          headers: { authorization: `Bearer ${this.ctx.token}` },
          signal: AbortSignal.timeout(timeoutMs),
        }).catch(() => undefined);
        await r?.arrayBuffer();
        return r?.status === 200;
      }),
    ]);
    return {
      'majordomo.files': a,
      'majordomo.results': b,
      'chef.builds': c,
      'runner.tasks': d,
      'chef.how-to-build': e,
      'majordomo.state': f,
      'runner.control': g,
      'majordomo.rest': h,
    };
  }

  /**
   * Messages each JetStream input path holds that its consumer has not finished (pending and
   * unacknowledged): what a ping sent now waits behind. Valid inputs are judged once stored
   * (accepted), so when a service is slower than the fuzzer they queue up; -1: not known.
   */
  async backlog(): Promise<Record<string, number>> {
    const p = this.ctx.project;
    const paths: Array<[string, string, string]> = [
      ['majordomo.files', streams.files(p), 'majordomo-files'],
      ['majordomo.results', streams.events(p), 'majordomo-results'],
      ['majordomo.records', streams.buildRecords(p), 'majordomo-builds'],
      ['chef.builds', streams.builds(p), `chef-${this.ctx.chef}`],
      ['runner.tasks', streams.tasks(p), `runner-${this.ctx.queue}`],
    ];
    const out: Record<string, number> = {};
    await Promise.all(
      paths.map(async ([path, stream, durable]) => {
        const info = await this.stack.bus.jsm.consumers
          .info(stream, durable)
          .catch(() => undefined);
        out[path] = info ? info.num_pending + info.num_ack_pending : -1;
      }),
    );
    return out;
  }

  /** A MajorDomo killed and started again: it reads every bucket it keeps state in. */
  async restartMajorDomo(): Promise<void> {
    await this.stack.procs.get('majordomo')!.stop();
    await this.stack.start('majordomo', {
      CP_LOG_LEVEL: 'info',
      CP_CHEF_TIMEOUT_MS: '3000',
      CP_HOW_TO_BUILD_MS: String(HOW_TO_BUILD_MS),
    });
    const url = await this.stack.httpUrl();
    (this.ctx as { host: string }).host = `127.0.0.1:${new URL(url).port}`;
  }

  logs(chars = 4000): string {
    return this.stack.logs(chars);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.#silent);
    await this.stack[Symbol.asyncDispose]();
  }
}
