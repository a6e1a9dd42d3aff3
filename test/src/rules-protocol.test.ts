import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buckets, envelope, RulesDeclared, subjects, TaskRecord } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, mdStatus, settled, stepsOf } from './watch-builds.js';

const until = async (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
  const end = performance.now() + timeoutMs;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

/** alpha and beta both offer `wc` on demand, differently; both declare `slow`, the same way. */
const definition = (chef: 'alpha' | 'beta') =>
  [
    'rules:',
    '  - id: upper',
    "    inputs: ['src/{stem}.txt']",
    "    outputs: ['out/{stem}.upper']",
    "    auxiliaries: ['out/{stem}.upper.trace']",
    '    command: tr a-z A-Z < {in0} > {out0} && echo converted > {out0}.trace',
    '  - id: slow',
    "    inputs: ['slow/{stem}.in']",
    "    outputs: ['slow/{stem}.out']",
    '    command: if grep -q pause {in0}; then sleep 4; fi; cp {in0} {out0}',
    '  - id: wc',
    '    onDemand: true',
    "    inputs: ['{stem}']",
    "    outputs: ['{stem}.wc']",
    "    auxiliaries: ['{stem}.wc.err']",
    chef === 'alpha'
      ? '    command: wc -l < {in0} > {out0} 2> {out0}.err'
      : '    command: wc -c < {in0} > {out0} 2> {out0}.err',
    '',
  ].join('\n');

/**
 * ComputePods' rules protocol over real processes: MajorDomo asks the chefs "how to build" a goal
 * no declared rule produces and plans with the "can build from" answer; auxiliary files are
 * products, never sources; a chef killed -9 is retired on its missing $SRV answer (the heartbeat
 * timeout is set far out of reach) and its work passes to the other chef.
 */
describe('rules protocol: how to build, can build from, auxiliaries, $SRV liveness', () => {
  let stack: Stack;
  let log: BuildLog;
  const read = (p: string) => readFileSync(join(stack.workspace, p), 'utf8');

  beforeAll(async () => {
    stack = await Stack.start('rules');
    const files = { alpha: stack.dir.join('alpha.yaml'), beta: stack.dir.join('beta.yaml') };
    writeFileSync(files.alpha, definition('alpha'));
    writeFileSync(files.beta, definition('beta'));
    const chef = (name: 'alpha' | 'beta') => ({
      CP_CHEF: name,
      CP_CHEF_DEFINITION: files[name],
      CP_CHEF_CONCURRENCY: '1',
    });
    await Promise.all([
      stack.start('majordomo', { CP_CHEF_TIMEOUT_MS: '600000', CP_CHEF_PING_MS: '200' }),
      stack.start('runner'),
      stack.start('fswatcher'),
      stack.start('chef', chef('alpha'), 'chef-alpha'),
      stack.start('chef', chef('beta'), 'chef-beta'),
    ]);
    log = await BuildLog.start(stack.bus);
  }, 180_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('declares only the rules that are not on demand', async () => {
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    for (const name of ['alpha', 'beta']) {
      const decl = (await rules.get(name))?.value;
      expect(decl?.rules.map((r) => r.id)).toEqual(['upper', 'slow']);
      expect(decl?.srv).toEqual({ name: 'chef', id: expect.any(String) });
    }
  });

  it('records the auxiliary files of a declared rule as its products, not as sources', async () => {
    stack.write('src/a.txt', 'abc\n');
    await stack.status('out/a.upper', 'up_to_date');
    const aux = await stack.until('out/a.upper.trace', () => true);
    expect(aux).toMatchObject({ producer: 'upper:a', auxiliary: true, status: 'up_to_date' });
    expect(read('out/a.upper.trace')).toBe('converted\n');
    const s = await mdStatus(stack.bus);
    expect(s.artefacts.filter((a) => a.status === 'source').map((a) => a.path)).toEqual([
      'src/a.txt',
    ]);
  });

  it('asks the chefs how to build a goal no declared rule produces, and builds it', async () => {
    stack.write('notes/n.txt', 'one\ntwo\n');
    await stack.status('notes/n.txt', 'source');
    const r = await stack.cpctrl(['build', 'notes/n.txt.wc', '--timeout', '60']);
    expect(r.code, r.stderr).toBe(0);
    const rec = await stack.status('notes/n.txt.wc', 'up_to_date');
    expect(read('notes/n.txt.wc').trim()).toBe('2');
    expect(rec.producer).toMatch(/^wc--[0-9a-f]{12}:$/);
    expect(log.resultOf(rec.buildId!)?.chef).toBe('alpha');
    // Both chefs can build it, differently: the first by name is used, with a warning.
    expect(stack.procs.get('majordomo')!.output).toMatch(
      /chefs alpha and beta can both build notes\/n\.txt\.wc; using alpha's/,
    );
    const err = await stack.until('notes/n.txt.wc.err', () => true);
    expect(err).toMatchObject({ producer: rec.producer, auxiliary: true });

    // Planned like any other build: an edit of its input rebuilds it.
    stack.write('notes/n.txt', 'one\ntwo\nthree\n');
    await stack.until(
      'notes/n.txt.wc',
      (a) => a.status === 'up_to_date' && a.buildId !== rec.buildId,
    );
    expect(read('notes/n.txt.wc').trim()).toBe('3');
  });

  it('asks again for a missing input of the goal (backward chaining), and builds both', async () => {
    stack.write('notes/q.txt', 'just one line\n');
    await stack.status('notes/q.txt', 'source');
    const r = await stack.cpctrl(['build', 'notes/q.txt.wc.wc', '--timeout', '60']);
    expect(r.code, r.stderr).toBe(0);
    await stack.status('notes/q.txt.wc.wc', 'up_to_date');
    expect(read('notes/q.txt.wc').trim()).toBe('1');
    expect(read('notes/q.txt.wc.wc').trim()).toBe('1');
    expect(log.passes('notes/q.txt.wc').concat(log.passes('notes/q.txt'))).toEqual([
      '1:wc',
      '1:wc',
    ]);
  });

  it('says why when no chef can build the goal', async () => {
    const r = await stack.cpctrl(['build', 'notes/absent.txt.wc']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /chef alpha could build notes\/absent\.txt\.wc from notes\/absent\.txt, which is missing; none of the 2 chefs that answered can build notes\/absent\.txt/,
    );
    const none = await stack.cpctrl(['build', 'nothing/matches.zip']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(
      /none of the 2 chefs that answered can build nothing\/matches\.zip/,
    );
  });

  it('ignores bad questions and answers, naming the field, and goes on', async () => {
    const p = stack.project;
    const alpha = stack.procs.get('chef-alpha')!;
    const mark = alpha.output.length;
    stack.bus.nc.publish(subjects.howToBuild(p), 'not json');
    stack.bus.nc.publish(
      subjects.howToBuild(p),
      JSON.stringify(
        envelope('rules.how_to_build', { goal: '../etc/passwd' }, { project: p, source: 'e2e' }),
      ),
    );
    await alpha.waitForOutput(
      /"path":"body\.goal".*"msg":"how to build: invalid question dead-lettered"/,
      10_000,
      mark,
    );

    // A rogue answers every question with garbage: MajorDomo dead-letters it and uses the chefs'
    // answers.
    // A declared chef that never answers keeps MajorDomo gathering until its deadline, so the
    // rogue's answers are surely read.
    const rules = await stack.bus.kv(buckets.rules(p), RulesDeclared);
    const md = stack.procs.get('majordomo')!;
    const declared = md.output.length;
    await rules.put('ghost', { chef: 'ghost', pod: 'nowhere', rules: [] });
    // MajorDomo reads the declaration through its watch of the bucket, not in step with this
    // put's ack: until it has, it would not wait for the ghost, and could end the gathering on
    // the chefs' answers before reading the rogue's.
    await md.waitForOutput(/"chef":"ghost".*"msg":"chef rules declared"/, 10_000, declared);
    const rogue = stack.bus.nc.subscribe(subjects.howToBuild(p), {
      callback: (_e, m) => {
        m.respond('{"not": "an envelope"}');
        m.respond(
          JSON.stringify(
            envelope('rules.can_build_from', { goal: 7 }, { project: p, source: 'rogue' }),
          ),
        );
      },
    });
    try {
      stack.write('notes/m.txt', 'x\ny\nz\n');
      await stack.status('notes/m.txt', 'source');
      const r = await stack.cpctrl(['build', 'notes/m.txt.wc', '--timeout', '60']);
      expect(r.code, r.stderr).toBe(0);
      expect(read('notes/m.txt.wc').trim()).toBe('3');
      await stack.procs
        .get('majordomo')!
        .waitForOutput(
          /"path":"body\.goal".*"msg":"how to build: invalid answer dead-lettered"/,
          10_000,
        );
    } finally {
      rogue.unsubscribe();
      await rules.delete('ghost');
    }
    for (const proc of stack.procs.values()) expect(proc.running).toBe(true);
  });

  it('keeps a goal built on demand across a MajorDomo kill -9', async () => {
    const before = await stack.artefact('notes/n.txt.wc');
    await stack.kill9('majordomo');
    await stack.start('majordomo', { CP_CHEF_TIMEOUT_MS: '600000', CP_CHEF_PING_MS: '200' });
    stack.write('notes/n.txt', 'one\ntwo\nthree\nfour\n');
    const after = await stack.until(
      'notes/n.txt.wc',
      (a) => a.status === 'up_to_date' && a.buildId !== before?.buildId,
    );
    expect(after.producer).toBe(before?.producer);
    expect(read('notes/n.txt.wc').trim()).toBe('4');
  });

  it('retires a chef killed -9 on its missing $SRV answer; its queued builds and goals pass on', async () => {
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord, { history: 5 });
    const from = log.requests.length;
    stack.write('slow/l1.in', 'pause\n');
    stack.write('slow/l2.in', 'two\n');
    stack.write('slow/l3.in', 'three\n');
    // alpha (first by name) owns `slow`; with concurrency 1 it holds l1 while l2, l3 wait.
    await until('alpha to run l1', async () => {
      const req = log.requestsFor('slow:l1', from)[0];
      if (!req) return false;
      return (await tasks.get(`b-${req.buildId}`))?.value.state === 'running';
    });
    // The three saves reach MajorDomo in one batch or several (the watcher's debounce under
    // load): l1 may run before l2 and l3 are even asked for. All three go to alpha first.
    // The steps asked of alpha (MajorDomo may ask for several in one group build).
    const toAlpha = () =>
      log.requests
        .slice(from)
        .filter((r) => r.chef === 'alpha')
        .flatMap(stepsOf).length;
    await until('alpha to be asked for l1, l2 and l3', async () => toAlpha() >= 3);
    expect(toAlpha()).toBe(3);
    await stack.kill9('chef-alpha');
    await until('alpha to be retired', async () => !(await rules.keys()).includes('alpha'));
    await stack.procs
      .get('majordomo')!
      .waitForOutput(
        /"chef":"alpha".*"reason":"no \$SRV responder".*"msg":"chef not heard from; its rules are retired and its work re-planned"/,
        10_000,
      );
    for (const s of ['l1', 'l2', 'l3']) await stack.status(`slow/${s}.out`, 'up_to_date');
    for (const s of ['l1', 'l2', 'l3']) {
      const rec = await stack.artefact(`slow/${s}.out`);
      expect(log.resultOf(rec!.buildId!)?.chef).toBe('beta');
    }
    expect(read('slow/l2.out')).toBe('two\n');

    // The goal alpha built on demand is asked again: beta builds it now, its own way.
    const before = await stack.artefact('notes/n.txt.wc');
    stack.write('notes/n.txt', 'one\n');
    const after = await stack.until(
      'notes/n.txt.wc',
      (a) => a.status === 'up_to_date' && a.buildId !== before?.buildId,
    );
    expect(log.resultOf(after.buildId!)?.chef).toBe('beta');
    expect(read('notes/n.txt.wc').trim()).toBe('4');
    await settled(
      stack.bus,
      () => true,
      30_000,
      () => stack.logs(),
    );
  });
});
