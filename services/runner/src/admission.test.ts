import { mkdirSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { runnerConfig, workspaceRootsOf } from './config.js';
import { TaskRefusedError } from './errors.js';
import { refusalOf } from './task-admission.js';
import { checkProfile, servedProfile } from './task-profile.js';
import { checkCwd } from './workspace-roots.js';

const tmp = new TempDir('cp-runner-admission-');
afterAll(() => tmp[Symbol.dispose]());

describe('workspace roots from the environment', () => {
  it('takes CP_WORKSPACE_ROOTS, else CP_WORKSPACE, else none (every task refused)', () => {
    expect(workspaceRootsOf({ CP_WORKSPACE_ROOTS: '/srv/a:/srv/b/', CP_WORKSPACE: '/w' })).toEqual([
      '/srv/a',
      '/srv/b',
    ]);
    expect(workspaceRootsOf({ CP_WORKSPACE: '/w/./x' })).toEqual(['/w/x']);
    expect(workspaceRootsOf({})).toEqual([]);
    expect(runnerConfig({}).workspaceRoots).toEqual([]);
  });

  it('refuses a relative or empty entry, saying how to write it', () => {
    for (const bad of ['srv/a', '/a::/b', '/a:'])
      expect(() => workspaceRootsOf({ CP_WORKSPACE_ROOTS: bad })).toThrow(
        /CP_WORKSPACE_ROOTS must be absolute paths separated by ":".*\/path\/one:\/path\/two/,
      );
  });
});

describe('cwd confinement', () => {
  const ws = tmp.join('ws');
  const real = tmp.join('real-root');
  mkdirSync(join(ws, 'sub'), { recursive: true });
  mkdirSync(join(real, 'in'), { recursive: true });
  // the root itself through a symlink: resolved too, so its own folders are inside
  symlinkSync(real, tmp.join('root-link'));

  it('accepts the roots and what is below them, a symlinked root resolved as well', async () => {
    expect(await checkCwd(ws, [ws])).toBeUndefined();
    expect(await checkCwd(join(ws, 'sub'), [ws])).toBeUndefined();
    expect(await checkCwd(join(real, 'in'), [tmp.join('root-link')])).toBeUndefined();
    expect(await checkCwd(tmp.join('root-link', 'in'), [real])).toBeUndefined();
  });

  it('answers checks asked at once each for its own cwd, and resolves a re-pointed root anew', async () => {
    const a = tmp.join('point-a');
    const b = tmp.join('point-b');
    mkdirSync(join(a, 'in'), { recursive: true });
    mkdirSync(join(b, 'in'), { recursive: true });
    const link = tmp.join('point-link');
    symlinkSync(a, link);
    // A symlink inside the root that leads out of it is outside, whoever else asks at once.
    symlinkSync(b, join(a, 'escape'));
    const cwds = Array.from({ length: 20 }, (_, i) => join(a, i % 2 ? 'in' : 'escape'));
    const answers = await Promise.all(cwds.map((cwd) => checkCwd(cwd, [link])));
    expect(answers.map((e) => e === undefined)).toEqual(cwds.map((_, i) => i % 2 === 1));
    expect(answers[0]?.message).toMatch(/is outside the runner's.*resolves to/);
    // The root is resolved at every check, never kept: pointed elsewhere, it confines there.
    unlinkSync(link);
    symlinkSync(b, link);
    expect((await checkCwd(join(a, 'in'), [link]))?.message).toMatch(/is outside the runner's/);
    expect(await checkCwd(join(b, 'in'), [link])).toBeUndefined();
  });

  it('resolves a cwd after the check is asked: a folder swapped for a symlink out is refused', async () => {
    const root = tmp.join('swap-root');
    const out = tmp.join('swap-out');
    const cwd = join(root, 'w');
    mkdirSync(cwd, { recursive: true });
    mkdirSync(out);
    expect(await checkCwd(cwd, [root])).toBeUndefined();
    // Swapped between two checks.
    rmSync(cwd, { recursive: true });
    symlinkSync(out, cwd);
    expect((await checkCwd(cwd, [root]))?.message).toMatch(/is outside the runner's.*resolves to/);
    // Swapped back while a check of it is on its way: one asked after the swap is never given a
    // resolution made before it (the first may see either).
    unlinkSync(cwd);
    mkdirSync(cwd);
    const first = checkCwd(cwd, [root]);
    rmSync(cwd, { recursive: true });
    symlinkSync(out, cwd);
    const second = checkCwd(cwd, [root]);
    await first;
    expect((await second)?.message).toMatch(/is outside the runner's.*resolves to/);
  });

  it('refuses everything, naming the fix, when there are no roots', async () => {
    const err = await checkCwd(ws, []);
    expect(err).toBeInstanceOf(TaskRefusedError);
    expect(err).toMatchObject({ code: 'CP_TASK_REFUSED', field: 'cwd', retryable: false });
    expect(err?.message).toMatch(/no workspace roots.*set CP_WORKSPACE_ROOTS/);
  });

  it('refuses a sibling that merely starts with the root name, relative paths and control characters', async () => {
    mkdirSync(`${ws}-evil`);
    expect((await checkCwd(`${ws}-evil`, [ws]))?.message).toMatch(/is outside the runner's/);
    expect((await checkCwd('ws/sub', [ws]))?.message).toMatch(/is not an absolute path/);
    expect((await checkCwd(`${ws}/a\nb`, [ws]))?.message).toMatch(/control character/);
  });

  it('checks a cluster-side cwd as text, refusing ".."', async () => {
    expect(await checkCwd('/cluster/ws/job', ['/cluster/ws'], { remote: true })).toBeUndefined();
    expect(
      (await checkCwd('/cluster/ws/../x', ['/cluster/ws'], { remote: true }))?.message,
    ).toMatch(/climbs with '\.\.'/);
    expect((await checkCwd('/home/x', ['/cluster/ws'], { remote: true }))?.message).toMatch(
      /^cwd "\/home\/x" is outside the runner's workspace roots \(CP_WORKSPACE_ROOTS=\/cluster\/ws\)/,
    );
  });
});

describe('profile check', () => {
  it('lets a task without profile, or with the runner’s, through; names both otherwise', () => {
    expect(checkProfile({}, 'lab', 'hpc')).toBeUndefined();
    expect(checkProfile({ profile: 'lab' }, 'lab', 'hpc')).toBeUndefined();
    expect(checkProfile({ profile: 'root' }, 'lab', 'hpc')?.message).toMatch(
      /^profile "root" is not this runner's profile "lab" \(resource "hpc"\)/,
    );
    expect(checkProfile({ profile: 'root' }, undefined, 'local')).toMatchObject({
      field: 'profile',
      message: expect.stringMatching(/serves no profile/),
    });
  });

  it("takes the served profile from the pilot's runner, the queue, CP_PROFILE or the profile file, in that order", () => {
    const profile = { resource_type: 'local' as const, name: 'Lab Account' };
    const queue = {
      queue: { name: 'hpc', resource: 'hpc', profile: 'granted', concurrency: 8 },
      resource: {} as never,
    };
    expect(servedProfile({ pilotProfile: 'p', profile: 'c' }, queue, profile)).toBe('p');
    expect(servedProfile({ profile: undefined }, queue, profile)).toBe('granted');
    expect(servedProfile({ profile: 'c' }, undefined, profile)).toBe('c');
    expect(servedProfile({ profile: undefined }, undefined, profile)).toBe('lab-account');
    expect(servedProfile({ profile: undefined }, undefined, undefined)).toBeUndefined();
  });
});

describe('GPU tasks where none is given', () => {
  const policy = {
    resource: 'hpc',
    profile: undefined,
    workspaceRoots: [tmp.path],
    remoteCwd: () => false,
  };
  const task = (gpu: boolean) => ({
    taskId: 'g',
    resource: 'hpc',
    command: 'true',
    cwd: tmp.path,
    env: {},
    gpu,
  });

  it('refuses a task asking for a GPU with the reason given (a pilot worker), naming the field', async () => {
    const err = await refusalOf(task(true), { ...policy, noGpu: 'no GPU in pilots' });
    expect(err).toBeInstanceOf(TaskRefusedError);
    expect(err).toMatchObject({
      code: 'CP_TASK_REFUSED',
      field: 'gpu',
      message: 'no GPU in pilots',
    });
    expect(await refusalOf(task(false), { ...policy, noGpu: 'no GPU in pilots' })).toBeUndefined();
    expect(await refusalOf(task(true), policy)).toBeUndefined();
  });
});
