import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defined, isAlive, TempDir, until } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { type SpawnEnd, Spawner, type SpawnRequest } from './spawner.js';

const tmp = new TempDir('cp-spawner-');
afterAll(() => tmp[Symbol.dispose]());

let n = 0;
function req(command: string, extra: Partial<SpawnRequest> = {}): SpawnRequest {
  n++;
  return { dir: tmp.join(`task-${n}`), cwd: tmp.path, command, env: {}, ...extra };
}

/** Runs one request; resolves with its pid (when reported) and how it ended. */
function run(sp: Spawner, r: SpawnRequest) {
  let pid: number | undefined;
  let onPid: (p: number) => void = () => {};
  const started = new Promise<number>((resolve) => {
    onPid = resolve;
  });
  const ended = new Promise<SpawnEnd>((resolve) =>
    sp.run(r, {
      started: (p) => {
        pid = p;
        onPid(p);
      },
      ended: resolve,
    }),
  );
  return { started, ended, pid: () => pid };
}

/**
 * How the task was started, from its folder: the wrapper writes "PID"; the spawner writes
 * "PID START" for a task it started directly, once it has run a moment (none for a short one).
 */
function startedBy(r: SpawnRequest): 'wrapper' | 'spawner' {
  const pidFile = join(r.dir, 'pid');
  if (!existsSync(pidFile)) return 'spawner';
  const text = readFileSync(pidFile, 'utf8');
  if (/^\d+\n$/.test(text)) return 'wrapper';
  expect(text).toMatch(/^\d+ \d+\n$/);
  return 'spawner';
}

describe('spawner', { timeout: 60_000 }, () => {
  it('runs commands in their own process group with cwd, env, output files, pid and exit files', async () => {
    const sp = new Spawner({ env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BASE: 'b' } });
    const r = req('pwd; echo "$BASE $EXTRA"; echo err >&2; ps -o pgid= -p $$; exit 3', {
      env: { EXTRA: 'x y' },
    });
    const t = run(sp, r);
    const pid = await t.started;
    expect(await t.ended).toEqual({ kind: 'exit', code: 3 });
    const [cwd, envLine, pgid] = readFileSync(join(r.dir, 'stdout'), 'utf8').trim().split('\n');
    expect([cwd, envLine, Number(pgid)]).toEqual([tmp.path, 'b x y', pid]);
    expect(readFileSync(join(r.dir, 'stderr'), 'utf8')).toBe('err\n');
    expect(readFileSync(join(r.dir, 'pid'), 'utf8')).toBe(`${pid}\n`);
    expect(readFileSync(join(r.dir, 'exit'), 'utf8')).toBe('3\n');
    sp.close();
  });

  it("keeps the runner's NATS credentials and API token out of a task's environment", async () => {
    const saved = { creds: process.env.NATS_CREDS, token: process.env.CP_API_TOKEN };
    process.env.NATS_CREDS = '/secret/runner.creds';
    process.env.CP_API_TOKEN = 'secret-token-value';
    try {
      const sp = new Spawner();
      const r = req('env');
      expect(await run(sp, r).ended).toEqual({ kind: 'exit', code: 0 });
      const env = readFileSync(join(r.dir, 'stdout'), 'utf8');
      expect(env).toMatch(/^PATH=/m);
      expect(env).not.toMatch(/NATS_CREDS|secret-token-value|CP_API_TOKEN/);
      sp.close();
    } finally {
      for (const [k, v] of [
        ['NATS_CREDS', saved.creds],
        ['CP_API_TOKEN', saved.token],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
  });

  it('reports a cwd that does not exist, a NUL byte, and a signal, without stopping', async () => {
    const sp = new Spawner();
    const missing = await run(sp, req('true', { cwd: tmp.join('nowhere') })).ended;
    expect(missing).toMatchObject({ kind: 'failed' });
    expect((missing as { error: string }).error).toMatch(/^ENOENT: /);
    const nul = await run(sp, req('true', { env: { BAD: 'a\0b' } })).ended;
    expect(nul).toMatchObject({ kind: 'failed' });
    // A shell command: its wrapper dies of the signal too.
    const t = run(sp, req('sleep 30; exit 0'));
    const pid = await t.started;
    process.kill(-pid, 'SIGTERM');
    expect(await t.ended).toEqual({ kind: 'signal', signal: 'SIGTERM' });
    expect(await run(sp, req('exit 0')).ended).toEqual({ kind: 'exit', code: 0 });
    expect(sp.started).toBe(1);
    sp.close();
  });

  it('starts a plain command without a shell, giving it what sh would (env, PWD, cwd, files)', async () => {
    // The spawner's environment as a runner may have it: a name no shell keeps, IFS, OPTIND and
    // PPID (which sh resets) and a PWD naming another directory.
    const sp = new Spawner({
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        'NOT-A-NAME': 'x',
        IFS: ',',
        OPTIND: '7',
        PPID: '1',
        PWD: '/',
        KEPT: 'k',
      },
    });
    const env = { EXTRA: 'x y', LINENO: '3' };
    // The same programs, quoted so that the wrapper runs them: what sh gives them is the model.
    const direct = [req('env', { env }), req('/bin/pwd -L', { env })];
    const wrapped = [req("'env'", { env }), req("'/bin/pwd' -L", { env })];
    for (const r of [...direct, ...wrapped])
      expect(await run(sp, r).ended).toEqual({ kind: 'exit', code: 0 });
    const lines = (r: SpawnRequest) =>
      readFileSync(join(r.dir, 'stdout'), 'utf8').trim().split('\n').sort();
    const [env1, pwd1] = direct.map(lines);
    expect(env1).toEqual(lines(defined(wrapped[0], 'wrapped[0]')));
    expect(pwd1).toEqual(lines(defined(wrapped[1], 'wrapped[1]')));
    expect(env1).toContain(`PWD=${tmp.path}`);
    expect(env1).toContain('EXTRA=x y');
    expect(pwd1).toEqual([tmp.path]);
    for (const r of direct) expect(startedBy(r)).toBe('spawner');
    for (const r of wrapped) expect(startedBy(r)).toBe('wrapper');
    for (const r of direct) expect(readFileSync(join(r.dir, 'exit'), 'utf8')).toBe('0\n');
    sp.close();
  });

  it('runs a plain command found in PATH or by its path with its words as argv; leaves the rest to sh', async () => {
    const bin = tmp.join('bin');
    mkdirSync(bin, { recursive: true });
    const script = (name: string, body: string, mode = 0o755) => {
      writeFileSync(join(bin, name), body);
      chmodSync(join(bin, name), mode);
    };
    script('argv', '#!/bin/sh\nfor a; do echo "[$a]"; done\necho "0=$0"\nexit 5\n');
    script('no-shebang', 'echo script run by sh\nexit 6\n');
    script('not-executable', '#!/bin/sh\nexit 0\n', 0o644);
    const path = `/nowhere:${bin}:/usr/bin:/bin`;
    const sp = new Spawner({ env: { PATH: path } });
    const found = req('argv  a=1\t--b=2 c,d:e@f%g+h');
    expect(await run(sp, found).ended).toEqual({ kind: 'exit', code: 5 });
    expect(readFileSync(join(found.dir, 'stdout'), 'utf8')).toBe(
      `[a=1]\n[--b=2]\n[c,d:e@f%g+h]\n0=${join(bin, 'argv')}\n`,
    );
    expect(startedBy(found)).toBe('spawner');
    const relative = req('./bin/argv x');
    expect(await run(sp, relative).ended).toEqual({ kind: 'exit', code: 5 });
    expect(readFileSync(join(relative.dir, 'stdout'), 'utf8')).toBe('[x]\n0=./bin/argv\n');
    // Not found, not executable, no #!: what sh says and does (the wrapper runs them).
    for (const name of ['no-such-program-here', 'not-executable', 'no-shebang']) {
      const sh = spawnSync('/bin/sh', ['-c', name], { cwd: tmp.path, env: { PATH: path } });
      const r = req(name);
      expect(await run(sp, r).ended).toEqual({ kind: 'exit', code: sh.status });
      expect(startedBy(r)).toBe('wrapper');
      expect(readFileSync(join(r.dir, 'stdout'), 'utf8')).toBe(sh.stdout.toString());
      expect(readFileSync(join(r.dir, 'stderr'), 'utf8').replace(/^sh: \d+: (eval: )?/, '')).toBe(
        sh.stderr.toString().replace(/^\/bin\/sh: \d+: /, ''),
      );
    }
    // Shell words, assignments and builtins stay the shell's.
    for (const [command, out] of [
      ['echo -n a', 'a'],
      ['A=1 env', 'A=1'],
      ['true x', ''],
      ['cd /', ''],
    ] as const) {
      const r = req(command);
      expect(await run(sp, r).ended).toEqual({ kind: 'exit', code: 0 });
      expect(startedBy(r)).toBe('wrapper');
      expect(readFileSync(join(r.dir, 'stdout'), 'utf8')).toContain(out);
    }
    const t = req('true');
    expect(await run(sp, t).ended).toEqual({ kind: 'exit', code: 0 });
    expect(startedBy(t)).toBe('spawner');
    sp.close();
  });

  it('records a plain command killed by a signal as sh does: 128 + N, and its message', async () => {
    const sp = new Spawner();
    for (const [signal, code, message] of [
      ['SIGTERM', 143, 'Terminated\n'],
      ['SIGKILL', 137, 'Killed\n'],
    ] as const) {
      const r = req('sleep 30');
      const t = run(sp, r);
      const pid = await t.started;
      // Its pid file, written once it has run for a moment, names it with its start time.
      await until(() => existsSync(join(r.dir, 'pid')), 'the pid file');
      const [filePid, start] = readFileSync(join(r.dir, 'pid'), 'utf8').trim().split(' ');
      expect(Number(filePid)).toBe(pid);
      expect(start).toBe(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19]);
      process.kill(-pid, signal);
      expect(await t.ended).toEqual({ kind: 'exit', code });
      expect(readFileSync(join(r.dir, 'exit'), 'utf8')).toBe(`${code}\n`);
      expect(readFileSync(join(r.dir, 'stderr'), 'utf8')).toBe(message);
    }
    sp.close();
  });

  it('writes the exit file of a command that leaves the wrapper (exec) or replaces its trap', async () => {
    const sp = new Spawner();
    for (const command of ['exec sh -c "exit 4"', 'trap "echo bye" EXIT; exit 4']) {
      const r = req(command);
      expect(await run(sp, r).ended).toEqual({ kind: 'exit', code: 4 });
      expect(readFileSync(join(r.dir, 'exit'), 'utf8')).toBe('4\n');
    }
    sp.close();
  });

  it('starts nothing in a folder claimed for the same life; a folder of another life (or none) is stale, emptied and taken', async () => {
    const sp = new Spawner();
    const mark = tmp.join('claim-ran');
    const first = req(`echo once >> ${mark}; echo out1`, { life: 'life-1' });
    expect(await run(sp, first).ended).toEqual({ kind: 'exit', code: 0 });
    expect(readlinkSync(join(first.dir, 'life'))).toBe('life-1');
    // A second start of that life (a restarted runner, two spawners): claimed, not run.
    expect(await run(sp, { ...first, command: `echo twice >> ${mark}` }).ended).toEqual({
      kind: 'claimed',
    });
    // Two starts of one life in one turn (one request line each, one write): the first claims it.
    const both = req(`echo a >> ${mark}-both`, { life: 'life-b' });
    const [a, b] = [run(sp, both), run(sp, { ...both, command: `echo b >> ${mark}-both` })];
    expect([await a.ended, await b.ended]).toEqual([
      { kind: 'exit', code: 0 },
      { kind: 'claimed' },
    ]);
    expect(readFileSync(mark, 'utf8')).toBe('once\n');
    expect(readFileSync(`${mark}-both`, 'utf8')).toBe('a\n');
    expect(readFileSync(join(first.dir, 'exit'), 'utf8')).toBe('0\n');
    // The task id came back (its record expired, the folder stayed): another life runs, in the
    // folder emptied of the old run's files, and claims it for itself.
    const again = {
      ...first,
      life: 'life-2',
      command: `test ! -e exit && echo again >> ${mark}; exit 3`,
    };
    expect(await run(sp, again).ended).toEqual({ kind: 'exit', code: 3 });
    expect(readlinkSync(join(first.dir, 'life'))).toBe('life-2');
    expect(readFileSync(join(first.dir, 'stdout'), 'utf8')).toBe('');
    // A late start of the life it replaced (a dead runner's spawner reading its last request):
    // that life held the folder once, so nothing starts, and life-2 keeps its claim and files.
    expect(await run(sp, { ...first, command: `echo late >> ${mark}` }).ended).toEqual({
      kind: 'claimed',
    });
    expect(readlinkSync(join(first.dir, 'life'))).toBe('life-2');
    expect(readlinkSync(join(first.dir, `life.${Buffer.from('life-1').toString('hex')}`))).toBe(
      'life-1',
    );
    expect(readFileSync(join(first.dir, 'exit'), 'utf8')).toBe('3\n');
    // A folder made before lives (no claim in it), and a start without a life: stale too.
    const old = req(`echo new >> ${mark}`, { life: 'life-3' });
    mkdirSync(old.dir);
    writeFileSync(join(old.dir, 'exit'), '9\n');
    expect(await run(sp, old).ended).toEqual({ kind: 'exit', code: 0 });
    expect(await run(sp, { ...old, life: undefined }).ended).toEqual({ kind: 'exit', code: 0 });
    expect(readFileSync(mark, 'utf8')).toBe('once\nagain\nnew\nnew\n');
    expect(readdirSync(old.dir)).not.toContain('life');
    sp.close();
  });

  it('runs a task again in its folder without the old pid and exit files, and makes missing parents', async () => {
    const sp = new Spawner();
    const first = req('exit 7');
    expect(await run(sp, first).ended).toEqual({ kind: 'exit', code: 7 });
    // The restart of a task recorded running (reuse) sees its own pid file and no exit file
    // yet: the first run's are gone.
    const again = {
      ...first,
      cwd: first.dir,
      reuse: true,
      command: 'test ! -e exit && test "$(cat pid)" = $$',
    };
    expect(await run(sp, again).ended).toEqual({ kind: 'exit', code: 0 });
    expect(readFileSync(join(first.dir, 'exit'), 'utf8')).toBe('0\n');
    const deep = req('exit 0', { dir: tmp.join('missing', 'parents', 'task') });
    expect(await run(sp, deep).ended).toEqual({ kind: 'exit', code: 0 });
    expect(readFileSync(join(deep.dir, 'exit'), 'utf8')).toBe('0\n');
    sp.close();
  });

  it('sends the requests of one event-loop turn in one write, and runs each of them', async () => {
    const sp = new Spawner();
    sp.warm();
    // The writes to the co-process's stdin (a net.Socket) that carry run requests. Counting the
    // thread's write syscalls instead also counted whatever else the test worker wrote in that
    // turn (fresh-clone CI: 3 writes, with at most 2 allowed).
    const requestWrites: string[] = [];
    const write = Socket.prototype.write;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString();
      if (/^(re)?run /m.test(text)) requestWrites.push(text);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof write;
    try {
      const runs = Array.from({ length: 20 }, (_, i) => run(sp, req(`exit ${i}`)));
      await new Promise((r) => setImmediate(r));
      const ends = await Promise.all(runs.map((t) => t.ended));
      expect(ends).toEqual(runs.map((_, i) => ({ kind: 'exit', code: i })));
    } finally {
      Socket.prototype.write = write;
    }
    // One write carried the 20 requests.
    expect(requestWrites).toHaveLength(1);
    expect(requestWrites[0]?.match(/^run /gm)).toHaveLength(20);
    sp.close();
  });

  it("holds a started task's pid for its exit, not sending it with another task's exit", async () => {
    const sp = new Spawner({ pidHoldMs: 10_000 });
    const long = run(sp, req('sleep 0.5'));
    const short = run(sp, req('true'));
    expect(await short.ended).toMatchObject({ kind: 'exit', code: 0 });
    // Its pid line waits for its exit (the hold is longer): none came with the short one's.
    expect(long.pid()).toBeUndefined();
    expect(await long.ended).toMatchObject({ kind: 'exit', code: 0 });
    expect(long.pid()).toBeGreaterThan(0);
    sp.close();
  });

  it('killed -9, leaves its tasks running (they still write their exit files) and is replaced', async () => {
    const sp = new Spawner();
    const gate = tmp.join('gate');
    const r = req(`while [ ! -e ${gate} ]; do sleep 0.05; done; exit 5`);
    const t = run(sp, r);
    const taskPid = await t.started;
    const first = defined(sp.pid, 'sp.pid');
    process.kill(first, 'SIGKILL');
    expect(await t.ended).toEqual({ kind: 'lost' });
    expect(isAlive(taskPid)).toBe(true);
    writeFileSync(gate, '');
    await until(() => existsSync(join(r.dir, 'exit')), 'the exit file');
    expect(readFileSync(join(r.dir, 'exit'), 'utf8')).toBe('5\n');
    // The next task gets a new spawner.
    expect(await run(sp, req('exit 0')).ended).toEqual({ kind: 'exit', code: 0 });
    expect(sp.started).toBe(2);
    expect(sp.pid).not.toBe(first);
    sp.close();
  });

  it('after close, outlives the runner until its tasks end, writing their exit files', async () => {
    const sp = new Spawner();
    const gate = tmp.join('gate-close');
    // An exec the wrapper cannot see coming ("ex""ec"): only the spawner can write this exit file.
    const r = req(`eval "ex""ec sh -c 'while [ ! -e ${gate} ]; do sleep 0.05; done; exit 6'"`);
    await run(sp, r).started;
    const pid = defined(sp.pid, 'sp.pid');
    sp.close();
    await sleep(200);
    expect(isAlive(pid)).toBe(true);
    writeFileSync(gate, '');
    await until(() => existsSync(join(r.dir, 'exit')), 'the exit file');
    expect(readFileSync(join(r.dir, 'exit'), 'utf8')).toBe('6\n');
    await until(() => !isAlive(pid), 'the spawner to leave');
  });
});
