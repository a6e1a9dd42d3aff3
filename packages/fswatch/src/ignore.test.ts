import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTex } from '@computepods/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultIgnores, PathMatcher } from './ignore.js';
import { Harness, sleep, waitFor } from './test-helpers.js';

describe('PathMatcher', () => {
  const m = new PathMatcher({
    useDefaults: true,
    patterns: ['/secret.txt'],
    ignoreFileText: '# comment\nbuild/\n*.o\n!keep.o\n',
    policies: [
      { pattern: '*.log', policy: 'log' },
      { pattern: 'tmp/', policy: 'ignore' },
      { pattern: 'logs/', policy: 'log' },
      { pattern: 'logs/keep.txt', policy: 'artefact' },
      { pattern: 'out/**/*.pdf', policy: 'artefact' },
      { pattern: 'out/', policy: 'ignore' },
    ],
  });

  it('ignores editor temp files, .git and node_modules by default', () => {
    for (const p of [
      'a/.main.tex.swp',
      'main.tex~',
      '4913',
      'sub/4913',
      '.#main.tex',
      'main.tex___jb_tmp___',
      'main.tex___jb_old___',
      'x.swx',
      'pdflatex12616.fls',
      'paper/xelatex7.fls',
      'lualatex123.fls',
    ]) {
      expect(m.policy(p), p).toBe('ignore');
    }
    for (const p of ['main.fls', 'paper/main.fls', 'pdflatex.fls', 'pdflatex1.tex'])
      expect(m.policy(p), p).toBe('artefact');
    expect(m.dirIgnored('.git')).toBe(true);
    expect(m.dirIgnored('a/node_modules')).toBe(true);
    expect(defaultIgnores).toContain('.git/');
  });

  it('applies the ignore file (gitignore syntax) and policies in order', () => {
    expect(m.dirIgnored('build')).toBe(true);
    expect(m.policy('x/y.o')).toBe('ignore');
    expect(m.policy('keep.o')).toBe('artefact');
    expect(m.policy('secret.txt')).toBe('ignore');
    expect(m.policy('sub/secret.txt')).toBe('artefact');
    expect(m.policy('out/run.log')).toBe('log');
    expect(m.dirIgnored('tmp')).toBe(true);
    expect(m.policy('main.tex')).toBe('artefact');
    expect(m.policy('tmp/a/b.txt')).toBe('ignore');
    // A directory rule covers its files; an earlier rule still wins over it.
    expect(m.policy('logs/app/out.txt')).toBe('log');
    expect(m.policy('logs/keep.txt')).toBe('log');
    expect(m.policy('out/x/paper.pdf')).toBe('artefact');
    expect(m.policy('out/x/paper.aux')).toBe('ignore');
    expect(m.dirIgnored('out')).toBe(true);
    expect(m.policy('Main.TEX.SWP')).toBe('artefact');
  });

  it('agrees with the ignore package on many paths (the literal pre-filter is only a shortcut)', async () => {
    const { default: ignore } = await import('ignore');
    const text = 'build/\n*.o\n!keep.o\n/root-only.txt\ndocs/**/draft-*.md\n[Tt]emp*\n';
    const ref = ignore({ ignorecase: false })
      .add([...defaultIgnores])
      .add(text);
    const pm = new PathMatcher({
      useDefaults: true,
      patterns: [],
      ignoreFileText: text,
      policies: [],
    });
    const names = [
      'a.o',
      'keep.o',
      'root-only.txt',
      'Temp1',
      'temp',
      'x.swp',
      'draft-1.md',
      'z~',
      'ok.txt',
      '4913',
      '.#x',
    ];
    const dirs = ['', 'src', 'docs/a', 'build', 'src/build', 'node_modules/x', 'docs/a/b'];
    for (const d of dirs) {
      for (const n of names) {
        const rel = d ? `${d}/${n}` : n;
        expect(pm.policy(rel) === 'ignore', rel).toBe(ref.ignores(rel));
      }
    }
  });
});

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

it('respects the ignore file while watching and scanning', async () => {
  h = new Harness();
  mkdirSync(join(h.root, 'build'), { recursive: true });
  mkdirSync(join(h.root, '.git'), { recursive: true });
  writeFileSync(join(h.root, '.cpignore'), 'build/\n*.aux\n');
  writeFileSync(join(h.root, 'build/old.o'), 'x');
  writeFileSync(join(h.root, 'paper.aux'), 'x');
  writeFileSync(join(h.root, '.git/HEAD'), 'ref');
  const w = await h.start({ ignoreFile: '.cpignore' });
  await w.idle();
  expect(h.events.map((e) => e.path)).toEqual(['.cpignore']);
  h.clear();
  writeFileSync(join(h.root, 'build/new.o'), 'y');
  writeFileSync(join(h.root, 'main.aux'), 'y');
  writeFileSync(join(h.root, 'main.tex.swp'), 'y');
  writeFileSync(join(h.root, '.git/index'), 'y');
  writeFileSync(join(h.root, 'main.tex'), 'y');
  await waitFor(() => h.events.length > 0, 'main.tex');
  await sleep(200);
  await w.idle();
  expect(h.events.map((e) => e.path)).toEqual(['main.tex']);
  // The stamp file lives outside the root here; build/ was never watched.
  expect(w.stats().watches).toBe(1);
});

it("reports a real pdflatex -recorder run's files, never its recorder file while it runs", async () => {
  await ensureTex(); // installed once per machine, whichever test file comes first
  h = new Harness();
  mkdirSync(h.root, { recursive: true });
  writeFileSync(
    join(h.root, 'main.tex'),
    '\\documentclass{article}\\begin{document}Hi.\\end{document}\n',
  );
  const w = await h.start();
  await w.idle();
  h.clear();
  // pdfTeX writes pdflatex<pid>.fls for its whole run (over 100 ms: many quiet windows) and
  // renames it to main.fls as it ends.
  // Spawned, not spawnSync: the watcher shares this process's event loop.
  const p = spawn(
    'pdflatex',
    ['-interaction=nonstopmode', '-halt-on-error', '-recorder', 'main.tex'],
    {
      cwd: h.root,
      stdio: 'ignore',
    },
  );
  const code = await new Promise<number | null>((res) => p.on('exit', res));
  expect(code).toBe(0);
  await waitFor(() => h.events.some((e) => e.path === 'main.pdf'), 'main.pdf');
  await sleep(300);
  await w.idle();
  const paths = h.events.map((e) => e.path);
  expect(paths).toEqual(expect.arrayContaining(['main.pdf', 'main.aux', 'main.fls']));
  expect(paths.filter((p) => /^pdflatex\d+\.fls$/.test(p))).toEqual([]);
  expect(h.events.filter((e) => e.kind === 'moved')).toEqual([]);
}, 900_000);

it('ignores its own stamp file when it lives under the root', async () => {
  h = new Harness();
  mkdirSync(join(h.root, '.cp'), { recursive: true });
  writeFileSync(join(h.root, 'a'), 'a');
  const w = await h.start({ stampFile: join(h.root, '.cp/stamps'), persistDelayMs: 10 });
  await w.idle();
  writeFileSync(join(h.root, 'b'), 'b');
  await waitFor(() => h.events.length === 2, 'b');
  await sleep(300);
  await w.idle();
  expect(h.events.map((e) => e.path)).toEqual(['a', 'b']);
});
