import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uiDir } from '@computepods/majordomo-ui';
import { buildUi } from '@computepods/majordomo-ui/build';
import { buckets, TaskRecord } from '@computepods/protocol';
import { Slurm, startTogether, TempDir } from '@computepods/testkit';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOB_USER, openToJobUser, slurmSudoQueue } from '../src/slurm-queues.js';
import { Stack } from '../src/stack.js';
import { launchChromium } from './browser.js';

const webSources = fileURLToPath(new URL('../../packages/majordomo-ui/src/web/', import.meta.url));

/** True when `file` is missing or any file under `dir` changed after it. */
function builtBefore(file: string, dir: string): boolean {
  if (!existsSync(file)) return true;
  const built = statSync(file).mtimeMs;
  return (readdirSync(dir, { recursive: true }) as string[]).some(
    (f) => statSync(join(dir, f)).mtimeMs > built,
  );
}

const node = (path: string) => `.react-flow__node [data-path=${JSON.stringify(path)}]`;

/**
 * MajorDomoUI in Debian's chromium following the log of a task that runs as a job on a real
 * single-node SLURM (slurm_sudo: submitted with `sudo -u cpuser sbatch`), while the job writes
 * it. MajorDomo's CP_LOG_ROOTS is an empty folder: whatever the page shows came over NATS from
 * the runner, which reads the job's files as the job user.
 */
describe('MajorDomoUI follows a slurm_sudo task’s log live', { timeout: 300_000 }, () => {
  let stack: Stack;
  let slurm: Slurm;
  let url: string;
  let browser: BrowserContext & AsyncDisposable;
  let page: Page;
  // Where the job user may write: its job folders and the gates its command waits at.
  const shared = new TempDir('cp-ui-slurm-');
  const gates = shared.join('gates');
  const requests: string[] = [];
  const pageErrors: string[] = [];

  const taskRecords = () => stack.bus.kv(buckets.tasks(stack.project), TaskRecord);

  beforeAll(async () => {
    // The page is what `pnpm build` (scripts/setup) made; built again only when missing or older
    // than its sources, since a build removes the assets another test's MajorDomo may be serving.
    if (builtBefore(join(uiDir, 'assets', 'app.js'), webSources)) await buildUi();
    await openToJobUser(shared, ['gates', 'jobs']);
    [stack, slurm] = await startTogether([Stack.start('uislurm'), Slurm.start()]);
    const runnerEnv = await slurmSudoQueue(stack, slurm, {
      id: 'hpc',
      jobsDir: shared.join('jobs'),
      tasksDir: shared.join('tasks'),
    });
    const chef = stack.dir.join('ui-slurm-chef.yaml');
    writeFileSync(
      chef,
      [
        'rules:',
        // On SLURM as cpuser: a line on stderr, a wait at its gate, another line, a wait at a
        // second gate (so the test sees that line while the job still runs), then the output.
        '  - id: talk',
        '    inputs: ["talk/{stem}.in"]',
        '    outputs: ["out/{stem}.talk"]',
        '    resource: hpc',
        '    profile: hpc-profile',
        `    command: echo first line >&2; while [ ! -e ${gates}/{stem}.go ]; do sleep 0.1; done; echo second line >&2; while [ ! -e ${gates}/{stem}.end ]; do sleep 0.1; done; cat {in0} > {out0}`,
        '',
      ].join('\n'),
    );
    const noLogs = stack.dir.join('not-the-runners-folders');
    mkdirSync(noLogs);
    await Promise.all([
      stack.start('majordomo', { CP_LOG_ROOTS: noLogs }),
      stack.start('chef', { CP_CHEF: 'ui-slurm', CP_CHEF_DEFINITION: chef }),
      stack.start('runner', runnerEnv, 'runner-hpc'),
      stack.start('fswatcher'),
    ]);
    url = await stack.httpUrl();
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => pageErrors.push(e.message));
  }, 240_000);

  afterAll(async () => {
    await browser?.[Symbol.asyncDispose]();
    await stack?.[Symbol.asyncDispose]();
    await slurm?.[Symbol.asyncDispose]();
    shared[Symbol.dispose]();
  });

  it('logs in with the API token', async () => {
    const res = await page.goto(url);
    expect(res?.status()).toBe(200);
    await page.locator('#token').fill(stack.apiToken);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('[data-stream-state="live"]').waitFor();
  });

  it('shows the log growing while the SLURM job writes it, then the task finished with its job id', async () => {
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/s.talk')}`);
    const panel = page.locator('[data-panel="out/s.talk"]');
    await panel.locator('[data-no-record]').waitFor();
    stack.write('talk/s.in', 'from slurm\n');
    await page.locator(`${node('out/s.talk')}[data-state="building"]`).waitFor({ timeout: 60_000 });
    await panel.locator('[data-no-record]').waitFor({ state: 'detached' });
    const link = panel.locator('[data-log]').first();
    await link.waitFor();
    const taskId = (await link.getAttribute('data-log')) ?? '';
    expect(taskId).not.toBe('');
    await link.click();
    await page.locator('[data-task-state="running"]').waitFor({ timeout: 120_000 });
    const stderr = page.locator('[data-stream="stderr"] pre');
    await expect.poll(() => stderr.textContent(), { timeout: 120_000 }).toContain('first line');
    expect(await stderr.textContent()).not.toContain('second line');

    // The task is a job SLURM runs as the profile's user, still waiting at its gate.
    const kv = await taskRecords();
    const running = (await kv.get(taskId))?.value;
    expect(running).toMatchObject({ state: 'running', task: { resource: 'hpc' } });
    const jobId = running?.jobId ?? '';
    expect(jobId).toMatch(/^\d+$/);
    const job = await slurm.showJob(jobId);
    expect(job.JobState).toBe('RUNNING');
    expect(job.UserId).toMatch(new RegExp(`^${JOB_USER}\\(`));

    await page.evaluate('window.stillThisPage = true');
    writeFileSync(join(gates, 's.go'), '');
    await expect.poll(() => stderr.textContent(), { timeout: 120_000 }).toContain('second line');
    expect(await stderr.textContent()).toBe('first line\nsecond line\n');
    // Still running: the line came over the follow, not from a read once the task had ended.
    expect(await page.locator('[data-task-state]').getAttribute('data-task-state')).toBe('running');
    expect((await kv.get(taskId))?.value.state).toBe('running');
    writeFileSync(join(gates, 's.end'), '');
    await page.locator('[data-task-state="finished"]').waitFor({ timeout: 120_000 });
    expect(await page.evaluate('window.stillThisPage')).toBe(true);
    // Followed over the log stream (server-sent events read with fetch), not read again and again.
    const follow = new RegExp(
      `/api/logs/${encodeURIComponent(taskId).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\?stream=stderr&follow=1`,
    );
    expect(requests.filter((u) => follow.test(u)).length).toBeGreaterThan(0);

    // The header names the SLURM job the task record holds.
    const done = (await kv.get(taskId))?.value;
    expect(done).toMatchObject({ state: 'finished', exitCode: 0, jobId });
    await expect
      .poll(() => page.locator('.logs-view > p.muted').textContent())
      .toContain(`SLURM job ${jobId}`);
    // The builds timeline: the task on its runner's lane, with its resource and SLURM job id.
    await page.goto(`${url}/#/builds`);
    const bar = page.locator(`.bar-row[data-task=${JSON.stringify(taskId)}]`);
    await expect.poll(() => bar.locator('.bar-text').textContent()).toContain(`SLURM job ${jobId}`);
    expect(await bar.locator('.bar-text').textContent()).toMatch(
      /talk:s .*finished.* · hpc · SLURM job \d+ · exit 0/,
    );
    await stack.until('out/s.talk', undefined, 60_000);
    expect(pageErrors).toEqual([]);
    expect(requests.filter((u) => u.includes(stack.apiToken))).toEqual([]);
  });
});
