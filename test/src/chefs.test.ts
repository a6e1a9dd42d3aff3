import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buckets,
  RulesDeclared,
  type StatusReply,
  TaskRecord,
  TaskTrace,
} from '@computepods/protocol';
import { Sshd } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, settled, stepsOf } from './watch-builds.js';

const until = async (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
  const end = performance.now() + timeoutMs;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

const UTIL_H = '#define GREETING "hello"\nint util(void);\n';
const LIB_H = '#define FACTOR 2\nint lib(int);\n';

/**
 * The builtin C chef (headers discovered from depfiles), build cancellation, chef liveness and
 * takeover, and two pods exchanging inputs over SFTP: real nats-server, real sshd, every
 * service its own process.
 */
describe('chefs: C with discovered headers, cancel, liveness, inputs from other pods', () => {
  let stack: Stack;
  let sshd: Sshd;
  let log: BuildLog;
  let wsB: string;
  const a = (p: string) => join(stack.workspace, p);
  const readA = (p: string) => readFileSync(a(p), 'utf8');
  const upToDate = (path: string) => (s: { artefacts: { path: string; status: string }[] }) =>
    s.artefacts.some((x) => x.path === path && x.status === 'up_to_date');
  const tasks = () => stack.bus.kv(buckets.tasks(stack.project), TaskRecord, { history: 5 });
  /** The services' logs and sshd's own (VERBOSE: why it refused a login, say). */
  const diagnostics = () => `${stack.logs()}\n--- sshd\n${sshd.output.slice(-3000)}`;
  /**
   * `ok`, unless one of `paths` failed: a failed build waits for an input to change, so waiting
   * on for it only ran into the test's timeout, which hid the reason. This says it at once.
   */
  const unlessFailed =
    (paths: string[], ok: (s: StatusReply) => boolean) =>
    (s: StatusReply): boolean => {
      const failed = s.artefacts.filter((a) => paths.includes(a.path) && a.status === 'failed');
      if (failed.length)
        throw new Error(
          `${failed.map((a) => `${a.path} failed: ${a.error}`).join('\n')}\n${diagnostics()}`,
        );
      return ok(s);
    };

  beforeAll(async () => {
    stack = await Stack.start('chefs');
    sshd = await Sshd.start({ users: ['cpuser'] });
    // The SFTP user reads both pods' workspaces.
    wsB = stack.dir.join('workspace-b');
    mkdirSync(wsB);
    for (const d of [stack.dir.path, stack.workspace, wsB]) chmodSync(d, 0o755);
    const t = sshd.target();
    const pod = (root: string) => ({
      host: t.host,
      port: t.port,
      user: t.username,
      key: t.privateKeyPath,
      knownHosts: t.knownHostsPath,
      root,
    });
    const shared = stack.dir.join('shared.yaml');
    writeFileSync(
      shared,
      [
        'rules:',
        '  - id: slow',
        "    inputs: ['slow/{stem}.in']",
        "    outputs: ['slow/{stem}.out']",
        // "slow" sleeps a minute (only a kill ends it early); "pause" waits for the test to
        // write its gate (go-{stem}; a minute at most).
        `    command: if grep -q slow {in0}; then echo >> ${stack.dir.path}/sleeping-{stem}; sleep 60; elif grep -q pause {in0}; then i=0; while [ ! -e ${stack.dir.path}/go-{stem} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; fi; cp {in0} {out0}`,
        '  - id: upper',
        "    inputs: ['src/{stem}.txt']",
        "    outputs: ['out/{stem}.upper']",
        '    command: tr a-z A-Z < {in0} > {out0}',
        '  - id: final',
        "    inputs: ['out/{stem}.rev']",
        "    outputs: ['out/{stem}.final']",
        '    command: (cat {in0}; echo done) > {out0}',
        '',
      ].join('\n'),
    );
    const podb = stack.dir.join('podb.yaml');
    writeFileSync(
      podb,
      [
        'rules:',
        '  - id: rev',
        "    inputs: ['out/{stem}.upper']",
        "    outputs: ['out/{stem}.rev']",
        '    command: rev {in0} > {out0}',
        '',
      ].join('\n'),
    );
    const podsForA = JSON.stringify({ 'pod-b': pod(wsB) });
    const sharedEnv = {
      CP_CHEF_DEFINITION: shared,
      CP_CHEF_CONCURRENCY: '1',
      CP_CHEF_HEARTBEAT_MS: '500',
      CP_POD: 'pod-a',
      CP_PODS: podsForA,
    };
    await Promise.all([
      // $SRV PINGs far apart: the heartbeat alone retires a chef here (rules-protocol.test.ts
      // covers the PING).
      stack.start('majordomo', { CP_CHEF_TIMEOUT_MS: '3000', CP_CHEF_PING_MS: '600000' }),
      // chef-podb's tasks run in pod-b's workspace: the runner must allow both
      stack.start('runner', { CP_WORKSPACE_ROOTS: `${stack.workspace}:${wsB}` }),
      stack.start('fswatcher', { CP_POD: 'pod-a' }),
      stack.start(
        'chef',
        { CP_CHEF: 'c', CP_CHEF_DEFINITION: 'c', CP_POD: 'pod-a', CP_CHEF_HEARTBEAT_MS: '500' },
        'chef-c',
      ),
      stack.start('chef', { ...sharedEnv, CP_CHEF: 'a-chef' }, 'a-chef'),
      stack.start('chef', { ...sharedEnv, CP_CHEF: 'b-chef' }, 'b-chef'),
      stack.start(
        'chef',
        {
          CP_CHEF: 'podb',
          CP_CHEF_DEFINITION: podb,
          CP_POD: 'pod-b',
          CP_WORKSPACE: wsB,
          CP_CHEF_HEARTBEAT_MS: '500',
          CP_PODS: JSON.stringify({ 'pod-a': pod(stack.workspace) }),
        },
        'chef-podb',
      ),
    ]);
    log = await BuildLog.start(stack.bus);
  }, 180_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
    await sshd?.[Symbol.asyncDispose]();
  });

  it('C: compiles and links, reporting the headers each object read', async () => {
    stack.write('src/util.h', UTIL_H);
    stack.write('src/lib.h', LIB_H);
    stack.write('src/util.c', '#include "util.h"\nint util(void) { return sizeof GREETING; }\n');
    stack.write('src/lib.c', '#include "lib.h"\nint lib(int x) { return x * FACTOR; }\n');
    stack.write(
      'src/main.c',
      [
        '#include <stdio.h>',
        '#include "util.h"',
        'int lib(int);',
        '/* a comment */',
        'int main(void) { printf("%s %d %d\\n", GREETING, util(), lib(10)); return 0; }',
        '',
      ].join('\n'),
    );
    await settled(stack.bus, upToDate('src/prog'), 60_000, () => stack.logs());
    expect(execFileSync(a('src/prog'), { encoding: 'utf8' })).toBe('hello 6 20\n');
    const traces = await stack.bus.kv(buckets.traces(stack.project), TaskTrace);
    const found = async (t: string) => (await traces.get(t))?.value.discovered;
    expect(await found('cc:src/main')).toEqual(['src/util.h']);
    expect(await found('cc:src/util')).toEqual(['src/util.h']);
    expect(await found('cc:src/lib')).toEqual(['src/lib.h']);
  });

  it('C: a header edit rebuilds only the objects that include it', async () => {
    let from = log.requests.length;
    stack.write('src/lib.h', LIB_H.replace('FACTOR 2', 'FACTOR 3'));
    await settled(
      stack.bus,
      (s) => upToDate('src/prog')(s) && log.requestsFor('link:src', from).length > 0,
      60_000,
      () => stack.logs(),
    );
    expect(log.requests.slice(from).map((r) => r.taskId)).toEqual(['cc:src/lib', 'link:src']);
    expect(execFileSync(a('src/prog'), { encoding: 'utf8' })).toBe('hello 6 30\n');

    from = log.requests.length;
    stack.write('src/util.h', UTIL_H.replace('"hello"', '"hello, world"'));
    await settled(
      stack.bus,
      (s) => upToDate('src/prog')(s) && log.requestsFor('link:src', from).length > 0,
      60_000,
      () => stack.logs(),
    );
    expect(
      log.requests
        .slice(from)
        .map((r) => r.taskId)
        .sort(),
    ).toEqual(['cc:src/main', 'cc:src/util', 'link:src']);
    expect(execFileSync(a('src/prog'), { encoding: 'utf8' })).toBe('hello, world 13 30\n');
  });

  it('C: a comment edit rebuilds the object with the same bytes, and the link is cut off', async () => {
    const o = readFileSync(a('src/main.o'));
    const prog = await stack.artefact('src/prog');
    const from = log.requests.length;
    stack.write('src/main.c', readA('src/main.c').replace('a comment', 'another, longer comment'));
    await settled(
      stack.bus,
      (s) => upToDate('src/main.o')(s) && log.requestsFor('cc:src/main', from).length > 0,
      60_000,
      () => stack.logs(),
    );
    expect(readFileSync(a('src/main.o')).equals(o)).toBe(true);
    expect(log.requests.slice(from).map((r) => r.taskId)).toEqual(['cc:src/main']);
    expect((await stack.artefact('src/prog'))?.buildId).toBe(prog?.buildId);
  });

  it('cancels a build whose input changes mid-run: the runner task is killed, the build reported cancelled', async () => {
    const from = log.requests.length;
    stack.write('slow/s.in', 'slow\n');
    await until('the slow task to sleep', () => existsSync(stack.dir.join('sleeping-s')));
    const first = log.requestsFor('slow:s', from)[0]!;
    stack.write('slow/s.in', 'fast\n');
    await settled(
      stack.bus,
      (s) => upToDate('slow/s.out')(s) && existsSync(a('slow/s.out')),
      30_000,
      () => stack.logs(),
    );
    expect(readA('slow/s.out')).toBe('fast\n');
    await until('the cancelled result', () => log.resultOf(first.buildId) !== undefined);
    expect(log.resultOf(first.buildId)).toMatchObject({ status: 'cancelled', chef: 'a-chef' });
    expect((await (await tasks()).get(`b-${first.buildId}`))?.value.state).toBe('killed');

    // Back to the killed build's input: the same build id runs again (a new task), and is
    // cancelled again by the next edit, which the result cache answers at once.
    const sleeps = () => readFileSync(stack.dir.join('sleeping-s'), 'utf8').length;
    stack.write('slow/s.in', 'slow\n');
    await until('the same build to run again', () => sleeps() === 2);
    stack.write('slow/s.in', 'fast\n');
    await settled(
      stack.bus,
      (s) =>
        upToDate('slow/s.out')(s) &&
        log.results.filter((r) => r.buildId === first.buildId).length === 2,
      30_000,
      () => stack.logs(),
    );
    expect(log.results.filter((r) => r.buildId === first.buildId).map((r) => r.status)).toEqual([
      'cancelled',
      'cancelled',
    ]);
    expect(readA('slow/s.out')).toBe('fast\n');
  });

  it('ignores a cancel for a build no chef holds', async () => {
    const buildId = randomBytes(16).toString('hex');
    const chef = stack.procs.get('a-chef')!;
    const mark = chef.output.length;
    await stack.bus.publish('build.cancel', `cp.${stack.project}.build.cancel`, {
      buildId,
      reason: 'test',
    });
    await chef.waitForOutput(/cancel for a build this chef does not hold; ignored/, 10_000, mark);
    stack.write('slow/after.in', 'quick\n');
    await settled(stack.bus, upToDate('slow/after.out'), 30_000, () => stack.logs());
    expect(log.resultOf(buildId)).toBeUndefined();
    for (const p of stack.procs.values()) expect(p.running).toBe(true);
  });

  it('exchanges inputs between two pods over SFTP (verified, atomic) before building', async () => {
    const chain = ['out/x.upper', 'out/x.rev', 'out/x.final'];
    stack.write('src/x.txt', 'abc\n');
    // Each wait well inside the test's 60 s (it takes 2 s), so a stuck build says why.
    await settled(stack.bus, unlessFailed(chain, upToDate('out/x.final')), 25_000, diagnostics);
    // pod-b fetched pod-a's out/x.upper, built out/x.rev; pod-a fetched that back for final.
    expect(readFileSync(join(wsB, 'out/x.upper'), 'utf8')).toBe('ABC\n');
    expect(readFileSync(join(wsB, 'out/x.rev'), 'utf8')).toBe('CBA\n');
    expect(readA('out/x.rev')).toBe('CBA\n');
    expect(readA('out/x.final')).toBe('CBA\ndone\n');
    // Each record names every pod holding its hash: pod-b got out/x.upper by SFTP (it has no
    // fswatcher: the build that used it says so), pod-a got out/x.rev the same way.
    expect((await stack.artefact('out/x.upper'))?.pods).toEqual(['pod-a', 'pod-b']);
    expect((await stack.artefact('out/x.rev'))?.pods).toEqual(['pod-b', 'pod-a']);
    expect((await stack.artefact('out/x.final'))?.pods).toEqual(['pod-a']);
    expect(stack.procs.get('chef-podb')!.output).toMatch(
      /"pod":"pod-a","files":1,"paths":\["out\/x\.upper"\].*"msg":"inputs fetched from another pod"/,
    );
    expect(stack.procs.get('a-chef')!.output).toMatch(
      /"pod":"pod-b","files":1,"paths":\["out\/x\.rev"\].*"msg":"inputs fetched from another pod"/,
    );

    // A new version travels again, and a stale copy on the other pod is replaced.
    stack.write('src/x.txt', 'abcd\n');
    await settled(
      stack.bus,
      unlessFailed(
        chain,
        (s) => upToDate('out/x.final')(s) && readA('out/x.final') === 'DCBA\ndone\n',
      ),
      25_000,
      diagnostics,
    );
    expect(readFileSync(join(wsB, 'out/x.upper'), 'utf8')).toBe('ABCD\n');
    // A new hash is held only where it was made and where it was fetched to.
    expect((await stack.artefact('out/x.upper'))?.pods).toEqual(['pod-a', 'pod-b']);
    const sources = await stack.artefact('src/x.txt');
    expect(sources?.pods).toEqual(['pod-a']);
  });

  it('retires the rules of a chef killed -9 and lets another chef take over its queued builds', async () => {
    const rules = await stack.bus.kv(buckets.rules(stack.project), RulesDeclared);
    const from = log.requests.length;
    stack.write('slow/l1.in', 'pause\n');
    stack.write('slow/l2.in', 'two\n');
    stack.write('slow/l3.in', 'three\n');
    // a-chef (first by name) owns the rule; with concurrency 1 it holds l1 while l2, l3 wait.
    // The three writes may reach MajorDomo in separate change batches, so l1 can be running
    // before l3 is asked for (fresh-clone CI saw 2 requests at that instant): wait for all three.
    // The steps asked of a-chef (MajorDomo may ask for several in one group build).
    const toA = () =>
      log.requests
        .slice(from)
        .filter((r) => r.chef === 'a-chef')
        .flatMap(stepsOf);
    await until('a-chef to run l1 and be asked for l2, l3', async () => {
      const req = log.requestsFor('slow:l1', from)[0];
      if (!req || toA().length < 3) return false;
      return (await (await tasks()).get(`b-${req.buildId}`))?.value.state === 'running';
    });
    expect(toA().sort()).toEqual(['slow:l1', 'slow:l2', 'slow:l3']);
    await stack.kill9('a-chef');
    await until('a-chef to be retired', async () => !(await rules.keys()).includes('a-chef'));
    // l1 ran on while a-chef died (it waited for this gate: a fixed sleep could end first on
    // a loaded machine, and a-chef report it before its kill); b-chef takes its task over.
    writeFileSync(stack.dir.join('go-l1'), '');
    for (const s of ['l1', 'l2', 'l3'])
      await settled(stack.bus, upToDate(`slow/${s}.out`), 30_000, () => stack.logs());
    expect(readA('slow/l2.out')).toBe('two\n');
    for (const s of ['l1', 'l2', 'l3']) {
      const rec = await stack.artefact(`slow/${s}.out`);
      expect(log.resultOf(rec!.buildId!)?.chef).toBe('b-chef');
    }
    // The live chefs are declared and a-chef is not. Read once it settles, not at one instant: a
    // live chef starved of CPU past the 3 s timeout (fresh-clone CI at load ~30: podb missing) is
    // retired too, and is back with its next heartbeat (500 ms), which is the design.
    const declared = async () => (await rules.keys()).sort().join(',');
    await until('b-chef, c and podb declared', async () => (await declared()) === 'b-chef,c,podb');
    await stack.procs
      .get('majordomo')!
      .waitForOutput(
        /"chef":"a-chef","silentMs":\d+,"timeoutMs":3000,"msg":"chef not heard from; its rules are retired and its work re-planned"/,
      );
  });
});
