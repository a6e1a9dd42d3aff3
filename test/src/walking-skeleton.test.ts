import { existsSync, readFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { DeadLetter, Envelope, streams, subjects } from '@computepods/protocol';
import { sha256, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

/**
 * The walking skeleton over real processes: fswatcher → MajorDomo → chef → runner → chef →
 * MajorDomo, with a real nats-server, driven by writing real files.
 */
describe('saved file → rebuilt artefact, end to end', () => {
  let stack: Stack;
  let chefFile: string;
  const count = (stem: string) => {
    const f = stack.dir.join(`count-${stem}`);
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0;
  };

  beforeAll(async () => {
    stack = await Stack.start('e2e');
    // Counts runs outside the workspace, so "built exactly once" can be checked.
    chefFile = stack.writeUpperChef(
      `tr a-z A-Z < {in0} > {out0} && echo run >> ${stack.dir.path}/count-{stem}`,
    );
    await Promise.all([
      stack.start('majordomo'),
      stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chefFile }),
      stack.start('runner'),
      stack.start('fswatcher'),
    ]);
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('builds out/a.upper when src/a.txt is saved, and rebuilds it on edit', async () => {
    stack.write('src/a.txt', 'hello\n');
    const first = await stack.until('out/a.upper');
    expect(readFileSync(join(stack.workspace, 'out/a.upper'), 'utf8')).toBe('HELLO\n');
    expect(first.sha256).toBe(sha256('HELLO\n'));
    expect(first.producer).toBe('upper:a');

    stack.write('src/a.txt', 'hello again\n');
    await stack.until(
      'out/a.upper',
      (a) => a.status === 'up_to_date' && a.sha256 === sha256('HELLO AGAIN\n'),
    );
    expect(readFileSync(join(stack.workspace, 'out/a.upper'), 'utf8')).toBe('HELLO AGAIN\n');
    expect((await stack.artefact('src/a.txt'))?.status).toBe('source');
    expect(count('a')).toBe(2);
  });

  it('does nothing downstream when a file is only touched', async () => {
    const before = await stack.until('out/a.upper');
    const future = new Date(Date.now() + 5_000);
    utimesSync(join(stack.workspace, 'src/a.txt'), future, future);
    // A later edit elsewhere is the sentinel: once it is built, the touch has been processed.
    stack.write('src/t.txt', 'sentinel\n');
    await stack.until('out/t.upper');
    expect((await stack.artefact('out/a.upper'))?.buildId).toBe(before.buildId);
    expect(count('a')).toBe(2);
  });

  it('plans from the bytes the chef finds when MajorDomo heard of others (no re-send loop)', async () => {
    stack.write('src/m.txt', 'missed\n');
    await stack.until('out/m.upper');
    // A change MajorDomo hears of that the pod does not hold (as when a file event was skipped
    // while the build writing it was in flight): the chef cancels, naming what it has.
    await stack.bus.publish('files.changed', subjects.filesChanged(stack.project, 'pod-test'), {
      pod: 'pod-test',
      events: [
        { kind: 'changed', path: 'src/m.txt', size: 5, mtimeNs: '1', sha256: sha256('other') },
      ],
    });
    await stack.procs
      .get('majordomo')!
      .waitForOutput(/"status":"cancelled","reason":"input src\/m\.txt is now/, 20_000);
    await stack.until('src/m.txt', (a) => a.sha256 === sha256('missed\n'));
    await stack.until('out/m.upper');
    expect(readFileSync(join(stack.workspace, 'out/m.upper'), 'utf8')).toBe('MISSED\n');
  });

  it('dead-letters malformed and invalid messages on every consumed subject and keeps working', async () => {
    const letters: { service: string; subject: string; reason: string }[] = [];
    const sub = stack.bus.nc.subscribe(`cp.${stack.project}.dlq.*`, {
      callback: (_e, m) => {
        const env = Envelope.safeParse(m.json());
        const body = env.success ? DeadLetter.safeParse(env.data.body) : undefined;
        if (body?.success) letters.push(body.data);
      },
    });
    const p = stack.project;
    const targets = [
      subjects.filesChanged(p, 'pod-test'),
      subjects.buildResult(p),
      subjects.buildRequest(p, 'text'),
      subjects.tasks(p, 'local'),
    ];
    for (const subject of targets) {
      await stack.bus.js.publish(subject, '{"not": json');
      await stack.bus.js.publish(
        subject,
        JSON.stringify({
          v: 1,
          id: 'x',
          time: new Date().toISOString(),
          project: p,
          source: 'evil',
          cid: 'c',
          type: 'files.changed',
          body: { pod: 1 },
        }),
      );
    }
    for (let i = 0; i < 400 && letters.length < 8; i++) await new Promise((r) => setTimeout(r, 25));
    sub.unsubscribe();
    expect(new Set(letters.map((l) => l.service))).toEqual(
      new Set(['majordomo', 'chef', 'runner']),
    );
    expect(letters.length).toBe(8);
    expect(letters.some((l) => /malformed JSON/.test(l.reason))).toBe(true);
    const info = await stack.bus.jsm.streams.info(streams.deadLetters(p));
    expect(info.state.messages).toBeGreaterThanOrEqual(8);
    // still working
    stack.write('src/after.txt', 'still alive\n');
    await stack.until('out/after.upper');
    for (const proc of stack.procs.values()) expect(proc.running).toBe(true);
  });

  it('completes a pending build exactly once when MajorDomo is killed -9 and restarted', async () => {
    await stack.procs.get('chef')?.stop();
    stack.write('src/k.txt', 'kill me\n');
    await until(
      async () => (await stack.mdArtefact('out/k.upper'))?.status === 'queued',
      'out/k.upper queued',
    );
    await stack.kill9('majordomo');
    await stack.start('majordomo');
    await stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chefFile });
    const rec = await stack.until('out/k.upper');
    expect(rec.sha256).toBe(sha256('KILL ME\n'));
    expect(readFileSync(join(stack.workspace, 'out/k.upper'), 'utf8')).toBe('KILL ME\n');
    // a sentinel build proves nothing else was still on its way
    stack.write('src/k2.txt', 'after\n');
    await stack.until('out/k2.upper');
    expect(count('k')).toBe(1);
  });

  it('cpctrl shows services and artefacts and builds on request, JSON alone on stdout', async () => {
    const status = await stack.cpctrl(['-o', 'json', 'status', '--artefacts']);
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout);
    expect(s.services.map((x: { name: string }) => x.name).sort()).toEqual([
      'chef',
      'fswatcher',
      'majordomo',
      'runner',
    ]);
    expect(s.artefacts.find((a: { path: string }) => a.path === 'out/a.upper')).toMatchObject({
      status: 'up_to_date',
    });

    const runs = count('a');
    const built = await stack.cpctrl(['-o', 'json', 'build', 'out/a.upper', '--force']);
    expect(built.code).toBe(0);
    expect(JSON.parse(built.stdout)).toMatchObject({ path: 'out/a.upper', status: 'up_to_date' });
    expect(count('a')).toBe(runs + 1);

    const text = await stack.cpctrl(['status', '--artefacts']);
    expect(text.stdout).toMatch(/out\/a\.upper\s+up_to_date/);

    const unknown = await stack.cpctrl(['-o', 'json', 'build', 'out/none.upper']);
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout).error).toMatchObject({
      code: 'CP_UNKNOWN_ARTEFACT',
      field: 'path',
    });
    const traversal = await stack.cpctrl(['-o', 'json', 'build', '../../etc/passwd']);
    expect(traversal.code).toBe(1);
    expect(JSON.parse(traversal.stdout).error).toMatchObject({
      code: 'CP_MESSAGE_INVALID',
      field: 'path',
    });
  });

  it('serves the REST API with OpenAPI, bearer-token mutations, 4xx naming the field, and live SSE', async () => {
    const url = await stack.httpUrl();
    // Every route but /healthz needs a token; CP_API_TOKEN is the bootstrap admin's.
    const get = (path: string, init: RequestInit = {}) =>
      fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${stack.apiToken}` } });
    const list = (await get('/api/artefacts?status=up_to_date').then((r) => r.json())) as {
      path: string;
    }[];
    expect(list.map((a: { path: string }) => a.path)).toContain('out/a.upper');
    const one = (await get('/api/artefact?path=out/a.upper').then((r) => r.json())) as object;
    expect(one).toMatchObject({ producer: 'upper:a', artefact: { status: 'up_to_date' } });

    const bad = await get('/api/artefact?path=../../etc/passwd');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: object }).error).toMatchObject({
      code: 'CP_UNSAFE_PATH',
      field: 'path',
    });
    const noToken = await fetch(`${url}/api/builds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"path":"out/a.upper"}',
    });
    expect(noToken.status).toBe(401);
    const auth = { authorization: `Bearer ${stack.apiToken}`, 'content-type': 'application/json' };
    const badBody = await fetch(`${url}/api/builds`, {
      method: 'POST',
      headers: auth,
      body: '{"path":42}',
    });
    expect(badBody.status).toBe(400);
    expect(((await badBody.json()) as { error: { field: string } }).error.field).toBe('path');
    const unknown = await fetch(`${url}/api/builds`, {
      method: 'POST',
      headers: auth,
      body: '{"path":"out/zzz.upper"}',
    });
    expect(unknown.status).toBe(404);

    const spec = (await get('/openapi.json').then((r) => r.json())) as { paths: object };
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining(['/api/artefacts', '/api/builds', '/api/events', '/api/tasks']),
    );
    // The whole graph, idle or not; ?plan=true only what is pending (nothing, once built).
    const dot = await get('/api/graph?format=dot').then((r) => r.text());
    expect(dot).toMatch(/digraph/);
    expect(dot).toContain('"out/a.upper"');
    const pending = await get('/api/graph?format=dot&plan=true').then((r) => r.text());
    expect(pending).toMatch(/digraph/);
    expect(pending).not.toContain('"out/a.upper"');
    const whyBuilt = await stack.cpctrl(['artefact', 'why', 'out/a.upper']);
    expect(whyBuilt.stdout).toMatch(/out\/a\.upper: up_to_date, built by upper:a/);
    const whySource = await stack.cpctrl(['artefact', 'why', 'src/a.txt']);
    expect(whySource.stdout).toMatch(/src\/a\.txt: a source/);
    const cliDot = await stack.cpctrl(['graph', '--dot']);
    expect(cliDot.code).toBe(0);
    expect(cliDot.stdout).toContain('"out/a.upper"');

    // live events: a saved file shows up on the SSE stream as it is rebuilt
    const ctrl = new AbortController();
    const res = await get('/api/events', { signal: ctrl.signal });
    const reader = res.body!.getReader();
    stack.write('src/sse.txt', 'events\n');
    let text = '';
    while (
      !/event: artefact\.states\ndata: .*"path":"out\/sse\.upper","status":"up_to_date"/.test(text)
    ) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ctrl.abort();
    expect(text).toMatch(/event: files\.changed/);
    expect(text).toMatch(/event: build\.requested/);
    expect(text).toMatch(/event: task\.state/);
  });

  it('drains and exits 0 on SIGTERM', async () => {
    for (const [name, proc] of stack.procs) {
      const code = await proc.stop(15_000);
      expect({ name, code }).toEqual({ name, code: 0 });
      expect(proc.output).toMatch(/"msg":"stopped cleanly"/);
    }
  });
});
