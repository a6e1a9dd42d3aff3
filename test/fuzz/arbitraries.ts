/**
 * fast-check generators of hostile input for every way into a running ComputePods project: the
 * NATS subjects each service consumes (JetStream work and event streams, core request/reply and
 * plain subscriptions), the KV buckets each service reads, MajorDomo's REST routes and the
 * files the fswatcher watches. Shared by the fuzz tests (test/fuzz) and `pnpm bench fuzz`.
 *
 *   const arb = targets(ctx).find((t) => t.name === 'files.changed')!.arb;
 *   for (const input of fc.sample(arb, { seed: 42, numRuns: 100 })) await rig.send(input);
 *
 * Each message starts structurally valid (the shapes of the zod schemas in packages/protocol)
 * and gets 0-3 mutations anywhere in it (wrong types, out-of-range numbers, strings at the
 * boundary lengths 199/200/201, 1023/1024/1025 and 4095/4096/4097 bytes, unicode, `../`,
 * shell metacharacters, control characters); the rest are raw bytes or random JSON. Whatever
 * a message may make a service run is kept harmless: a task's command is one of a fixed set.
 */
import { createHash } from 'node:crypto';
import { kvKey } from '@computepods/protocol';
import fc from 'fast-check';

export type FuzzInput =
  /** Published to JetStream (a stream a service consumes): invalid → dead-lettered. */
  | { kind: 'js'; target: string; subject: string; data: Uint8Array }
  /** Core publish (a plain subscription), with a reply subject: invalid → dead-lettered. */
  | { kind: 'pub'; target: string; subject: string; data: Uint8Array }
  /** Core request: invalid → an error reply naming the field, and dead-lettered. */
  | { kind: 'req'; target: string; subject: string; data: Uint8Array }
  /** A raw KV put into a bucket a service reads: invalid → skipped with a log line. */
  | { kind: 'kv'; target: string; bucket: string; key: string; data: Uint8Array }
  /** Raw bytes of one HTTP/1.1 request to MajorDomo's REST API. */
  | {
      kind: 'rest';
      target: string;
      request: Uint8Array;
      method: string;
      path: string;
      token: boolean;
      /** The body is shorter than its Content-Length says: the server waits for the rest. */
      incomplete: boolean;
    }
  /**
   * A chef's "can build from" answer to MajorDomo's question about a goal nobody declared (the
   * rig asks with api.build): invalid → dead-lettered by MajorDomo. `"__GOAL__"` in the bytes
   * becomes the goal asked about.
   */
  | { kind: 'answer'; target: string; data: Uint8Array }
  /** A file written into the watched workspace (relative path, bytes). */
  | { kind: 'fs'; target: string; path: string; data: Uint8Array };

export interface FuzzContext {
  readonly project: string;
  readonly workspace: string;
  /** The chef that builds (its rules bucket key may get only invalid values). */
  readonly chef: string;
  readonly pod: string;
  readonly queue: string;
  /** REST: `host:port` and the bootstrap token. */
  readonly host: string;
  readonly token: string;
  /** REST routes as the OpenAPI description lists them: [METHOD, /path/{param}]. */
  readonly routes: readonly (readonly [string, string])[];
}

export interface Target {
  readonly name: string;
  /** The service that consumes it (its process must stay alive). */
  readonly service: 'majordomo' | 'chef' | 'runner' | 'fswatcher';
  readonly arb: fc.Arbitrary<FuzzInput>;
}

const enc = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
export const sha256 = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');

// ---------------------------------------------------------------------------------------------
// Hostile values

const SPECIAL_STRINGS = [
  '',
  ' ',
  '.',
  '..',
  '../',
  '../../etc/passwd',
  '/etc/passwd',
  'src/../../../etc/shadow',
  'a/./b',
  'a//b',
  './a',
  'a/',
  '~',
  '~/.ssh/id_rsa',
  '\\..\\..\\windows',
  '%2e%2e%2f%2e%2e%2f',
  '$(id)',
  '`id`',
  '; rm -rf /tmp/cp-fuzz-never',
  '| cat /etc/passwd',
  '&& true',
  "'",
  '"',
  '\n',
  '\r\n',
  '\t',
  '\0',
  'a\0b',
  '\x1b[31mred',
  '\x7f',
  '\u202e',
  '\ufeff',
  '\ud800',
  '😀',
  'é',
  'e\u0301',
  '*',
  '>',
  'cp.>',
  'a.b',
  '{stem}',
  '{in0}',
  'NaN',
  'null',
  '__proto__',
  'constructor',
  'toString',
  '-',
  '-rf',
];

/** ASCII and multi-byte strings of the lengths where limits sit. */
const BOUNDARY_LENGTHS = [
  63, 64, 99, 100, 101, 127, 128, 199, 200, 201, 499, 500, 501, 600, 601, 1023, 1024, 1025, 4095,
  4096, 4097,
];
const boundaryString = fc.oneof(
  fc
    .tuple(fc.constantFrom(...BOUNDARY_LENGTHS), fc.constantFrom('a', 'x/', '../', '.'))
    .map(([n, unit]) => unit.repeat(Math.ceil(n / unit.length)).slice(0, n)),
  // 2-byte é and 4-byte 😀: a length that fits in characters but not in bytes.
  fc.constantFrom(511, 512, 513, 1024, 2048).map((n) => 'é'.repeat(n)),
  fc.constantFrom(255, 256, 257, 1024).map((n) => '😀'.repeat(n)),
);

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SPECIAL_STRINGS) },
  { weight: 2, arbitrary: boundaryString },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.constantFrom(...SPECIAL_STRINGS, 'a', 'src', 'out'), { minLength: 1, maxLength: 6 })
      .map((xs) => xs.join('/')),
  },
);

const hostileNumber = fc.oneof(
  fc.constantFrom(
    -1,
    0,
    0.5,
    -0.0001,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    1e21,
    1e308,
    -1e308,
    5e-324,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Any JSON value a field should not hold. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: hostileString },
  { weight: 3, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}, [null], { '': '' }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(100, 1000, 5001).map((n) => Array.from({ length: n }, () => 'a')),
  },
);

// ---------------------------------------------------------------------------------------------
// Mutation of structurally valid values

type Json = unknown;
type Path = (string | number)[];

function pathsOf(v: Json, at: Path = [], out: Path[] = []): Path[] {
  if (at.length > 0) out.push(at);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) pathsOf(v[i], [...at, i], out);
  } else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) pathsOf(x, [...at, k], out);
  return out;
}

type Mutation =
  | { op: 'set'; pick: number; value: unknown }
  | { op: 'delete'; pick: number }
  | { op: 'add'; pick: number; key: string; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant('set' as const), pick: fc.nat(), value: hostileValue }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('add' as const),
      pick: fc.nat(),
      key: fc.constantFrom('__proto__', 'constructor', 'extra', '', 'path', 'then'),
      value: hostileValue,
    }),
  },
);

function applyMutation(root: Json, m: Mutation): Json {
  const copy = structuredClone(root) as Json;
  const paths = pathsOf(copy);
  if (paths.length === 0) return m.op === 'set' ? m.value : copy;
  const path = paths[m.pick % paths.length]!;
  let parent = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (m.op === 'set') parent[last] = m.value;
  else if (m.op === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else {
    const target = parent[last];
    if (target && typeof target === 'object' && !Array.isArray(target))
      Object.defineProperty(target, m.key, { value: m.value, enumerable: true, writable: true });
    else parent[last] = { [m.key]: m.value };
  }
  return copy;
}

/** The value itself (about a third of the time) or with 1-3 hostile mutations. */
export function mutated<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<Json> {
  return fc
    .tuple(valid, fc.array(mutation, { maxLength: 3 }))
    .map(([v, ms]) => ms.reduce<Json>((acc, m) => applyMutation(acc, m), v));
}

// ---------------------------------------------------------------------------------------------
// Structurally valid pieces

const name = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,12}$/);
const shaArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(hex);
const buildIdArb = fc.uint8Array({ minLength: 8, maxLength: 32 }).map(hex);
const segment = fc.oneof(
  fc.constantFrom(
    'a',
    'b.txt',
    'x y',
    'é',
    '😀',
    '.hidden',
    '-',
    '$x',
    'a;b',
    'q"uote',
    'tab\there',
  ),
  fc
    .string({ minLength: 1, maxLength: 12 })
    .filter((s) => !/[/\\\0]/.test(s) && s !== '.' && s !== '..'),
);
/** A project-relative path that passes the schema, mostly under fz/ (nothing builds it). */
export const relPath = fc
  .tuple(
    fc.constantFrom('fz/', 'fz/', 'fz/', 'src/', 'out/'),
    fc.array(segment, { minLength: 1, maxLength: 4 }),
  )
  .map(([prefix, segs]) => prefix + segs.join('/'))
  .map((p) => (prefix(p) === 'src/' ? `${p}.txt` : p));
function prefix(p: string): string {
  return p.slice(0, 4);
}
const iso = fc
  .date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
  .map((d) => d.toISOString());
const mtimeNs = fc.bigInt(0n, 2n ** 64n).map(String);

const fileEvent = fc
  .record({
    kind: fc.constantFrom('created', 'changed', 'deleted', 'moved'),
    path: relPath,
    from: relPath,
    size: fc.nat(),
    mtimeNs,
    sha256: shaArb,
  })
  .map(({ from, ...e }) =>
    e.kind === 'moved' ? { ...e, from } : e.kind === 'deleted' ? { ...e, sha256: null } : e,
  );

const stemArb = fc.oneof(segment, fc.constantFrom('alive', 'x', 'fz'));

/** Commands a fuzzed task may run: harmless whatever the shell makes of them. */
const SAFE_COMMANDS = [
  'true',
  'false',
  'exit 3',
  'echo fuzz',
  "printf '%s\\n' '$(id);`id`|&&>'",
  ": 'rm -rf / ; cat /etc/passwd'",
  'echo "$HOME" > /dev/null',
  'cat /dev/null',
];

export function bodies(ctx: FuzzContext) {
  const ws = ctx.workspace;
  const taskId = fc.stringMatching(/^fz-[A-Za-z0-9_.:-]{1,40}$/);
  const taskSubmitted = fc.record(
    {
      taskId,
      buildId: buildIdArb,
      resource: fc.constantFrom(ctx.queue, 'local', 'slurm'),
      profile: name,
      command: fc.constantFrom(...SAFE_COMMANDS),
      cwd: fc.constantFrom(ws, `${ws}/fz`, '/tmp', '/', `${ws}/../..`, 'relative', `${ws}/src`),
      env: fc.dictionary(
        fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/),
        fc.string({ maxLength: 20 }),
        {
          maxKeys: 3,
        },
      ),
      timeoutMs: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      gpu: fc.boolean(),
      files: fc.record({
        inputs: fc.array(relPath, { maxLength: 3 }),
        outputs: fc.array(relPath, { minLength: 1, maxLength: 2 }),
      }),
    },
    { requiredKeys: ['taskId', 'resource', 'command', 'cwd'] },
  );
  const buildRequested = fc
    .record({
      buildId: buildIdArb,
      rule: fc.constantFrom('upper', 'upper', 'nope', 'a-b_c'),
      stem: stemArb,
      pass: fc.integer({ min: 1, max: 5 }),
      sha: shaArb,
      locations: fc.dictionary(relPath, name, { maxKeys: 2 }),
    })
    .map(({ rule, stem, sha, ...r }) => ({
      ...r,
      taskId: `${rule}:${stem}`,
      ruleId: rule,
      chef: ctx.chef,
      stem,
      inputs: { [`src/${stem}.txt`]: sha },
      outputs: [`out/${stem}.upper`],
    }));
  const outputRecord = fc.record(
    { sha256: shaArb, size: fc.nat(), mtimeNs },
    { requiredKeys: ['sha256', 'size'] },
  );
  const buildResult = fc.record(
    {
      buildId: buildIdArb,
      taskId: fc.oneof(
        taskId,
        stemArb.map((s) => `upper:${s}`),
      ),
      chef: fc.constantFrom(ctx.chef, 'ghost'),
      pod: fc.constantFrom(ctx.pod, 'elsewhere'),
      status: fc.constantFrom('succeeded', 'failed', 'cancelled'),
      outputs: fc.dictionary(relPath, outputRecord, { maxKeys: 2 }),
      cutoff: fc.dictionary(relPath, shaArb, { maxKeys: 1 }),
      discovered: fc.array(relPath, { maxLength: 2 }),
      logPath: fc.constantFrom('/tmp/x.log', 'log.txt'),
      durationMs: fc.nat(),
      error: fc.string({ maxLength: 50 }),
      inputsNow: fc.dictionary(relPath, outputRecord, { maxKeys: 1 }),
    },
    { requiredKeys: ['buildId', 'taskId', 'chef', 'pod', 'status', 'durationMs'] },
  );
  // Mostly patterns of their own; sometimes another chef's outputs (the sentinel's rule), a
  // source as an output, or an output that is its own input: a second chef claiming what the
  // first builds, until its silence retires it.
  const rule = fc.record({
    id: fc.oneof(fc.stringMatching(/^fz[A-Za-z0-9_-]{0,10}$/), fc.constant('upper')),
    inputs: fc.oneof(
      { weight: 4, arbitrary: fc.constant(['fz/{stem}.in']) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          ['src/{stem}.txt'],
          ['{stem}'],
          ['fz/{a}/{b}.in'],
          ['fz/{stem}.out'],
        ),
      },
    ),
    outputs: fc.oneof(
      { weight: 4, arbitrary: fc.constant(['fz/{stem}.out']) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          ['out/{stem}.upper'],
          ['src/{stem}.txt'],
          ['fz/{stem}.in'],
          ['fz/{stem}.out', 'fz/{stem}.out'],
        ),
      },
    ),
    command: fc.constantFrom(...SAFE_COMMANDS),
    discover: fc.constantFrom('none', 'makedepend', 'latex'),
  });
  const rulesDeclared = fc.record(
    {
      chef: name.map((n) => `fz${n}`.slice(0, 63)),
      pod: name,
      types: fc.array(
        fc.record({
          name: name,
          extensions: fc.array(fc.constantFrom('.tex', '.c'), { maxLength: 2 }),
        }),
        { maxLength: 1 },
      ),
      rules: fc.array(rule, { maxLength: 2 }),
    },
    { requiredKeys: ['chef', 'pod', 'rules'] },
  );
  const taskState = fc.constantFrom(
    'created',
    'submitted',
    'running',
    'finished',
    'failed',
    'killed',
    'paused',
  );
  return {
    'files.changed': fc.record({
      pod: fc.constantFrom(ctx.pod, ctx.pod, 'other-pod'),
      events: fc.array(fileEvent, { minLength: 1, maxLength: 4 }),
    }),
    'build.requested': buildRequested,
    'build.result': buildResult,
    'build.cancel': fc.record({ buildId: buildIdArb, reason: fc.string({ maxLength: 40 }) }),
    'task.submitted': taskSubmitted,
    'task.control': fc.record({
      taskId: fc.oneof(taskId, fc.constant('upper:alive')),
      action: fc.constantFrom('pause', 'resume', 'kill'),
    }),
    'rules.how_to_build': fc.record({
      goal: relPath,
      have: fc.array(relPath, { maxLength: 5 }),
    }),
    'rules.declared': rulesDeclared,
    trace: fc.record({
      taskId: fc.oneof(
        taskId,
        stemArb.map((s) => `upper:${s}`),
      ),
      inputs: fc.dictionary(relPath, shaArb, { maxKeys: 2 }),
      outputs: fc.dictionary(relPath, shaArb, { maxKeys: 2 }),
      discovered: fc.array(relPath, { maxLength: 2 }),
      buildId: buildIdArb,
      time: iso,
    }),
    artefact: fc.record(
      {
        path: relPath,
        status: fc.constantFrom(
          'source',
          'missing',
          'stale',
          'queued',
          'building',
          'up_to_date',
          'failed',
          'not_converging',
        ),
        sha256: fc.option(shaArb),
        size: fc.option(fc.nat()),
        producer: stemArb.map((s) => `upper:${s}`),
        pods: fc.array(name, { maxLength: 2 }),
        updated: iso,
        passes: fc.integer({ min: 1, max: 100 }),
      },
      { requiredKeys: ['path', 'status', 'sha256', 'size', 'updated'] },
    ),
    answer: fc.record({
      goal: fc.constant(GOAL),
      chef: fc.constantFrom('text', 'fz-rogue'),
      pod: name,
      canBuild: fc.boolean(),
      from: fc.array(relPath, { maxLength: 2 }),
      outputs: fc.array(relPath, { maxLength: 2 }),
      rule: fc.stringMatching(/^fz[a-z]{0,5}$/),
      stem: stemArb,
    }),
    goal: fc.record({
      goal: relPath,
      chef: name,
      pod: name,
      canBuild: fc.boolean(),
      from: fc.array(relPath, { maxLength: 2 }),
      outputs: fc.array(relPath, { maxLength: 2 }),
      rule: fc.stringMatching(/^fz[a-z]{0,5}$/),
      stem: stemArb,
    }),
    taskRecord: fc.record({
      task: taskSubmitted,
      state: taskState,
      runner: name,
      stdoutPath: fc.constantFrom('/etc/passwd', '../../x', 'stdout'),
      history: fc.array(fc.record({ state: taskState, time: iso }), { maxLength: 2 }),
      updated: iso,
    }),
    token: fc.record({
      id: fc.stringMatching(/^[a-z0-9]{8,32}$/),
      user: fc.stringMatching(/^[a-z_][a-z0-9_-]{0,10}$/),
      sha256: shaArb,
      created: iso,
    }),
    project: fc.record({
      name: fc.constantFrom(ctx.project, 'other'),
      active: fc.boolean(),
      members: fc.array(
        fc.record({
          user: fc.constantFrom('alice', 'bob'),
          role: fc.constantFrom('admin', 'viewer'),
        }),
        { maxLength: 2 },
      ),
      queues: fc.constant([{ name: 'local', resource: 'local', concurrency: 8 }]),
      created: iso,
      updated: iso,
    }),
  };
}

/** Where an answer names the goal it answers (the rig puts the goal asked about there). */
export const GOAL = '__GOAL__';

// ---------------------------------------------------------------------------------------------
// Messages: envelopes around bodies, raw bytes, random JSON

function envelopeOf(ctx: FuzzContext, type: string, body: fc.Arbitrary<unknown>) {
  return fc.record({
    v: fc.constant(1),
    id: fc.uuid(),
    time: iso,
    project: fc.constantFrom(ctx.project, ctx.project, ctx.project, 'other'),
    source: fc.constantFrom('fuzz', 'majordomo'),
    cid: fc.uuid(),
    type: fc.constant(type),
    body,
  });
}

/** Bytes of a message of `type`: mostly a (mutated) envelope, sometimes anything at all. */
export function messageBytes(
  ctx: FuzzContext,
  type: string,
  body: fc.Arbitrary<unknown>,
): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 12, arbitrary: mutated(envelopeOf(ctx, type, body)).map((v) => json(v)) },
    // The body mutated, the envelope not: most of the schema is exercised field by field.
    { weight: 6, arbitrary: envelopeOf(ctx, type, mutated(body)).map((v) => json(v)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => json(v)) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          '',
          '{',
          'null',
          '[]',
          '{"v":1}',
          '{"oops',
          '\uFEFF{}',
          `${'['.repeat(5000)}${']'.repeat(5000)}`,
          JSON.stringify({ v: 1, body: 'x'.repeat(200_000) }),
        )
        .map((s) => enc.encode(s)),
    },
  );
}

const json = (v: unknown) => enc.encode(JSON.stringify(v) ?? 'undefined');

// ---------------------------------------------------------------------------------------------
// REST

const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'];

function pctEncode(s: string): string {
  // Every byte outside unreserved as %XX: a raw control character would end the request line.
  return [...enc.encode(s)]
    .map((b) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).padStart(2, '0').toUpperCase()}`,
    )
    .join('');
}

function restArb(ctx: FuzzContext): fc.Arbitrary<FuzzInput> {
  const param = fc.oneof(
    { weight: 3, arbitrary: hostileString.map(pctEncode) },
    { weight: 1, arbitrary: fc.constantFrom('t1', 'upper:alive', 'x', '..', '%2e%2e', '.') },
    // Raw, unencoded: a well-behaved client never sends these, an attacker does.
    { weight: 1, arbitrary: fc.constantFrom('../../etc/passwd', 'a b', 'a\tb', 'é', '%', '%zz') },
  );
  const queryValue = fc.oneof(
    hostileString.map(pctEncode),
    fc.constantFrom(
      '1e309',
      '99999999999999999999999',
      '-1',
      '0',
      'NaN',
      'true',
      'dot',
      'json',
      'pdf',
    ),
    fc.constantFrom('out/alive.upper', 'src/alive.txt', '..%2F..%2Fetc%2Fpasswd'),
  );
  const queryKey = fc.constantFrom(
    'path',
    'status',
    'prefix',
    'format',
    'plan',
    'state',
    'limit',
    'stream',
    'token',
    '__proto__',
    'path[]',
    'a',
  );
  const query = fc
    .array(fc.tuple(queryKey, queryValue), { maxLength: 3 })
    .map((kvs) => (kvs.length ? `?${kvs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));
  const routePath = fc
    .tuple(fc.constantFrom(...ctx.routes), fc.array(param, { minLength: 2, maxLength: 2 }))
    .map(([[method, template], ps]) => {
      let i = 0;
      return [method, template.replace(/\{[^}]+\}/g, () => ps[i++ % ps.length]!)] as const;
    });
  const oddPath = fc.constantFrom(
    '/',
    '/api',
    '/api/',
    '/api/../healthz',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/api/artefact/../../../etc/passwd',
    '//api//status',
    '/api/status/',
    '/API/STATUS',
    '/api/no-such-route',
    '/openapi.json',
    '/healthz?x=1',
    `/api/${'a'.repeat(5000)}`,
    `/api/artefact?path=${'a/'.repeat(3000)}`,
    '*',
    'http://evil.example/api/status',
  );
  const path = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(routePath, query).map(([[m, p], q]) => [m, p + q] as const),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom(...METHODS), oddPath).map(([m, p]) => [m, p] as const),
    },
  );
  const jsonBody = fc.oneof(
    mutated(
      fc.record({ path: fc.oneof(relPath, fc.constant('out/alive.upper')), force: fc.boolean() }),
    ).map((v) => JSON.stringify(v) ?? ''),
    fc.constantFrom(
      'not json',
      '{',
      '[]',
      'null',
      '{"path":42}',
      '{"path":"../../etc/passwd"}',
      '',
    ),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.constantFrom(20_000, 1_100_000).map((n) => JSON.stringify({ path: 'a'.repeat(n) })),
  );
  const body = fc.option(
    fc.record({
      text: jsonBody,
      type: fc.constantFrom(
        'application/json',
        'application/json',
        'text/plain',
        'application/xml',
        'application/json; charset=utf-16',
        'multipart/form-data; boundary=x',
        '',
      ),
      lengthLie: fc.constantFrom(0, 0, 0, 1, -1),
    }),
    { freq: 2 },
  );
  const token = fc.constantFrom(
    'valid',
    'valid',
    'valid',
    'none',
    'garbage',
    'bearer-only',
    'long',
  );
  return fc.tuple(path, body, token, fc.boolean()).map(([[method, p], b, tok, chunked]) => {
    const lines = [`${method} ${p} HTTP/1.1`, `Host: ${ctx.host}`, 'Connection: close'];
    if (tok === 'valid') lines.push(`Authorization: Bearer ${ctx.token}`);
    else if (tok === 'garbage') lines.push('Authorization: Bearer $(id)\u00e9');
    else if (tok === 'bearer-only') lines.push('Authorization: Bearer');
    else if (tok === 'long') lines.push(`Authorization: Bearer ${'A'.repeat(9000)}`);
    let payload = new Uint8Array();
    if (b) {
      payload = enc.encode(b.text);
      if (b.type) lines.push(`Content-Type: ${b.type}`);
      if (chunked && payload.length > 0) {
        lines.push('Transfer-Encoding: chunked');
        const head = enc.encode(`${payload.length.toString(16)}\r\n`);
        payload = Buffer.concat([head, payload, enc.encode('\r\n0\r\n\r\n')]);
      } else lines.push(`Content-Length: ${Math.max(0, payload.length + b.lengthLie)}`);
    }
    const head = enc.encode(`${lines.join('\r\n')}\r\n\r\n`);
    return {
      kind: 'rest' as const,
      target: 'rest',
      request: Buffer.concat([head, payload]),
      method,
      path: p,
      token: tok === 'valid',
      incomplete: Boolean(b && !(chunked && payload.length > 0) && b.lengthLie > 0),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// KV

function kvKeyArb(special: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 3,
      arbitrary: hostileString
        .filter((s) => Buffer.byteLength(s) <= 1000)
        .map((s) => kvKey(s || 'x')),
    },
    { weight: 2, arbitrary: relPath.map(kvKey) },
    { weight: 2, arbitrary: fc.constantFrom(...special).map(kvKey) },
    // Long keys near what a subject may carry (our own PUB line stays under 4 KiB).
    {
      weight: 1,
      arbitrary: fc.constantFrom(199, 200, 201, 1024, 3000, 3800).map((n) => 'k'.repeat(n)),
    },
    { weight: 1, arbitrary: fc.constantFrom('a.b', 'a=2Eb', '=ZZ', '=', 'a-b_c/d', '_', '-') },
  );
}

function kvArb(
  target: string,
  bucket: string,
  keys: readonly string[],
  value: fc.Arbitrary<unknown>,
): fc.Arbitrary<FuzzInput> {
  const data = fc.oneof(
    { weight: 6, arbitrary: mutated(value).map(json) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map(json) },
  );
  return fc
    .tuple(kvKeyArb(keys), data)
    .map(([key, d]) => ({ kind: 'kv' as const, target, bucket, key, data: d }));
}

// ---------------------------------------------------------------------------------------------
// Every target

const API_VERBS = {
  status: fc.constant({}),
  build: fc.record({
    path: fc.oneof(relPath, fc.constant('out/alive.upper')),
    force: fc.boolean(),
  }),
  artefact: fc.record({ path: fc.oneof(relPath, fc.constant('out/alive.upper')) }),
  why: fc.record({ path: fc.oneof(relPath, fc.constant('out/alive.upper')) }),
  graph: fc.record({ format: fc.constantFrom('json', 'dot'), plan: fc.boolean() }),
  plan: fc.constant({}),
  builds: fc.constant({}),
  cancel: fc.record({
    taskId: fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.constant('upper:alive')),
  }),
} as const;
export const apiVerbs = Object.keys(API_VERBS) as (keyof typeof API_VERBS)[];

export function targets(ctx: FuzzContext): Target[] {
  const p = ctx.project;
  const b = bodies(ctx);
  const msg = (type: string, body: fc.Arbitrary<unknown>) => messageBytes(ctx, type, body);
  // The subject's last token at its edges too: long, and another pod's.
  const podToken = fc.oneof(
    { weight: 8, arbitrary: fc.constant(ctx.pod) },
    { weight: 1, arbitrary: fc.constantFrom('other-pod', 'a', 'x'.repeat(200), 'p'.repeat(3900)) },
  );
  const bucket = (s: string) => `cp_${p}_${s}`;
  return [
    {
      name: 'files.changed',
      service: 'majordomo',
      arb: fc.tuple(podToken, msg('files.changed', b['files.changed'])).map(([pod, data]) => ({
        kind: 'js',
        target: 'files.changed',
        subject: `cp.${p}.files.changed.${pod}`,
        data,
      })),
    },
    {
      name: 'build.result',
      service: 'majordomo',
      arb: msg('build.result', b['build.result']).map((data) => ({
        kind: 'js',
        target: 'build.result',
        subject: `cp.${p}.build.result`,
        data,
      })),
    },
    {
      name: 'build.request',
      service: 'chef',
      arb: msg('build.requested', b['build.requested']).map((data) => ({
        kind: 'js',
        target: 'build.request',
        subject: `cp.${p}.build.request.${ctx.chef}`,
        data,
      })),
    },
    {
      name: 'tasks',
      service: 'runner',
      arb: msg('task.submitted', b['task.submitted']).map((data) => ({
        kind: 'js',
        target: 'tasks',
        subject: `cp.${p}.tasks.${ctx.queue}`,
        data,
      })),
    },
    {
      name: 'how-to-build',
      service: 'chef',
      arb: msg('rules.how_to_build', b['rules.how_to_build']).map((data) => ({
        kind: 'pub',
        target: 'how-to-build',
        subject: `cp.${p}.rules.how-to-build`,
        data,
      })),
    },
    {
      name: 'how-to-build.answer',
      service: 'majordomo',
      arb: msg('rules.can_build_from', b.answer).map((data) => ({
        kind: 'answer' as const,
        target: 'how-to-build.answer',
        data,
      })),
    },
    {
      name: 'build.cancel',
      service: 'chef',
      arb: msg('build.cancel', b['build.cancel']).map((data) => ({
        kind: 'pub',
        target: 'build.cancel',
        subject: `cp.${p}.build.cancel`,
        data,
      })),
    },
    {
      name: 'task.control',
      service: 'runner',
      arb: msg('task.control', b['task.control']).map((data) => ({
        kind: 'req',
        target: 'task.control',
        subject: `cp.${p}.task.control`,
        data,
      })),
    },
    {
      name: 'api',
      service: 'majordomo',
      arb: fc.constantFrom(...apiVerbs).chain((verb) =>
        msg(`api.${verb}`, API_VERBS[verb] as fc.Arbitrary<unknown>).map((data) => ({
          kind: 'req' as const,
          target: 'api',
          subject: `cp.${p}.api.${verb}`,
          data,
        })),
      ),
    },
    {
      name: 'kv.rules',
      service: 'majordomo',
      arb: kvArb('kv.rules', bucket('rules'), [ctx.chef, 'a.b', 'ghost'], b['rules.declared']),
    },
    {
      name: 'kv.config',
      service: 'majordomo',
      arb: kvArb('kv.config', bucket('config'), ['project', 'queue.local', 'queue.x'], b.project),
    },
    {
      name: 'kv.tokens',
      service: 'majordomo',
      arb: kvArb('kv.tokens', bucket('tokens'), ['abcdefgh12345678', 'x'], b.token),
    },
    {
      name: 'kv.tasks',
      service: 'chef',
      arb: kvArb('kv.tasks', bucket('tasks'), ['upper:nope', 'fz-1'], b.taskRecord),
    },
    {
      name: 'kv.builds',
      service: 'chef',
      arb: kvArb('kv.builds', bucket('builds'), ['0123456789abcdef'], b['build.result']),
    },
    {
      name: 'kv.artefacts',
      service: 'majordomo',
      arb: kvArb('kv.artefacts', bucket('artefacts'), ['fz/a', 'out/x'], b.artefact),
    },
    {
      name: 'kv.traces',
      service: 'majordomo',
      arb: kvArb('kv.traces', bucket('traces'), ['upper:fz', 'fz'], b.trace),
    },
    {
      name: 'kv.goals',
      service: 'majordomo',
      arb: kvArb('kv.goals', bucket('goals'), ['fz/goal', 'fz'], b.goal),
    },
    { name: 'rest', service: 'majordomo', arb: restArb(ctx) },
    {
      name: 'fs',
      service: 'fswatcher',
      arb: fc
        .tuple(
          fc.array(
            fc.oneof(
              segment,
              fc.constantFrom(
                '$(id)',
                'a\nb',
                'a\\b',
                '\x1b',
                '-rf',
                '*',
                'é'.repeat(100),
                ' ',
                '..a',
              ),
            ),
            { minLength: 1, maxLength: 3 },
          ),
          fc.uint8Array({ maxLength: 200 }),
        )
        .map(([segs, data]) => ({
          kind: 'fs' as const,
          target: 'fs',
          path: `fz-files/${segs.map((s) => s.slice(0, 200)).join('/')}`,
          data,
        })),
    },
  ];
}

/** Every target's name, known before a stack runs (targets() needs its context). */
export const TARGET_NAMES = [
  'files.changed',
  'build.result',
  'build.request',
  'tasks',
  'how-to-build',
  'build.cancel',
  'task.control',
  'api',
  'kv.rules',
  'kv.config',
  'kv.tokens',
  'kv.tasks',
  'kv.builds',
  'kv.artefacts',
  'kv.traces',
  'kv.goals',
  'rest',
  'fs',
  // Last: from its first input on, a silent chef keeps every question open to its deadline.
  'how-to-build.answer',
] as const;

/** A readable account of an input, for a failure message (bytes shown as text). */
export function describeInput(input: FuzzInput): string {
  const text = (d: Uint8Array) => JSON.stringify(new TextDecoder().decode(d).slice(0, 1500));
  switch (input.kind) {
    case 'js':
    case 'pub':
    case 'req':
      return `${input.kind} ${input.subject.slice(0, 200)} ${text(input.data)}`;
    case 'answer':
      return `how-to-build answer ${text(input.data)}`;
    case 'kv':
      return `kv put ${input.bucket} ${input.key.slice(0, 200)} ${text(input.data)}`;
    case 'rest':
      return `rest ${text(input.request)}`;
    case 'fs':
      return `file ${JSON.stringify(input.path)} (${input.data.length} bytes)`;
  }
}

/** `n` inputs of an arbitrary, reproducible from `seed` (for the bench: no fast-check import). */
export function sample(arb: fc.Arbitrary<FuzzInput>, seed: number, n: number): FuzzInput[] {
  return fc.sample(arb, { seed, numRuns: n });
}
