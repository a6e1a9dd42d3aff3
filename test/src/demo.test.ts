import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bus, isPermissionDenied, quietLogger } from '@computepods/bus';
import type { StatusReply } from '@computepods/protocol';
import { ManagedProcess, type ReservedPort, reservePort, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, settled } from './watch-builds.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const demoChef = join(root, 'deploy/demo/chef.yaml');

const DOC = ['# Notes', '', 'Intro line.', '', '## Alpha', '', 'One.', '', '## Beta', '', 'Two.'];

/** The page of DOC at its fixpoint: each contents entry names the line its section starts on. */
const PAGE = (alpha: number, beta: number, intro: string[], one: string) =>
  [
    '<!doctype html>',
    '<meta charset="utf-8">',
    '<title>Notes</title>',
    '<h1>Notes</h1>',
    '<nav><h2>Contents</h2><ol>',
    `<li><a href="#s1">Alpha</a>, line ${alpha}</li>`,
    `<li><a href="#s2">Beta</a>, line ${beta}</li>`,
    '</ol></nav>',
    ...intro.map((l) => `<p>${l}</p>`),
    '<h2 id="s1">Alpha</h2>',
    `<p>${one}</p>`,
    '<h2 id="s2">Beta</h2>',
    '<p>Two.</p>',
    '',
  ].join('\n');

/** Checks a page against its contents the way a reader would: every entry points at its heading. */
function contentsHold(html: string, toc: string): boolean {
  const lines = html.split('\n');
  const entries = toc.trim().split('\n');
  return (
    entries.length > 0 &&
    entries.every((e) => {
      const [id, at, title] = e.split('\t');
      return (
        lines[Number(at) - 1] === `<h2 id="${id}">${title}</h2>` &&
        html.includes(`<li><a href="#${id}">${title}</a>, line ${at}</li>`)
      );
    })
  );
}

const upToDate = (paths: string[]) => (s: StatusReply) =>
  paths.every((p) => s.artefacts.some((a) => a.path === p && a.status === 'up_to_date'));

/**
 * The demo project over real processes: its chef definition (deploy/demo/chef.yaml) drives a
 * table-of-contents cycle to a fixpoint in a known number of passes, and `up` itself brings the
 * demo up, builds it, rebuilds on an edit and stops cleanly on Ctrl-C.
 */
describe('demo: the table-of-contents cycle', () => {
  let stack: Stack;
  let log: BuildLog;
  const read = (p: string) => readFileSync(join(stack.workspace, p), 'utf8');
  const edit = async (lines: string[], expected: string) => {
    const from = log.requests.length;
    stack.write('src/doc.md', `${lines.join('\n')}\n`);
    await settled(
      stack.bus,
      (s) => upToDate(['out/doc.html', 'out/doc.toc'])(s) && read('out/doc.html') === expected,
      60_000,
      () => stack.logs(),
    );
    return log.passes('doc', from);
  };

  beforeAll(async () => {
    stack = await Stack.start('demo');
    await Promise.all([
      stack.start('majordomo'),
      stack.start('runner'),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'demo', CP_CHEF_DEFINITION: demoChef }),
    ]);
    log = await BuildLog.start(stack.bus);
  });
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('settles a new document in 3 passes: without contents, with wrong line numbers, then right', async () => {
    const passes = await edit(DOC, PAGE(10, 12, ['Intro line.'], 'One.'));
    // Pass 3's toc comes out byte-identical to pass 2's: early cutoff ends the cycle.
    expect(passes).toEqual(['1:render', '1:toc', '2:render', '2:toc', '3:render', '3:toc']);
    expect(read('out/doc.toc')).toBe('s1\t10\tAlpha\ns2\t12\tBeta\n');
    expect(contentsHold(read('out/doc.html'), read('out/doc.toc'))).toBe(true);
  });

  it('takes 2 passes when a line is added above the sections, 1 when a sentence changes in place', async () => {
    const longer = [...DOC.slice(0, 3), 'Intro, continued.', ...DOC.slice(3)];
    const intro = ['Intro line.', 'Intro, continued.'];
    expect(await edit(longer, PAGE(11, 13, intro, 'One.'))).toEqual([
      '1:render',
      '1:toc',
      '2:render',
      '2:toc',
    ]);
    expect(read('out/doc.toc')).toBe('s1\t11\tAlpha\ns2\t13\tBeta\n');

    const uno = longer.map((l) => (l === 'One.' ? 'Uno.' : l));
    expect(await edit(uno, PAGE(11, 13, intro, 'Uno.'))).toEqual(['1:render', '1:toc']);
  });

  it('builds the shipped demo sources: hello.upper and a guide whose contents hold', async () => {
    for (const f of ['hello.txt', 'guide.md'])
      stack.write(`src/${f}`, readFileSync(join(root, 'deploy/demo/src', f), 'utf8'));
    const paths = ['out/hello.upper', 'out/guide.html', 'out/guide.toc'];
    await settled(stack.bus, upToDate(paths), 60_000, () => stack.logs());
    expect(read('out/hello.upper')).toBe(
      readFileSync(join(root, 'deploy/demo/src/hello.txt'), 'utf8').toUpperCase(),
    );
    expect(log.passes('guide').filter((p) => p.endsWith(':toc'))).toEqual([
      '1:toc',
      '2:toc',
      '3:toc',
    ]);
    expect(contentsHold(read('out/guide.html'), read('out/guide.toc'))).toBe(true);
  });
});

describe('up: the demo, started as people start it', () => {
  const dir = new TempDir('cp-up-');
  let up: ManagedProcess;
  let bus: Bus;
  let url = '';
  const workspace = dir.join('demo/workspace');
  const read = (p: string) => readFileSync(join(workspace, p), 'utf8');

  /** up's ports: reserved, so no other test file's bind(0) takes one before up listens. */
  const ports: ReservedPort[] = [];
  const reserved = () => {
    const p = reservePort();
    ports.push(p);
    return String(p.port);
  };

  beforeAll(async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CP_STATE_DIR: dir.path,
      CP_NATS_PORT: reserved(),
      CP_HTTP_PORT: reserved(),
    };
    for (const k of [
      'NATS_URL',
      'NATS_CREDS',
      'CP_PROJECT',
      'CP_WORKSPACE',
      'CP_POD',
      'CP_API_TOKEN',
    ])
      delete env[k];
    up = new ManagedProcess({
      name: 'up',
      command: process.execPath,
      args: ['--import', 'tsx', join(root, 'scripts/up.ts')],
      env,
      cwd: root,
    });
    const line = await up.waitForOutput(/NATS +nats:\/\/[0-9.:]+/, 60_000);
    url = /nats:\/\/[0-9.:]+/.exec(line)![0];
    // The banner names the project admin's credentials: the person who ran up.
    const yours = await up.waitForOutput(/\(project admin\): \S+/, 60_000);
    const credsFile = /\(project admin\): (\S+)/.exec(yours)![1]!;
    const logger = quietLogger('e2e');
    bus = await Bus.connect({
      servers: url,
      credsFile,
      service: 'e2e',
      project: 'demo',
      logger,
      discoverable: false,
    });
  });
  afterAll(async () => {
    await bus?.close().catch(() => undefined);
    // SIGTERM takes the same path as Ctrl-C: services drain, then up's own nats-server stops.
    await up?.stop(30_000);
    for (const p of ports) p.release();
    dir[Symbol.dispose]();
  });

  it('copies the demo, builds it through the cycle, and rebuilds a saved edit', async () => {
    const paths = ['out/hello.upper', 'out/guide.html', 'out/guide.toc'];
    await settled(bus, upToDate(paths), 120_000, () => up.tail());
    expect(up.output).toMatch(/ComputePods is up/);
    expect(up.output).toMatch(/pnpm -s cpctrl build out\/guide.html/);
    expect(read('src/guide.md')).toBe(readFileSync(join(root, 'deploy/demo/src/guide.md'), 'utf8'));
    expect(read('out/hello.upper')).toBe(read('src/hello.txt').toUpperCase());
    expect(contentsHold(read('out/guide.html'), read('out/guide.toc'))).toBe(true);

    writeFileSync(
      join(workspace, 'src/guide.md'),
      `${read('src/guide.md')}\n## A new section\n\nSaved while up runs.\n`,
    );
    await settled(
      bus,
      (s) => upToDate(paths)(s) && read('out/guide.toc').includes('\tA new section\n'),
      60_000,
      () => up.tail(),
    );
    expect(contentsHold(read('out/guide.html'), read('out/guide.toc'))).toBe(true);
    expect(read('out/guide.html')).toMatch(
      /<h2 id="s4">A new section<\/h2>\n<p>Saved while up runs\.<\/p>\n$/,
    );
  });

  it("prints the web page's address and a token that logs in to it, showing the demo", async () => {
    const page = /web page +(http:\/\/127\.0\.0\.1:\d+\/)/.exec(up.output)?.[1];
    const token = /API token +(\S+)/.exec(up.output)?.[1];
    expect(page, up.tail()).toBeDefined();
    expect(token, up.tail()).toBeDefined();
    const html = await fetch(page!);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await html.text()).toMatch(/<script [^>]*src="\/?assets\/app\.js"/);
    // What the page asks first with the token: who is this, then the project's artefacts.
    const get = (path: string, t = token!) =>
      fetch(new URL(path, page), { headers: { authorization: `Bearer ${t}` } });
    expect(await (await get('/api/whoami')).json()).toMatchObject({
      user: 'admin',
      role: 'admin',
      project: 'demo',
    });
    const artefacts = (await (await get('/api/artefacts')).json()) as Array<{ path: string }>;
    expect(artefacts.map((a) => a.path)).toEqual(
      expect.arrayContaining(['out/hello.upper', 'out/guide.html', 'out/guide.toc']),
    );
    expect((await get('/api/whoami', 'not-the-token')).status).toBe(401);
  });

  it('is the secure run: a client without credentials is refused, a service role is kept to its lane', async () => {
    const logger = quietLogger('e2e');
    const anonymous = await Bus.connect({
      servers: url,
      credsFile: '',
      service: 'anon',
      project: 'demo',
      logger,
      discoverable: false,
    }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(anonymous).toMatchObject({ code: 'CP_NATS_AUTH' });
    const fswatcher = await Bus.connect({
      servers: url,
      credsFile: join(dir.path, 'auth/creds/p-demo/fswatcher-pod-local.creds'),
      service: 'fswatcher',
      project: 'demo',
      logger,
      discoverable: false,
    });
    try {
      const submitted = await fswatcher
        .publish(
          'task.submitted',
          'cp.demo.tasks.local',
          { taskId: 'evil', resource: 'local', command: 'touch PWNED', cwd: workspace },
          { retryForMs: 0 },
        )
        .then(
          () => undefined,
          (err: Error) => err,
        );
      expect(isPermissionDenied(submitted)).toBe(true);
    } finally {
      await fswatcher.close();
    }
    expect(existsSync(join(workspace, 'PWNED'))).toBe(false);
  });

  it('answers cpctrl through its bin: status as JSON on stdout', async () => {
    const child = spawn(
      process.execPath,
      [join(root, 'apps/cpctrl/bin/cpctrl.js'), '-o', 'json', 'status', '--artefacts'],
      {
        env: {
          ...process.env,
          NATS_URL: url,
          NATS_CREDS: '',
          CP_PROJECT: 'demo',
          // cpctrl finds the admin's credentials in the auth dir up made.
          CP_AUTH_DIR: dir.join('auth'),
          CPCTRL_CONFIG: dir.join('c.json'),
        },
      },
    );
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    const status = JSON.parse(stdout) as { artefacts: Array<{ path: string; status: string }> };
    expect(status.artefacts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'out/guide.html', status: 'up_to_date' }),
      ]),
    );
  });

  it('stops everything on Ctrl-C and exits 0', async () => {
    up.signal('SIGINT');
    expect(await up.exited()).toBe(0);
    expect(up.output).toMatch(/SIGINT: stopping services\.\.\.\n(.|\n)*stopped\.\n/);
    expect(up.output).not.toMatch(/!! \w+ exited/);
  });
});
