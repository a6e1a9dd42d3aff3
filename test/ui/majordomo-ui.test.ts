import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildUi } from '@computepods/majordomo-ui/build';
import { buckets, ResolvedQueue } from '@computepods/protocol';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Stack } from '../src/stack.js';
import { launchChromium } from './browser.js';

const HOSTILE = '<img src=x onerror=alert(1)>';
/** Where the switcher's other project lives (nothing listens there: the test answers for it). */
const THESIS = 'http://127.0.0.1:9/thesis/';

/** The page's state of an artefact's node in the graph view. */
const node = (path: string) => `.react-flow__node [data-path=${JSON.stringify(path)}]`;

/**
 * MajorDomoUI in Debian's chromium against a real stack (nats-server, MajorDomo, chef, runner,
 * fswatcher as their own processes): login, the live graph with its cycle, a failing rule and
 * its log, controls, hostile names, the CSP and where the token travels. Screenshots of every
 * view go to CP_UI_SHOTS or a temp dir (its path is printed).
 */
describe('MajorDomoUI in a real browser', () => {
  let stack: Stack;
  let url: string;
  let browser: BrowserContext & AsyncDisposable;
  let page: Page;
  let shots: string;
  let gates: string;
  const dialogs: string[] = [];
  const consoleErrors: string[] = [];
  /** Every answer of 400 or more the page got, to name the request behind a console error. */
  const refusals: string[] = [];
  const requests: string[] = [];

  const shot = async (name: string) => {
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
  };
  const waitNode = (path: string, state: string, timeout = 60_000) =>
    page.locator(`${node(path)}[data-state="${state}"]`).waitFor({ timeout });

  beforeAll(async () => {
    await buildUi();
    shots = process.env.CP_UI_SHOTS ?? mkdtempSync(join(tmpdir(), 'cp-ui-shots-'));
    mkdirSync(shots, { recursive: true });
    console.log(`MajorDomoUI screenshots: ${shots}`);
    stack = await Stack.start('uitest');
    gates = stack.dir.join('gates');
    mkdirSync(gates);
    const chef = stack.dir.join('ui-chef.yaml');
    writeFileSync(
      chef,
      [
        'rules:',
        '  - id: upper',
        '    inputs: ["src/{stem}.txt"]',
        '    outputs: ["out/{stem}.upper"]',
        '    command: tr a-z A-Z < {in0} > {out0}',
        // Held until the test opens its gate: "building" lasts as long as the test needs.
        '  - id: slow',
        '    inputs: ["slow/{stem}.in"]',
        '    outputs: ["out/{stem}.slow"]',
        `    command: while [ ! -e ${gates}/{stem}.go ]; do sleep 0.05; done; cat {in0} > {out0}`,
        // Writes a line, waits at its gate, writes another: a log that grows while it runs.
        '  - id: talk',
        '    inputs: ["talk/{stem}.in"]',
        '    outputs: ["out/{stem}.talk"]',
        `    command: echo first line >&2; while [ ! -e ${gates}/{stem}.go ]; do sleep 0.05; done; echo second line >&2; cat {in0} > {out0}`,
        // A long log: 50,000 lines on stderr.
        '  - id: many',
        '    inputs: ["many/{stem}.in"]',
        '    outputs: ["out/{stem}.many"]',
        "    command: seq 1 50000 | sed 's/^/line /' >&2; cat {in0} > {out0}",
        '  - id: fail',
        '    inputs: ["src/{stem}.bad"]',
        '    outputs: ["out/{stem}.never"]',
        '    command: |',
        '      echo compiling >&2',
        `      printf 'error: <b>bad</b> \\033[31mred\\033[0m ${HOSTILE} <script>alert(2)</script>\\n' >&2`,
        '      exit 3',
        // The demo's cycle (deploy/demo/chef.yaml): a page whose contents are read back.
        '  - id: render',
        '    inputs: ["src/{stem}.md"]',
        '    optionalInputs: ["out/{stem}.toc"]',
        '    outputs: ["out/{stem}.html"]',
        '    command: |',
        '      awk -v toc=out/{stem}.toc \'BEGIN { while ((getline l < toc) > 0) print "toc " l } { print NR ": " $0 }\' {in0} > {out0}',
        '  - id: toc',
        '    inputs: ["out/{stem}.html"]',
        '    outputs: ["out/{stem}.toc"]',
        '    command: grep -c . {in0} > {out0}',
        '',
      ].join('\n'),
    );
    // The runner keeps task folders in the local queue's jobs_local_dir: MajorDomo reads logs there.
    const config = await stack.bus.kv(buckets.config(stack.project), z.unknown());
    const bound = ResolvedQueue.safeParse((await config.get('queue.local'))?.value);
    const jobs = bound.success ? (bound.data.resource as { jobs_local_dir?: string }) : {};
    const logRoot =
      jobs.jobs_local_dir ?? join(stack.env('runner').CP_STATE_DIR!, 'runner', 'tasks');
    stack.write('src/hello.txt', 'hello\n');
    stack.write('src/guide.md', '# Guide\nIntro.\n');
    await Promise.all([
      stack.start('majordomo', {
        CP_LOG_ROOTS: logRoot,
        // Another project's page, for the switcher (served below by a route of the test's).
        CP_UI_PROJECTS: `thesis=${THESIS}`,
      }),
      stack.start('chef', { CP_CHEF: 'ui', CP_CHEF_DEFINITION: chef }),
      stack.start('runner', { CP_PARALLEL: '2' }),
      stack.start('fswatcher'),
    ]);
    url = await stack.httpUrl();
    await stack.until('out/hello.upper');
    await stack.until('out/guide.toc');
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    page.on('response', (r) => {
      if (r.status() >= 400) refusals.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.[Symbol.asyncDispose]();
    await stack?.[Symbol.asyncDispose]();
  });

  it('serves the page with a strict CSP, and refuses a missing or wrong token with a clear message', async () => {
    const res = await page.goto(url);
    expect(res?.status()).toBe(200);
    const csp = res?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');

    await page.getByRole('button', { name: 'Log in' }).click();
    await expect
      .poll(() => page.locator('[data-login-error]').textContent())
      .toContain('Enter the API token');
    await page.locator('#token').fill('not-the-token-at-all');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect
      .poll(() => page.locator('[data-login-error]').textContent())
      .toMatch(/That token was refused: send "Authorization: Bearer <token>"/);
    await shot('login-refused');
  });

  it('logs in and shows the graph live: the cycle as a group, its nodes coloured by state', async () => {
    await page.locator('#token').fill(stack.apiToken);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('[data-stream-state="live"]').waitFor();
    await waitNode('src/hello.txt', 'source');
    await waitNode('out/hello.upper', 'up_to_date');
    await waitNode('out/guide.html', 'up_to_date');
    await waitNode('out/guide.toc', 'up_to_date');
    // The cycle's group holds its tasks and their outputs.
    const cycle = page.locator('.react-flow__node-cycle');
    await expect.poll(() => cycle.count()).toBe(1);
    const c = (await cycle.boundingBox())!;
    for (const path of ['out/guide.html', 'out/guide.toc']) {
      const r = (await page.locator(`.react-flow__node[data-id="a:${path}"]`).boundingBox())!;
      expect(r.x >= c.x && r.y >= c.y).toBe(true);
      expect(r.x + r.width <= c.x + c.width && r.y + r.height <= c.y + c.height).toBe(true);
    }
    // Gone if the page reloads: every later change must arrive without one.
    await page.evaluate('window.notReloaded = true');
    await shot('graph');
  });

  it('follows an edit without a reload: building, then up to date; a cycle shows its pass count', async () => {
    stack.write('slow/a.in', 'first\n');
    await waitNode('out/a.slow', 'building');
    await shot('graph-building');
    writeFileSync(join(gates, 'a.go'), '');
    await waitNode('out/a.slow', 'up_to_date');

    // An edit of the cycle's source: its passes counted on the group, against the limit.
    stack.write('src/guide.md', '# Guide\nIntro.\n## A new section\n');
    // (Polled from here: a predicate evaluated in the page would be refused by its CSP.)
    await expect
      .poll(async () => Number(await page.locator('[data-cycle]').getAttribute('data-pass')), {
        timeout: 60_000,
      })
      .toBeGreaterThanOrEqual(2);
    expect(await page.locator('[data-cycle]').getAttribute('data-limit')).toBe('5');
    await waitNode('out/guide.toc', 'up_to_date');
    await expect.poll(() => stack.until('out/guide.toc').then((a) => a.status)).toBe('up_to_date');
    expect(await page.evaluate('window.notReloaded')).toBe(true);
    // The timeline draws the cycle's passes as such: a band for each, the second after the
    // first, in rounds (the first build of the page, then this edit's): the last round's.
    await page.getByRole('link', { name: 'Builds' }).click();
    const band = (pass: number) => page.locator(`[data-cycle-pass$=":${pass}"]`).last();
    await band(2).waitFor();
    expect(await page.locator('[data-cycle-pass$=":1"]').count()).toBe(2);
    const [one, two] = [
      (await band(1).locator('.pass-band').boundingBox())!,
      (await band(2).locator('.pass-band').boundingBox())!,
    ];
    expect(two.x).toBeGreaterThanOrEqual(one.x);
    expect(await band(1).textContent()).toMatch(/pass 1 of at most 5: \d+ steps?/);
    await shot('builds-passes');
    expect(await page.evaluate('window.notReloaded')).toBe(true);
    await page.getByRole('link', { name: 'Graph' }).click();
  });

  it("turns a failing rule's node failed, and its log shows the error line as text", async () => {
    stack.write('src/oops.bad', 'x\n');
    await waitNode('out/oops.never', 'failed');
    await page.locator(node('out/oops.never')).click();
    const panel = page.locator('[data-panel="out/oops.never"]');
    await panel.waitFor();
    await expect.poll(() => panel.textContent()).toContain('exit');
    await shot('graph-failed-panel');
    await panel.locator('[data-log]').first().click();
    const stderr = page.locator('[data-stream="stderr"] pre');
    await expect.poll(() => stderr.textContent()).toContain('error: <b>bad</b> red');
    const text = (await stderr.textContent()) ?? '';
    expect(text).toContain(`${HOSTILE} <script>alert(2)</script>`);
    expect(text).not.toContain('\x1b');
    // The escape became a colour, the markup stayed text.
    expect(await stderr.locator('span.fg-1').textContent()).toBe('red');
    expect(await stderr.locator('b, img, script').count()).toBe(0);
    await shot('logs');
  });

  it("follows a running task's log live, as the command writes it", async () => {
    // A link to an artefact not made yet opens a panel that waits for it (asking MajorDomo
    // would be a 404, a console error), then fills in when it is recorded.
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/t.talk')}`);
    const panel = page.locator('[data-panel="out/t.talk"]');
    await panel.locator('[data-no-record]').waitFor();
    stack.write('talk/t.in', 'hi\n');
    await waitNode('out/t.talk', 'building');
    await panel.locator('[data-no-record]').waitFor({ state: 'detached' });
    await panel.locator('[data-log]').first().click();
    await page.locator('[data-task-state="running"]').waitFor();
    const stderr = page.locator('[data-stream="stderr"] pre');
    await expect.poll(() => stderr.textContent(), { timeout: 30_000 }).toContain('first line');
    expect(await stderr.textContent()).not.toContain('second line');
    await page.evaluate('window.stillThisPage = true');
    writeFileSync(join(gates, 't.go'), '');
    await expect.poll(() => stderr.textContent(), { timeout: 30_000 }).toContain('second line');
    await page.locator('[data-task-state="finished"]').waitFor();
    expect(await page.evaluate('window.stillThisPage')).toBe(true);
    // Followed over the log stream (server-sent events), not read again and again.
    expect(requests.some((u) => /\/api\/logs\/[^?]+\?stream=stderr&follow=1/.test(u))).toBe(true);
  });

  it('draws only the lines of a long log in view, from its end, and scrolls through all of it', async () => {
    stack.write('many/m.in', 'x\n');
    await stack.until('out/m.many');
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/m.many')}`);
    await page.locator('[data-panel="out/m.many"] [data-log]').first().click();
    const stderr = page.locator('[data-stream="stderr"] pre');
    await page.locator('[data-stream="stderr"] pre[data-lines="50000"]').waitFor();
    // Opened at its end, as a followed log stays; only a window of rows is in the page.
    await expect.poll(() => stderr.textContent()).toContain('line 50000\n');
    const drawn = await stderr.locator('.ansi-row').count();
    expect(drawn).toBeGreaterThan(0);
    expect(drawn).toBeLessThan(200);
    expect(await stderr.textContent()).not.toContain('line 1\n');
    await stderr.evaluate((el) => {
      el.scrollTop = 0;
    });
    await expect.poll(() => stderr.textContent()).toContain('line 1\n');
    await stderr.evaluate((el) => {
      el.scrollTop = el.scrollHeight / 2;
    });
    await expect.poll(() => stderr.textContent()).toMatch(/line 2\d{4}\n/);
    await shot('log-long');
  });

  it('rebuilds an artefact from the page, with the result shown', async () => {
    const before = await stack.artefact('out/hello.upper');
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/hello.upper')}`);
    const panel = page.locator('[data-panel="out/hello.upper"]');
    await panel.waitFor();
    await panel.getByRole('button', { name: 'Rebuild (force)' }).click();
    await expect.poll(() => panel.locator('[role="status"]').textContent()).toMatch(/^Rebuild: /);
    expect(await panel.locator('[role="status"]').textContent()).not.toContain('refused');
    await stack.until(
      'out/hello.upper',
      (a) => a.status === 'up_to_date' && a.buildId !== before?.buildId,
    );
    await waitNode('out/hello.upper', 'up_to_date');
  });

  it('cancels a build, and pauses, resumes and kills tasks from the page', async () => {
    // Two held builds fill the runner's two slots; the third waits (submitted): pausable.
    for (const s of ['p1', 'p2', 'p3']) stack.write(`slow/${s}.in`, `${s}\n`);
    await page.goto(`${url}/#/builds`);
    await expect.poll(() => page.locator('.bar-row .pill.t-running').count()).toBe(2);
    await expect.poll(() => page.locator('.bar-row .pill.t-submitted').count()).toBe(1);
    await shot('builds');
    const waiting = await page.locator('.bar-row:has(.pill.t-submitted)').getAttribute('data-task');
    expect(waiting).toBeTruthy();
    await page.goto(`${url}/#/logs/${encodeURIComponent(waiting!)}`);
    await page.getByRole('button', { name: 'pause' }).click();
    await page.locator('[data-task-state="paused"]').waitFor();
    await expect.poll(() => page.locator('[role="status"]').textContent()).toMatch(/^pause: /);
    await page.getByRole('button', { name: 'resume' }).click();
    await page.locator('[data-task-state="submitted"]').waitFor();
    await page.getByRole('button', { name: 'kill' }).click();
    await page.locator('[data-task-state="killed"]').waitFor();

    // A running build cancelled from its artefact's panel: the artefact goes back to stale.
    // (The runner took two of the three in an order of its own: one of those still held.)
    let held = '';
    for (const p of ['p1', 'p2', 'p3'])
      if ((await stack.artefact(`out/${p}.slow`))?.status === 'queued') held = `out/${p}.slow`;
    expect(held).not.toBe('');
    await page.goto(`${url}/#/artefacts?sel=${encodeURIComponent(held)}`);
    const panel = page.locator(`[data-panel="${held}"]`);
    await panel.getByRole('button', { name: 'Cancel build' }).click();
    await expect.poll(() => panel.locator('[role="status"]').textContent()).toMatch(/^Cancel: /);
    await stack.until(held, (a) => a.status === 'stale');
    await expect
      .poll(() => panel.locator('[data-state]').first().getAttribute('data-state'))
      .toBe('stale');
    for (const s of ['p1', 'p2', 'p3']) writeFileSync(join(gates, `${s}.go`), '');
  });

  it('renders hostile file names as text in every view, and runs no script', async () => {
    stack.write(`src/${HOSTILE}.txt`, 'boo\n');
    await page.goto(`${url}/#/graph`);
    await waitNode(`out/${HOSTILE}.upper`, 'up_to_date');
    expect(await page.locator(node(`src/${HOSTILE}.txt`)).textContent()).toContain(HOSTILE);
    await page.goto(`${url}/#/artefacts?sel=${encodeURIComponent(`out/${HOSTILE}.upper`)}`);
    await page.locator(`[data-row=${JSON.stringify(`out/${HOSTILE}.upper`)}]`).waitFor();
    await page.locator(`[data-panel=${JSON.stringify(`out/${HOSTILE}.upper`)}]`).waitFor();
    await shot('artefacts-hostile');
    await page.goto(`${url}/#/artefacts?state=failed`);
    await page.locator('[data-row="out/oops.never"]').waitFor();
    await shot('artefacts-failed');
    await page.goto(`${url}/#/builds`);
    await page.locator('.bar-row').first().waitFor();
    await page.goto(`${url}/#/resources`);
    await page.locator('[data-item="local"]').waitFor();
    // The queue's depth and its runner (GET /api/queues): the local runner listens.
    await expect
      .poll(() => page.locator('[data-queue="local"] [data-field="runner"]').textContent())
      .toBe('1 listening');
    await shot('resources');
    // No element the names could have made, no dialog, no console error (a CSP violation is one).
    expect(await page.locator('img[src="x"], main script').count()).toBe(0);
    expect(dialogs).toEqual([]);
    expect(
      consoleErrors.filter((e) => !/Failed to load resource: .* 401/.test(e)),
      `answers of 400 or more: ${JSON.stringify(refusals)}`,
    ).toEqual([]);
  });

  it('works from the keyboard: a focused node opens with Enter, the views are links', async () => {
    await page.goto(`${url}/#/graph`);
    await waitNode('out/hello.upper', 'up_to_date');
    await page.locator('.react-flow__node[data-id="a:out/hello.upper"]').focus();
    await page.keyboard.press('Enter');
    await page.locator('[data-panel="out/hello.upper"]').waitFor();
    expect(page.url()).toContain(`sel=${encodeURIComponent('out/hello.upper')}`);
    await page.getByRole('link', { name: 'Artefacts' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('main[data-view="artefacts"]').waitFor();
  });

  it('collapses the graph by folder and rule, and opens a folder on a click', async () => {
    await page.goto(`${url}/#/graph?group=folder`);
    const out = page.locator('[data-folder="out/"]');
    await out.waitFor();
    expect(Number(await out.getAttribute('data-count'))).toBeGreaterThanOrEqual(5);
    // The failed artefacts in out/ colour the folder, and are counted on it.
    expect(await out.getAttribute('data-state')).toBe('failed');
    expect(await out.locator('.badge').textContent()).toMatch(/^(.*, )?\d+ failed(, .*)?$/);
    await page.locator('[data-folder="src/"]').waitFor();
    expect(await page.locator(node('out/hello.upper')).count()).toBe(0);
    // A rule's tasks between collapsed folders are one task node.
    await page.locator('.react-flow__node[data-id="t:upper ×2"]').waitFor();
    await out.click();
    await waitNode('out/hello.upper', 'up_to_date');
    expect(page.url()).toContain('open=out');
    await shot('graph-grouped-open');
    await page.locator('[data-open-folder="out"]').click();
    await out.waitFor();
    expect(await page.locator(node('out/hello.upper')).count()).toBe(0);
  });

  it('follows the system: dark mode', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${url}/#/graph`);
    await waitNode('out/hello.upper', 'up_to_date');
    const bg = await page.evaluate('getComputedStyle(document.body).backgroundColor');
    expect(bg).toBe('rgb(21, 24, 29)');
    await shot('graph-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it("switches to another project's page, without taking the token there", async () => {
    await page.goto(`${url}/#/graph`);
    const switcher = page.locator('select[data-project="uitest"]');
    await switcher.waitFor();
    expect(await switcher.locator('option').allTextContents()).toEqual(['uitest', 'thesis']);
    const asked: Array<{ url: string; auth?: string }> = [];
    await page.route(`${THESIS}**`, (r) => {
      asked.push({ url: r.request().url(), auth: r.request().headers().authorization });
      return r.fulfill({ contentType: 'text/html', body: '<title>thesis</title>thesis' });
    });
    await switcher.selectOption('thesis');
    await page.waitForURL(THESIS);
    expect(asked).toEqual([{ url: THESIS, auth: undefined }]);
    await page.unroute(`${THESIS}**`);
    // Back: this project's page, still logged in (its token stays in this origin's tab storage).
    await page.goto(`${url}/#/graph`);
    await waitNode('out/hello.upper', 'up_to_date');
  });

  it('never puts the token in a URL', () => {
    expect(requests.length).toBeGreaterThan(10);
    expect(requests.filter((u) => u.includes(stack.apiToken))).toEqual([]);
    expect(requests.filter((u) => /[?&]token=/.test(u))).toEqual([]);
  });
});
