import {
  ArtefactRecord,
  buckets,
  DeadLetter,
  Envelope,
  envelope,
  kvKey,
  RulesDeclared,
  subjects,
  TaskRecord,
  TaskTrace,
} from '@computepods/protocol';
import { sha256 } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

/**
 * Regressions of the fuzzing campaign over real processes: each case is one input that crashed,
 * stalled or wedged a service on a fresh system. The services must dead-letter or skip it with a
 * clear log line and go on, and MajorDomo must start again over whatever was stored.
 */
describe('fuzzing regressions: one bad input never takes a service down', () => {
  let stack: Stack;
  let chefFile: string;
  const letters: DeadLetter[] = [];
  const MD_ENV = { CP_CHEF_TIMEOUT_MS: '2000' };
  const CHEF_ENV = () => ({
    CP_CHEF: 'text',
    CP_CHEF_DEFINITION: chefFile,
    CP_CHEF_HEARTBEAT_MS: '300',
  });
  const md = () => stack.procs.get('majordomo')!;
  const letter = async (ok: (d: DeadLetter) => boolean): Promise<DeadLetter> => {
    for (let i = 0; i < 800; i++) {
      const found = letters.find(ok);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `no such dead letter; got ${JSON.stringify(letters.map((l) => [l.service, l.subject, l.reason.slice(0, 300)]))}\n${stack.logs()}`,
    );
  };
  const changed = (path: string, content: string) =>
    stack.bus.publish('files.changed', subjects.filesChanged(stack.project, 'pod-test'), {
      pod: 'pod-test',
      events: [
        { kind: 'changed', path, size: content.length, mtimeNs: '1', sha256: sha256(content) },
      ],
    });
  /** A source saved and announced, its output built: MajorDomo and the chef still work. */
  const sentinel = async (stem: string) => {
    stack.write(`src/${stem}.txt`, `${stem}\n`);
    await changed(`src/${stem}.txt`, `${stem}\n`);
    await stack.until(`out/${stem}.upper`);
  };
  /**
   * Declares a chef that never answers, so MajorDomo gathers how-to-build answers until its
   * deadline and surely reads a rogue's. Waits until MajorDomo has applied it: it reads the
   * declaration through its watch of the bucket, not in step with this put's ack, and a question
   * asked before would not wait for this chef. Each call's rules differ (one that matches no
   * file, its id numbered), so the declaration is never an unchanged heartbeat (not applied
   * again, no log line; nor is one that differs only by pod or $SRV id).
   */
  let silentDeclarations = 0;
  const declareSilent = async () => {
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    const from = md().output.length;
    const id = `never${++silentDeclarations}`;
    const never = {
      id,
      inputs: ['never/{stem}.in'],
      outputs: ['never/{stem}.out'],
      command: 'true',
    };
    await rules.put('silent', { chef: 'silent', pod: 'p', rules: [never] });
    await md().waitForOutput(/"chef":"silent".*"msg":"chef rules declared"/, 10_000, from);
  };
  const restartMajorDomo = async () => {
    await md().stop();
    await stack.start('majordomo', MD_ENV);
  };

  beforeAll(async () => {
    stack = await Stack.start('fuzz');
    chefFile = stack.writeUpperChef();
    stack.bus.nc.subscribe(`cp.${stack.project}.dlq.*`, {
      callback: (_e, m) => {
        const env = Envelope.safeParse(m.json());
        const body = env.success ? DeadLetter.safeParse(env.data.body) : undefined;
        if (body?.success) letters.push(body.data);
      },
    });
    await Promise.all([
      stack.start('majordomo', MD_ENV),
      stack.start('chef', CHEF_ENV()),
      stack.start('runner'),
    ]);
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('survives a rules record under a key that is not a chef name (crashed 15 s later)', async () => {
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    await rules.put('a.b', { chef: 'x', pod: 'p', rules: [] });
    // Put after it, silent too: once the liveness check retires it, it has been past a.b.
    await rules.put('ghost', { chef: 'ghost', pod: 'p', rules: [] });
    await md().waitForOutput(/"key":"a\.b".*rules record skipped: not a chef name/, 20_000);
    await md().waitForOutput(/"chef":"ghost".*"msg":"chef not heard from/, 20_000);
    expect(md().running).toBe(true);
    await sentinel('alive');
  });

  it('ignores an invalid value in the rules bucket instead of retiring the chef', async () => {
    const from = md().output.length;
    await stack.bus
      .kv(buckets.rules(stack.project), RulesDeclared)
      .then((kv) => kv.kv.put(kvKey('text'), '{"chef":"text","rules":"not a list"}'));
    // Rules records are applied in order: once this one is declared, the invalid one was seen.
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    await rules.put('marker', { chef: 'marker', pod: 'p', rules: [] });
    await md().waitForOutput(/"chef":"marker".*"msg":"chef rules declared"/, 20_000, from);
    expect(md().output.slice(from)).not.toMatch(/"chef":"text".*"msg":"chef rules retired"/);
    await sentinel('still');
  });

  it('builds from a 509-character source path and starts again after it (start aborted)', async () => {
    const long = `src/${`${'a'.repeat(100)}/`.repeat(5)}x.txt`;
    expect(long.length).toBeGreaterThanOrEqual(509);
    stack.write(long, 'long\n');
    await changed(long, 'long\n');
    const out = long.replace(/^src\//, 'out/').replace(/\.txt$/, '.upper');
    await stack.until(out);
    await restartMajorDomo();
    expect((await stack.artefact(out))?.status).toBe('up_to_date');
  });

  it('starts again over a rule with an unbound placeholder and a trace with an empty hash', async () => {
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    // Raw bytes: the schema now refuses such a rule, so an older chef (or anyone) wrote them.
    await rules.kv.put(
      kvKey('fz'),
      JSON.stringify({
        chef: 'fz',
        pod: 'p',
        rules: [{ id: 'fz', inputs: ['src/hello.txt'], outputs: ['fz/{stem}'], command: 'true' }],
      }),
    );
    const traces = await stack.bus.kv(buckets.traces(stack.project), TaskTrace);
    await traces.kv.put(
      kvKey('upper:alive'),
      JSON.stringify({
        taskId: 'upper:alive',
        inputs: { 'src/alive.txt': '' },
        outputs: { 'out/alive.upper': sha256('ALIVE\n') },
        buildId: 'b',
        time: new Date().toISOString(),
      }),
    );
    await restartMajorDomo();
    expect(md().running).toBe(true);
    await sentinel('restarted');
  });

  it('starts again over artefact records whose path is not normalised or not their key (start aborted)', async () => {
    const artefacts = await stack.bus.kv(buckets.artefacts(stack.project), ArtefactRecord);
    const rec = (path: string) => ({
      path,
      status: 'source' as const,
      sha256: sha256(path),
      size: 1,
      pods: ['pod-test'],
      updated: new Date().toISOString(),
    });
    // Raw keys: kvKey would make a key of the path itself.
    await artefacts.kv.put('a//b', JSON.stringify(rec('a//b')));
    await artefacts.kv.put('fz/key', JSON.stringify(rec('fz/./other')));
    await artefacts.kv.put(
      kvKey('fz/stuck'),
      JSON.stringify({ ...rec('../fz/stuck'), status: 'not_converging', passes: 3 }),
    );
    await restartMajorDomo();
    expect(md().running).toBe(true);
    expect(md().output).toMatch(/"key":"a\/\/b".*"msg":"artefact record skipped/);
    await sentinel('normalised');
  });

  it('holds and backs off a build whose input no pod holds (spun ~1,000 requests a second)', async () => {
    await changed('src/nope.txt', 'not there\n');
    const rec = await stack.until(
      'out/nope.upper',
      (a) => a.status === 'failed' && /retried in \d+ s/.test(a.error ?? ''),
    );
    expect(rec.error).toMatch(/src\/nope\.txt/);
    await sentinel('beside');
  });

  it('dead-letters an overlong path instead of dropping its connection (4,110 characters)', async () => {
    const from = md().output.length;
    // Raw: the bus refuses to send it now, but anyone with publish rights can.
    const path = `${'a/'.repeat(2054)}x.txt`;
    const event = { kind: 'changed', path, size: 1, mtimeNs: '1', sha256: sha256('x') };
    await stack.bus.js.publish(
      subjects.filesChanged(stack.project, 'pod-test'),
      JSON.stringify(
        envelope(
          'files.changed',
          { pod: 'pod-test', events: [event] },
          { project: stack.project, source: 'e2e' },
        ),
      ),
    );
    const d = await letter(
      (l) => l.service === 'majordomo' && /longer than 1024 bytes/.test(l.issues[0]?.message ?? ''),
    );
    expect(d.issues[0]?.path).toBe('body.events.0.path');
    await sentinel('connected');
    expect(md().output.slice(from)).not.toMatch(/NATS disconnected/);
  });

  it('answers an invalid task.control as a validation error and dead-letters it', async () => {
    const data = JSON.stringify(
      envelope('task.control', { taskId: 't', action: 'explode' } as never, {
        project: stack.project,
        source: 'e2e',
      }),
    );
    const reply = await stack.bus.nc.request(subjects.taskControl(stack.project), data, {
      timeout: 5_000,
    });
    const body = JSON.parse(new TextDecoder().decode(reply.data)) as {
      ok: boolean;
      error: { code: string; field?: string };
    };
    expect(body.ok).toBe(false);
    expect(body.error).toMatchObject({ code: 'CP_MESSAGE_INVALID', field: 'body.action' });
    const d = await letter((l) => l.service === 'runner' && l.subject.endsWith('.task.control'));
    expect(d.issues[0]?.path).toBe('body.action');
  });

  it('dead-letters invalid how-to-build questions and api requests', async () => {
    stack.bus.nc.publish(subjects.howToBuild(stack.project), '{"no": "envelope"}');
    await letter((l) => l.service === 'chef' && l.subject.endsWith('.rules.how-to-build'));
    const reply = await stack.bus.nc.request(subjects.api(stack.project, 'build'), '{"oops', {
      timeout: 5_000,
    });
    expect(new TextDecoder().decode(reply.data)).toMatch(/CP_MESSAGE_INVALID/);
    await letter((l) => l.service === 'majordomo' && l.subject.endsWith('.api.build'));
    for (const proc of stack.procs.values()) expect(proc.running).toBe(true);
  });

  it('dead-letters an invalid how-to-build answer (it was only logged)', async () => {
    // A declared chef that never answers keeps MajorDomo gathering until its deadline, so the
    // rogue's answer is surely read.
    await stack.httpUrl(); // logged once the NATS API is served too
    await declareSilent();
    const garbage = '{"v":1,"answer":"not an envelope"}';
    const rogue = stack.bus.nc.subscribe(subjects.howToBuild(stack.project), {
      callback: (_e, m) => {
        m.respond(garbage);
      },
    });
    try {
      const ask = envelope(
        'api.build',
        { path: 'fz/nobody.builds' },
        {
          project: stack.project,
          source: 'e2e',
        },
      );
      await stack.bus.nc.request(subjects.api(stack.project, 'build'), JSON.stringify(ask), {
        timeout: 10_000,
      });
      const d = await letter((l) => l.service === 'majordomo' && l.data === garbage);
      expect(d.subject).toMatch(/^_INBOX\./);
      expect(d.issues.map((i) => i.path)).toContain('time');
    } finally {
      rogue.unsubscribe();
    }
  });

  it('dead-letters an empty how-to-build answer (it was skipped as if a no-responders status)', async () => {
    await declareSilent();
    let inbox = '';
    const rogue = stack.bus.nc.subscribe(subjects.howToBuild(stack.project), {
      callback: (_e, m) => {
        inbox = m.reply ?? '';
        m.respond(new Uint8Array(0));
      },
    });
    try {
      const ask = envelope(
        'api.build',
        { path: 'fz/nobody.builds.empty' },
        { project: stack.project, source: 'e2e' },
      );
      await stack.bus.nc.request(subjects.api(stack.project, 'build'), JSON.stringify(ask), {
        timeout: 10_000,
      });
      expect(inbox).toMatch(/^_INBOX\./);
      const d = await letter((l) => l.service === 'majordomo' && l.subject === inbox);
      expect(d.data).toBe('');
      expect(d.issues[0]?.message).toMatch(/not JSON/);
    } finally {
      rogue.unsubscribe();
    }
  });

  it('answers REST routing errors in the API shape, and 401 before them without a token', async () => {
    const url = await stack.httpUrl();
    const call = async (path: string, token?: string, method = 'GET') => {
      const r = await fetch(`${url}${path}`, {
        method,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      return { status: r.status, body: (await r.json()) as { error?: { code?: string } } };
    };
    // A task id over fastify's default 100-character parameter (a long stem's) was a 414 in
    // fastify's own shape, to anyone; a malformed %-escape a 400 the same way; an unknown
    // route a 404 {message, error, statusCode}.
    const long = `/api/builds/upper:${'a'.repeat(600)}`;
    for (const path of [long, '/api/logs/%zz', '/api/no-such-route'])
      expect(await call(path, undefined, path === long ? 'DELETE' : 'GET')).toMatchObject({
        status: 401,
        body: { error: { code: 'CP_UNAUTHORIZED' } },
      });
    expect(await call(long, stack.apiToken, 'DELETE')).toMatchObject({
      status: 404,
      body: { error: { code: 'CP_UNKNOWN_BUILD', field: 'taskId' } },
    });
    expect(await call('/api/logs/%zz', stack.apiToken)).toMatchObject({
      status: 400,
      body: { error: { code: 'CP_BAD_REQUEST' } },
    });
    expect(await call('/api/no-such-route', stack.apiToken)).toMatchObject({
      status: 404,
      body: { error: { code: 'CP_NOT_FOUND' } },
    });
  });

  it('answers GET /api/logs for a record under a key that is no task id, or naming no valid queue, with a 4xx (was a 500 CP_INTERNAL)', async () => {
    const url = await stack.httpUrl();
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const rec = (queue?: string) => ({
      task: { taskId: 'upper:x', resource: 'local', command: 'true', cwd: '/tmp' },
      state: 'finished' as const,
      ...(queue ? { queue } : {}),
      history: [],
      updated: new Date().toISOString(),
    });
    // As a fuzzed bucket holds them: a valid record under a key a task id cannot be.
    await tasks.kv.put(kvKey('a//b'), JSON.stringify(rec()));
    await tasks.kv.put(kvKey('fz-badqueue'), JSON.stringify(rec('Not A Queue')));
    const call = async (taskId: string) => {
      const r = await fetch(`${url}/api/logs/${encodeURIComponent(taskId)}`, {
        headers: { authorization: `Bearer ${stack.apiToken}` },
      });
      return { status: r.status, body: (await r.json()) as { error?: { code?: string } } };
    };
    expect(await call('a//b')).toMatchObject({
      status: 400,
      body: { error: { code: 'CP_BAD_REQUEST', field: 'taskId' } },
    });
    expect(await call('fz-badqueue')).toMatchObject({
      status: 404,
      body: { error: { code: 'CP_TASK_NO_LOG' } },
    });
  });

  // Last: it stops the runner.
  it('fails a build whose task no runner records instead of holding its slot for ever', async () => {
    await stack.procs.get('runner')!.stop();
    await stack.procs.get('chef')!.stop();
    await stack.start('chef', { ...CHEF_ENV(), CP_CHEF_TASK_RECORD_MS: '500' });
    stack.write('src/orphan.txt', 'orphan\n');
    await changed('src/orphan.txt', 'orphan\n');
    const rec = await stack.until('out/orphan.upper', (a) => a.status === 'failed');
    expect(rec.error).toMatch(
      /CP_TASK_NO_RECORD: no runner recorded task .* is a runner serving queue local/,
    );
  });
});
