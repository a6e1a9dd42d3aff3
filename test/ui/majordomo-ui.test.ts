import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildUi } from '@computepods/majordomo-ui/build';
import { buckets, ResolvedQueue } from '@computepods/protocol';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { Stack } from '../src/stack.js';
import { launchChromium } from './browser.js';

const HOSTILE = '<img src=x onerror=alert(1)>';
const webSources = fileURLToPath(new URL('../../packages/majordomo-ui/src/web/', import.meta.url));
/**
 * Where the switcher's other project lives: the test answers for its whole origin (a port
 * Chromium does not refuse as unsafe, as it did port 9's favicon with a console error).
 */
const THESIS_ORIGIN = 'http://127.0.0.1:65000';
const THESIS = `${THESIS_ORIGIN}/thesis/`;

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
  /** Every request the page made, by method: checked against /openapi.json at the end. */
  const calls: Array<{ method: string; url: string }> = [];

  const shot = async (name: string) => {
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
  };
  /** Opens the gates of these held builds when the test ends, passed or failed: each holds
   * one of the runner's two slots, which the later tests need. */
  const openGatesAtEnd = (...stems: string[]) =>
    onTestFinished(() => {
      for (const s of stems) writeFileSync(join(gates, `${s}.go`), '');
    });
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
        // A cycle that never settles: what it reads back is new on every pass.
        '  - id: spin',
        '    inputs: ["loop/{stem}.md"]',
        '    optionalInputs: ["out/{stem}.spun"]',
        '    outputs: ["out/{stem}.spin"]',
        '    command: cat {in0} out/{stem}.spun > {out0} 2>/dev/null || cat {in0} > {out0}',
        '  - id: spun',
        '    inputs: ["out/{stem}.spin"]',
        '    outputs: ["out/{stem}.spun"]',
        '    command: date +%s%N > {out0}',
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
        // A task per step: the page's controls are tried on three builds of one rule at once.
        CP_GROUP_BUILDS: '1',
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
    page.on('request', (r) => {
      requests.push(r.url());
      calls.push({ method: r.method(), url: r.url() });
    });
    page.on('response', (r) => {
      if (r.status() >= 400) refusals.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
  }, 180_000);

  // A failed test says what the page and the services were doing: whether the page's event
  // stream was live, what MajorDomo's status held, and the tail of each service's log.
  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !stack) return;
    const stream = await page
      ?.locator('[data-stream-state]')
      .getAttribute('data-stream-state', { timeout: 1_000 })
      .catch((e: Error) => `unknown (${e.message.split('\n')[0]})`);
    const status = await fetch(`${url}/api/status`, {
      headers: { authorization: `Bearer ${stack.apiToken}` },
      signal: AbortSignal.timeout(5_000),
    })
      .then((r) => r.text())
      .catch((e: Error) => `unanswered: ${e.message}`);
    console.log(
      [
        `[ui-diag] after "${ctx.task.name}": page ${page?.url()}, event stream ${stream}`,
        `[ui-diag] console errors: ${JSON.stringify(consoleErrors.slice(-10))}`,
        `[ui-diag] refusals: ${JSON.stringify(refusals.slice(-10))}`,
        `[ui-diag] /api/status: ${status.slice(0, 3000)}`,
        stack.logs(6000),
      ].join('\n'),
    );
  });

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
    // The read-back that closes the cycle is drawn, as an optional input.
    const readBack = page.locator('.react-flow__edge[data-id="a:out/guide.toc->t:render:guide"]');
    await readBack.waitFor({ state: 'attached' });
    expect(await readBack.getAttribute('class')).toMatch(/\bedge-optional\b.*\bedge-back\b/);
    expect(await readBack.locator('path.react-flow__edge-path').getAttribute('d')).toMatch(/\d/);
    // Gone if the page reloads: every later change must arrive without one.
    await page.evaluate('window.notReloaded = true');
    await shot('graph');
  });

  it('follows an edit without a reload: building, then up to date; a cycle shows its pass count', async () => {
    openGatesAtEnd('a');
    stack.write('slow/a.in', 'first\n');
    await waitNode('out/a.slow', 'building');
    await shot('graph-building');
    writeFileSync(join(gates, 'a.go'), '');
    await waitNode('out/a.slow', 'up_to_date');

    // An edit of the cycle's source: its passes counted on the group, against the limit. The
    // group still shows the pass its last round ended at, so every value it takes from here is
    // recorded (a settled pass 2 must not pass for this round's).
    await page.evaluate(`(() => {
      window.__passes = [];
      new MutationObserver((list) => {
        for (const m of list) window.__passes.push(Number(m.target.getAttribute('data-pass')));
      }).observe(document.body, { attributes: true, subtree: true, attributeFilter: ['data-pass'] });
    })()`);
    const htmlBefore = await stack.artefact('out/guide.html');
    stack.write('src/guide.md', '# Guide\nIntro.\n## A new section\n');
    await stack.until(
      'out/guide.html',
      (a) => a.status === 'up_to_date' && a.buildId !== htmlBefore?.buildId,
      60_000,
    );
    await stack.until('out/guide.toc', (a) => a.status === 'up_to_date');
    // (Polled from here: a predicate evaluated in the page would be refused by its CSP.)
    await expect
      .poll(async () => {
        const seen = (await page.evaluate('window.__passes')) as number[];
        const first = seen.indexOf(1);
        return first >= 0 && seen.slice(first + 1).some((p) => p >= 2);
      })
      .toBe(true);
    expect(await page.locator('[data-cycle]').getAttribute('data-limit')).toBe('5');
    await waitNode('out/guide.toc', 'up_to_date');
    expect(await page.evaluate('window.notReloaded')).toBe(true);
    // The timeline draws the cycle's passes as such: a band for each, the second after the
    // first, in rounds (the first build of the page, then this edit's): the last round's.
    await page.getByRole('link', { name: 'Builds' }).click();
    const band = (pass: number) => page.locator(`[data-cycle-pass$=":${pass}"]`).last();
    // The page re-reads the task list shortly after the events: this round's bands follow, in
    // time order, so a pass 2 comes after the second pass 1.
    await expect
      .poll(async () => {
        const passes = (
          await page
            .locator('[data-cycle-pass]')
            .evaluateAll((els) => els.map((e) => e.getAttribute('data-cycle-pass')?.split(':')[1]))
        ).join(' ');
        return /^1 2( \d+)* 1 2( \d+)*$/.test(passes) ? 'two rounds' : passes;
      })
      .toBe('two rounds');
    // Both read from one frame: the live timeline rescales as time passes and tasks come.
    const [one, two] = await page.locator('[data-cycle-pass]').evaluateAll((els) =>
      [':1', ':2'].map(
        (end) =>
          els
            .filter((e) => e.getAttribute('data-cycle-pass')?.endsWith(end))
            .at(-1)
            ?.querySelector('.pass-band')
            ?.getBoundingClientRect().x ?? Number.NaN,
      ),
    );
    expect(two).toBeGreaterThanOrEqual(one ?? Number.POSITIVE_INFINITY);
    expect(await band(1).textContent()).toMatch(/pass 1 of at most 5: \d+ steps?/);
    await shot('builds-passes');
    expect(await page.evaluate('window.notReloaded')).toBe(true);
    // Opened afresh (no build event seen), each of the cycle's tasks on the runner's lane is
    // still named with its pass, the last ones too (their artefact records name only the
    // producer); the token stays in the tab, so the page logs in again by itself.
    await page.reload();
    await band(2).waitFor();
    const cycleBars = (await page.locator('.bar-row .bar-text a').allTextContents()).filter((t) =>
      /^(render|toc):guide/.test(t),
    );
    expect(cycleBars.length).toBeGreaterThanOrEqual(4);
    expect(cycleBars.filter((t) => !/ · pass \d+$/.test(t))).toEqual([]);
    await page.evaluate('window.notReloaded = true');
    await page.getByRole('link', { name: 'Graph' }).click();
  });

  /**
   * Opens the log of the first task an artefact's panel lists, and the logs view must open. The
   * panel's sections come as their data does; when the Tasks list was drawn below them, a click
   * as one arrived landed beside the link and opened nothing (fresh-clone CI run 138). The list
   * now comes before them ('opens an artefact's record' checks the order).
   */
  const openLog = async (panel: Locator) => {
    await panel.locator('[data-log]').first().click();
    await page.waitForURL(/#\/logs\//);
  };

  it("turns a failing rule's node failed, and its log shows the error line as text", async () => {
    await page.goto(`${url}/#/graph`);
    stack.write('src/oops.bad', 'x\n');
    await waitNode('out/oops.never', 'failed');
    await page.locator(node('out/oops.never')).click();
    const panel = page.locator('[data-panel="out/oops.never"]');
    await panel.waitFor();
    await expect.poll(() => panel.textContent()).toContain('exit');
    await shot('graph-failed-panel');
    await openLog(panel);
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

  it("opens an artefact's record: producer, hashes, pods, inputs and why, as the API has them", async () => {
    const detail = async (path: string) => {
      const res = await fetch(`${url}/api/artefact?path=${encodeURIComponent(path)}`, {
        headers: { authorization: `Bearer ${stack.apiToken}` },
      });
      return z
        .object({ why: z.array(z.object({ artefact: z.string(), because: z.string() })) })
        .parse(await res.json());
    };
    const rec = await stack.artefact('out/hello.upper');
    expect(rec?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(rec?.pods.length).toBeGreaterThan(0);
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/hello.upper')}`);
    const panel = page.locator('[data-panel="out/hello.upper"]');
    const fact = (name: string) => panel.locator(`[data-fact="${name}"]`).textContent();
    await expect.poll(() => fact('sha256')).toBe(rec?.sha256);
    expect(await fact('producer')).toBe('upper:hello');
    expect(await fact('pods')).toBe(rec?.pods.join(', '));
    expect(await fact('build')).toBe(rec?.buildId);
    expect(await panel.locator('[data-input="input"]').allTextContents()).toEqual([
      'src/hello.txt',
    ]);
    expect((await detail('out/hello.upper')).why).toEqual([]);
    expect(await panel.locator('.why').count()).toBe(0);
    // The cycle's render reads its table of contents back: listed as an optional input.
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/guide.html')}`);
    await expect
      .poll(() =>
        page.locator('[data-panel="out/guide.html"] [data-input="optional"]').allTextContents(),
      )
      .toEqual(['out/guide.toc (optional)']);
    // A failed artefact: why it is not up to date, each reason as the API gives it.
    const why = (await detail('out/oops.never')).why;
    expect(why.length).toBeGreaterThan(0);
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/oops.never')}`);
    const failed = page.locator('[data-panel="out/oops.never"]');
    await expect
      .poll(() => failed.locator('.why li').allTextContents())
      .toEqual(why.map((w) => `${w.artefact}: ${w.because}`));
    expect(await failed.locator('[data-fact="producer"]').textContent()).toBe('fail:oops');
    expect(await failed.locator('[data-fact="error"]').textContent()).toBe(
      (await stack.artefact('out/oops.never'))?.error,
    );
    // The task links come before the sections drawn as their data arrives (why, from the
    // artefact's detail; the inputs, from the graph): a link does not move under a click.
    await failed.locator('[data-log]').first().waitFor();
    await failed.locator('[data-input]').first().waitFor();
    expect(
      await failed.evaluate((el) => {
        const log = el.querySelector('[data-log]');
        const later = [el.querySelector('.why'), el.querySelector('[data-input]')];
        // 4: DOCUMENT_POSITION_FOLLOWING
        return later.map((n) => Boolean(log && n && log.compareDocumentPosition(n) & 4));
      }),
    ).toEqual([true, true]);
    await shot('graph-panel-why');
  });

  it('filters and searches the graph from the URL and the toolbar: what does not match is dimmed', async () => {
    const dimmed = async (path: string) =>
      /\bdim\b/.test((await page.locator(node(path)).getAttribute('class')) ?? '');
    await page.goto(`${url}/#/graph?q=hello`);
    await waitNode('out/hello.upper', 'up_to_date');
    expect(await page.locator('input[type="search"]').inputValue()).toBe('hello');
    expect(await dimmed('out/hello.upper')).toBe(false);
    expect(await dimmed('src/hello.txt')).toBe(false);
    expect(await dimmed('out/guide.html')).toBe(true);
    await page.locator('input[type="search"]').fill('guide');
    await expect.poll(() => dimmed('out/hello.upper')).toBe(true);
    expect(page.url()).toContain('q=guide');
    expect(await dimmed('out/guide.toc')).toBe(false);
    await page.goto(`${url}/#/graph?state=failed`);
    await waitNode('out/oops.never', 'failed');
    await expect.poll(() => dimmed('out/hello.upper')).toBe(true);
    expect(await dimmed('out/oops.never')).toBe(false);
    await page.locator('.toolbar select').first().selectOption('up_to_date');
    await expect.poll(() => dimmed('out/hello.upper')).toBe(false);
    expect(page.url()).toContain('state=up_to_date');
    expect(await dimmed('out/oops.never')).toBe(true);
    await shot('graph-filtered');
  });

  it("follows a running task's log live, as the command writes it", async () => {
    // A link to an artefact not made yet opens a panel that waits for it (asking MajorDomo
    // would be a 404, a console error), then fills in when it is recorded.
    await page.goto(`${url}/#/graph?sel=${encodeURIComponent('out/t.talk')}`);
    const panel = page.locator('[data-panel="out/t.talk"]');
    await panel.locator('[data-no-record]').waitFor();
    openGatesAtEnd('t');
    stack.write('talk/t.in', 'hi\n');
    await waitNode('out/t.talk', 'building');
    await panel.locator('[data-no-record]').waitFor({ state: 'detached' });
    await openLog(panel);
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
    await openLog(page.locator('[data-panel="out/m.many"]'));
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
    // Where the nodes and the panel are once the view has settled (it fits the graph a frame
    // after the panel opens): a state change must not move them.
    const boxes = async () =>
      JSON.stringify(
        await Promise.all(
          [
            '.react-flow__node[data-id="a:out/hello.upper"]',
            '.react-flow__node[data-id="a:src/hello.txt"]',
            '.react-flow__node[data-id="t:upper:hello"]',
            '[data-panel="out/hello.upper"] dl',
          ].map((sel) => page.locator(sel).boundingBox()),
        ),
      );
    const frames = () =>
      page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
    let settled = '';
    for (let seen = await boxes(); seen !== settled; seen = await boxes()) {
      settled = seen;
      await frames();
    }
    await panel.getByRole('button', { name: 'Rebuild (force)' }).click();
    await expect.poll(() => panel.locator('[role="status"]').textContent()).toMatch(/^Rebuild: /);
    expect(await panel.locator('[role="status"]').textContent()).not.toContain('refused');
    const after = await stack.until(
      'out/hello.upper',
      (a) => a.status === 'up_to_date' && a.buildId !== before?.buildId,
    );
    await waitNode('out/hello.upper', 'up_to_date');
    await expect.poll(() => panel.locator('[data-fact="build"]').textContent()).toBe(after.buildId);
    await frames();
    expect(await boxes()).toBe(settled);
  });

  it('cancels a build, and pauses, resumes and kills tasks from the page', async () => {
    // Two held builds fill the runner's two slots; the third waits (submitted): pausable.
    openGatesAtEnd('p1', 'p2', 'p3');
    for (const s of ['p1', 'p2', 'p3']) stack.write(`slow/${s}.in`, `${s}\n`);
    await page.goto(`${url}/#/builds`);
    await expect.poll(() => page.locator('.bar-row .pill.t-running').count()).toBe(2);
    await expect.poll(() => page.locator('.bar-row .pill.t-submitted').count()).toBe(1);
    await shot('builds');
    const waiting = await page.locator('.bar-row:has(.pill.t-submitted)').getAttribute('data-task');
    const waitingTask = waiting ?? '';
    expect(waitingTask).not.toBe('');
    // The queue's depth: two running, the third waiting for a free slot.
    await page.goto(`${url}/#/resources`);
    const queue = (field: string) =>
      page.locator(`[data-queue="local"] [data-field="${field}"]`).textContent();
    await expect.poll(() => queue('running')).toBe('2');
    await expect.poll(() => queue('waiting')).toBe('1');
    await shot('resources-queue');
    await page.goto(`${url}/#/logs/${encodeURIComponent(waitingTask)}`);
    await page.getByRole('button', { name: 'pause' }).click();
    await page.locator('[data-task-state="paused"]').waitFor();
    await expect.poll(() => page.locator('[role="status"]').textContent()).toMatch(/^pause: /);
    await page.goto(`${url}/#/resources`);
    await expect.poll(() => queue('paused')).toBe('1');
    await expect.poll(() => queue('waiting')).toBe('0');
    await page.goto(`${url}/#/logs/${encodeURIComponent(waitingTask)}`);
    await page.getByRole('button', { name: 'resume' }).click();
    await page.locator('[data-task-state="submitted"]').waitFor();
    await page.getByRole('button', { name: 'kill' }).click();
    await page.locator('[data-task-state="killed"]').waitFor();

    // A running build cancelled from its artefact's panel: the artefact is shown cancelled (held:
    // not built again until an input changes or a rebuild is asked for).
    // (The runner took two of the three in an order of its own: one of those still held.)
    let held = '';
    for (const p of ['p1', 'p2', 'p3'])
      if ((await stack.mdArtefact(`out/${p}.slow`))?.status === 'queued') held = `out/${p}.slow`;
    expect(held).not.toBe('');
    await page.goto(`${url}/#/artefacts?sel=${encodeURIComponent(held)}`);
    const panel = page.locator(`[data-panel="${held}"]`);
    await panel.getByRole('button', { name: 'Cancel build' }).click();
    await expect.poll(() => panel.locator('[role="status"]').textContent()).toMatch(/^Cancel: /);
    await stack.until(held, (a) => a.status === 'cancelled');
    await expect
      .poll(() => panel.locator('[data-state]').first().getAttribute('data-state'))
      .toBe('cancelled');
    expect(await panel.locator('.reason').first().textContent()).toMatch(
      /^build cancelled on request/,
    );
  });

  it('cuts the timeline into lanes per runner, or per chef from its link', async () => {
    await page.goto(`${url}/#/builds`);
    const lanes = () =>
      page
        .locator('.gantt .lane[data-lane]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-lane') ?? ''));
    await expect.poll(async () => (await lanes()).length).toBeGreaterThan(0);
    expect((await lanes()).every((l) => l.endsWith(' · local'))).toBe(true);
    await page.locator('[data-lanes="chef"]').click();
    await expect.poll(() => page.url()).toContain('lanes=chef');
    // Every task of this stack was submitted by its one chef, named by CP_CHEF.
    await expect.poll(lanes).toEqual(['chef ui']);
    expect(
      await page.locator('.gantt .lane[data-lane="chef ui"] .bar-row').count(),
    ).toBeGreaterThan(0);
    await shot('builds-by-chef');
  });

  it('renders hostile file names as text in every view, and runs no script', async () => {
    stack.write(`src/${HOSTILE}.txt`, 'boo\n');
    await page.goto(`${url}/#/graph`);
    await waitNode(`out/${HOSTILE}.upper`, 'up_to_date');
    expect(await page.locator(node(`src/${HOSTILE}.txt`)).textContent()).toContain(HOSTILE);
    await page.goto(`${url}/#/artefacts?sel=${encodeURIComponent(`out/${HOSTILE}.upper`)}`);
    const row = page.locator(`[data-row=${JSON.stringify(`out/${HOSTILE}.upper`)}]`);
    expect(await row.locator('a.path').textContent()).toBe(`out/${HOSTILE}.upper`);
    const panel = page.locator(`[data-panel=${JSON.stringify(`out/${HOSTILE}.upper`)}]`);
    expect(await panel.locator('h2').textContent()).toBe(`out/${HOSTILE}.upper`);
    expect(await panel.locator('[data-fact="producer"]').textContent()).toBe(`upper:${HOSTILE}`);
    await shot('artefacts-hostile');
    await page.goto(`${url}/#/artefacts?state=failed`);
    await page.locator('[data-row="out/oops.never"]').waitFor();
    await shot('artefacts-failed');
    // The timeline names the task by its rule and stem: the name, as text.
    await page.goto(`${url}/#/builds`);
    await expect
      .poll(() => page.locator('.bar-row .bar-text a').allTextContents())
      .toContain(`upper:${HOSTILE}`);
    await shot('builds-hostile');
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    await page.goto(`${url}/#/resources`);
    await page.locator('[data-item="local"]').waitFor();
    // The queue's depth and its runner (GET /api/queues): the local runner listens.
    await expect
      .poll(() => page.locator('[data-queue="local"] [data-field="runner"]').textContent())
      .toBe('1 listening');
    // The resource's settings as rows, as GET /api/resources has them (its secrets redacted).
    const resources = z.array(z.record(z.string(), z.unknown())).parse(
      await (
        await fetch(`${url}/api/resources`, {
          headers: { authorization: `Bearer ${stack.apiToken}` },
        })
      ).json(),
    );
    const local = resources.find((r) => r.id === 'local') ?? {};
    const scalars = Object.entries(local).filter(
      ([k, v]) => k !== 'id' && k !== 'type' && (typeof v === 'string' || typeof v === 'number'),
    );
    expect(scalars.length).toBeGreaterThan(0);
    const card = page.locator('[data-item="local"]');
    for (const [k, v] of scalars)
      expect(await card.locator(`[data-setting=${JSON.stringify(k)}]`).textContent()).toBe(
        String(v),
      );
    expect(await card.locator('pre').count()).toBe(0);
    await shot('resources');
    // No element the names could have made (the last test checks for dialogs and console
    // errors, a CSP violation among them, over every view the tests opened).
    expect(await page.locator('img[src="x"], main script').count()).toBe(0);
  });

  it('lists the artefacts with the named filters, sortable, each with the reason for its state', async () => {
    const rows = () =>
      page
        .locator('[data-row]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-row') ?? ''));
    const column = (n: number) => page.locator(`[data-row] td:nth-child(${n})`).allTextContents();
    // A cycle that never settles: its artefacts end not converging.
    stack.write('loop/s.md', 'spin\n');
    // A build held at its gate: building.
    openGatesAtEnd('b');
    stack.write('slow/b.in', 'b\n');
    await page.goto(`${url}/#/artefacts`);
    const chip = (label: string) => page.locator('nav.quick a', { hasText: label });
    for (const [state, label] of [
      ['failed', 'failed'],
      ['building', 'building'],
      ['not_converging', 'not converging'],
    ] as const) {
      await expect.poll(() => chip(label).textContent(), { timeout: 60_000 }).not.toMatch(/\(0\)$/);
      await chip(label).click();
      await expect.poll(() => page.url()).toContain(`state=${state}`);
      // Read in one go (the table is live: the spinning cycle moves between two reads): the
      // chip counts what the filter shows, and all of it is in that state.
      const seen = await page.locator('main').evaluate((main, l) => {
        const chipText = [...main.querySelectorAll('nav.quick a')]
          .map((a) => a.textContent ?? '')
          .find((t) => t.startsWith(`${l} (`));
        const states = [...main.querySelectorAll('[data-row] td:nth-child(2)')].map(
          (td) => td.textContent ?? '',
        );
        return { chipText, states };
      }, label);
      expect(seen.states.length).toBeGreaterThan(0);
      expect(seen.chipText).toBe(`${label} (${seen.states.length})`);
      expect(new Set(seen.states)).toEqual(new Set([label]));
      await chip(label).click();
      await expect.poll(() => page.url()).not.toContain('state=');
    }
    await page.goto(`${url}/#/artefacts?state=not_converging`);
    await expect.poll(() => rows()).toContain('out/s.spin');
    expect((await column(6)).every((r) => /pass|converg/i.test(r))).toBe(true);
    await shot('artefacts-not-converging');
    await page.goto(`${url}/#/artefacts?state=building`);
    await expect.poll(() => rows()).toEqual(['out/b.slow']);
    expect(await column(6)).toEqual(['slow:b is running']);
    writeFileSync(join(gates, 'b.go'), '');
    await expect.poll(() => rows()).toEqual([]);
    // By rule: only that rule's outputs; by pod: only what that pod holds (a failed build's
    // output is on none).
    await page.goto(`${url}/#/artefacts?rule=upper`);
    await expect
      .poll(async () => (await rows()).sort())
      .toEqual(['out/hello.upper', `out/${HOSTILE}.upper`].sort());
    expect(new Set(await column(3))).toEqual(new Set(['upper']));
    expect(await column(6)).toContain('built by upper:hello');
    // The toolbar's selects show the address's filters, and choosing sets them.
    const toolbarSelect = (label: RegExp) =>
      page.locator('.toolbar label', { hasText: label }).locator('select');
    expect(await toolbarSelect(/^Rule/).inputValue()).toBe('upper');
    await toolbarSelect(/^Rule/).selectOption('');
    await expect.poll(() => page.url()).not.toContain('rule=');
    const pod = (await stack.artefact('out/hello.upper'))?.pods[0] ?? '';
    await toolbarSelect(/^Pod/).selectOption(pod);
    await expect.poll(() => page.url()).toContain('pod=');
    await expect.poll(() => rows()).toContain('out/hello.upper');
    expect(await rows()).not.toContain('out/oops.never');
    expect((await column(4)).every((p) => p.split(', ').includes(pod))).toBe(true);
    // Sorted by a header's link: path descending, then by state.
    await page.goto(`${url}/#/artefacts`);
    await expect.poll(async () => (await rows()).length).toBeGreaterThan(5);
    await page.locator('th a', { hasText: 'Path' }).click();
    await expect.poll(() => page.url()).toContain('desc=1');
    // The address changes before the list is drawn again: polled until it is.
    await expect
      .poll(async () => {
        const desc = await rows();
        return desc.join('\n') === [...desc].sort().reverse().join('\n');
      })
      .toBe(true);
    expect(await page.locator('th[aria-sort="descending"]').textContent()).toContain('Path');
    await page.locator('th a', { hasText: 'State' }).click();
    await expect.poll(() => page.url()).toContain('sort=state');
    const states = () =>
      page
        .locator('[data-row] td:nth-child(2) .pill')
        .evaluateAll((els) => els.map((e) => e.className.replace(/.*\bs-(\S+).*/, '$1')));
    await expect
      .poll(async () => {
        const now = await states();
        return now.length > 5 && now.join('\n') === [...now].sort().join('\n');
      })
      .toBe(true);
    // The failed one's reason is its record's error.
    await page.goto(`${url}/#/artefacts?state=failed`);
    await expect
      .poll(() => page.locator('[data-row="out/oops.never"] td.reason').textContent())
      .toBe((await stack.artefact('out/oops.never'))?.error);
    await shot('artefacts-sorted');
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
    // Ungrouped again from the toolbar.
    await page
      .locator('.toolbar label', { hasText: /^Group/ })
      .locator('select')
      .selectOption('none');
    await waitNode('out/hello.upper', 'up_to_date');
    expect(page.url()).toContain('group=none');
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
    await page.route(`${THESIS_ORIGIN}/**`, (r) => {
      asked.push({ url: r.request().url(), auth: r.request().headers().authorization });
      if (r.request().url() !== THESIS) return r.fulfill({ status: 204 });
      // Its own icon declared, so the browser asks for no /favicon.ico (which no route answers).
      return r.fulfill({
        contentType: 'text/html',
        body: '<title>thesis</title><link rel="icon" href="data:,">thesis',
      });
    });
    await switcher.selectOption('thesis');
    await page.waitForURL(THESIS);
    expect(asked).toContainEqual({ url: THESIS, auth: undefined });
    expect(asked.filter((a) => a.auth !== undefined)).toEqual([]);
    await page.unroute(`${THESIS_ORIGIN}/**`);
    // Back: this project's page, still logged in (its token stays in this origin's tab storage).
    await page.goto(`${url}/#/graph`);
    await waitNode('out/hello.upper', 'up_to_date');
  });

  it('uses only the routes /openapi.json describes, with their methods and query parameters', async () => {
    const res = await fetch(`${url}/openapi.json`, {
      headers: { authorization: `Bearer ${stack.apiToken}` },
    });
    const spec = z
      .object({
        paths: z.record(
          z.string(),
          z.record(
            z.string(),
            z.object({
              description: z.string().optional(),
              parameters: z.array(z.object({ in: z.string(), name: z.string() })).optional(),
            }),
          ),
        ),
      })
      .parse(await res.json());
    const routes = Object.entries(spec.paths).map(([path, ops]) => ({
      match: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
      ops,
    }));
    const origin = new URL(url).origin;
    const own = calls.filter((c) => new URL(c.url).origin === origin);
    const api = own.filter((c) => new URL(c.url).pathname.startsWith('/api/'));
    // The page's own files are all it asks for beside the API (its icon is fetched by the
    // browser itself, which Playwright may not report).
    const files = new Set(
      own.filter((c) => !api.includes(c)).map((c) => `${c.method} ${new URL(c.url).pathname}`),
    );
    for (const f of ['GET /', 'GET /assets/app.js', 'GET /assets/app.css'])
      expect(files).toContain(f);
    expect(
      [...files].filter(
        (f) =>
          !['GET /', 'GET /assets/app.js', 'GET /assets/app.css', 'GET /assets/icon.svg'].includes(
            f,
          ),
      ),
    ).toEqual([]);
    const used = new Set<string>();
    for (const c of api) {
      const u = new URL(c.url);
      const route = routes.find((r) => r.match.test(u.pathname));
      const op = route?.ops[c.method.toLowerCase()];
      expect(op, `${c.method} ${u.pathname} is not in /openapi.json`).toBeDefined();
      const query = new Set(
        (op?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
      );
      for (const name of u.searchParams.keys())
        expect(query, `${c.method} ${u.pathname}: ?${name} is not in /openapi.json`).toContain(
          name,
        );
      used.add(`${c.method} ${route?.match.source}`);
    }
    // Every kind of call the page makes was seen: reads, controls and both streams.
    expect(used.size).toBeGreaterThanOrEqual(14);
    // The response headers the page's code reads are described there too.
    const read = new Set<string>();
    for (const file of readdirSync(webSources, { recursive: true, encoding: 'utf8' }))
      if (/\.tsx?$/.test(file) && !file.endsWith('.test.ts'))
        for (const m of readFileSync(join(webSources, file), 'utf8').matchAll(
          /headers\.(?:get|has)\('([a-z0-9-]+)'\)/g,
        ))
          if (m[1]) read.add(m[1]);
    expect([...read].sort()).toEqual(['x-cp-log-ended', 'x-cp-log-source']);
    const described = JSON.stringify(spec);
    for (const header of read) expect(described).toContain(header);
  });

  it('ran no script and logged no console error in any view', async () => {
    expect(dialogs).toEqual([]);
    // The only errors: one for each 401 the login test asked for with a wrong token (a request
    // the browser makes of its own, such as /favicon.ico, is not seen as a response here).
    const unauthorized = /Failed to load resource: .* 401/;
    expect(
      consoleErrors.filter((e) => !unauthorized.test(e)),
      `answers of 400 or more: ${JSON.stringify(refusals)}`,
    ).toEqual([]);
    expect(consoleErrors.filter((e) => unauthorized.test(e)).length).toBe(
      refusals.filter((r) => r.startsWith('401 GET') && r.endsWith('/api/whoami')).length,
    );
    expect(refusals.filter((r) => !r.endsWith('/api/whoami'))).toEqual([]);
  });

  it('never puts the token in a URL', () => {
    expect(requests.length).toBeGreaterThan(10);
    expect(requests.filter((u) => u.includes(stack.apiToken))).toEqual([]);
    expect(requests.filter((u) => /[?&]token=/.test(u))).toEqual([]);
  });
});
