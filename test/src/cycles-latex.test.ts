import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buckets, TaskTrace } from '@computepods/protocol';
import { ensureTex, runCommand, sha256 } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, mdStatus, settled } from './watch-builds.js';

/** References, a citation and a table of contents: the three feedback loops of LaTeX. */
const MAIN_TEX = String.raw`\documentclass{article}
\begin{document}
\tableofcontents
\section{Intro}\label{sec:intro}
See Section~\ref{sec:more} and \cite{knuth}.
\input{intro}
\section{More}\label{sec:more}
Back to Section~\ref{sec:intro}.
\bibliographystyle{plain}
\bibliography{refs}
\end{document}
`;
const REFS_BIB =
  '@book{knuth, author={Donald Knuth}, title={The TeXbook}, publisher={Addison-Wesley}, year={1984}}\n';
const PRODUCTS = ['main.pdf', 'main.aux', 'main.toc', 'main.bbl'];

/**
 * LaTeX's cycles over real processes: the builtin LaTeX chef driven to a fixpoint by MajorDomo,
 * and MajorDomo killed -9 in the middle of one. Apart from cycles.test.ts because it needs TeX,
 * which the beforeAll installs when missing: if that fails, only these tests are lost.
 */
describe('cycles with LaTeX: fixpoint like latexmk, discovery, crash mid-cycle', () => {
  let stack: Stack;
  let log: BuildLog;
  const fileSha = (p: string) => sha256(readFileSync(join(stack.workspace, p)));
  const writeDoc = (dir: string) => {
    stack.write(`${dir}/main.tex`, MAIN_TEX);
    stack.write(`${dir}/intro.tex`, 'Some introduction text.\n');
    stack.write(`${dir}/refs.bib`, REFS_BIB);
  };
  const upToDate = (path: string) => (s: Awaited<ReturnType<typeof mdStatus>>) =>
    s.artefacts.some((a) => a.path === path && a.status === 'up_to_date');

  beforeAll(async () => {
    await ensureTex();
    stack = await Stack.start('cycles-latex');
    await Promise.all([
      stack.start('majordomo'),
      stack.start('runner'),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'latex', CP_CHEF_DEFINITION: 'latex' }, 'chef-latex'),
    ]);
    log = await BuildLog.start(stack.bus);
  }, 600_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('converges a document with references, citations and a table of contents in 3 pdflatex passes and 1 bibtex, latexmk in 3 and 2', async () => {
    writeDoc('paper');
    await settled(stack.bus, upToDate('paper/main.pdf'), 90_000, () => stack.logs());
    // Pass 1 has no .aux: refs and citations are undefined, bibtex makes the .bbl. Pass 2 reads
    // them and writes \bibcite into the .aux. bibtex reads only the .aux's \citation, \bibdata,
    // \bibstyle lines (its projection), which did not change: it does not run again (latexmk
    // runs it a second time for the same .bbl). Pass 3 sees the .aux unchanged: the fixpoint.
    expect(log.passes('paper/main')).toEqual([
      '1:pdflatex',
      '1:bibtex',
      '2:pdflatex',
      '3:pdflatex',
    ]);
    const pdf = readFileSync(join(stack.workspace, 'paper/main.pdf'));
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const aux = readFileSync(join(stack.workspace, 'paper/main.aux'), 'utf8');
    expect(aux).toMatch(/\\bibcite\{knuth\}\{1\}/);
    expect((await stack.artefact('paper/main.pdf'))?.sha256).toBe(sha256(pdf));

    // Dependencies found while building: \input{intro} from the .fls, refs.bib from \bibdata.
    const traces = await stack.bus.kv(buckets.traces(stack.project), TaskTrace);
    expect((await traces.get('pdflatex:paper/main'))?.value.discovered).toEqual([
      'paper/intro.tex',
    ]);
    expect((await traces.get('bibtex:paper/main'))?.value.discovered).toEqual(['paper/refs.bib']);

    // What pdflatex and bibtex write beside their outputs is theirs, not a source.
    for (const [file, producer] of [
      ['paper/main.fls', 'pdflatex:paper/main'],
      ['paper/main.blg', 'bibtex:paper/main'],
    ] as const)
      expect(await stack.until(file, () => true)).toMatchObject({
        producer,
        auxiliary: true,
        status: 'up_to_date',
      });

    // latexmk on a copy: the same number of pdflatex runs, and the same bytes.
    const lm = stack.dir.join('latexmk');
    mkdirSync(lm);
    for (const f of ['main.tex', 'intro.tex', 'refs.bib'])
      cpSync(join(stack.workspace, 'paper', f), join(lm, f));
    const r = await runCommand('latexmk', ['-pdf', '-interaction=nonstopmode', 'main.tex'], {
      cwd: lm,
      env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(0);
    const runs = (rule: string) =>
      [...(r.stdout + r.stderr).matchAll(new RegExp(`Run number \\d+ of rule '${rule}`, 'g'))]
        .length;
    const ours = log.passes('paper/main').filter((p) => p.endsWith(':pdflatex')).length;
    expect(ours).toBeLessThanOrEqual(runs('pdflatex'));
    expect(runs('pdflatex')).toBe(3);
    expect(runs('bibtex')).toBe(2);
    expect(sha256(readFileSync(join(lm, 'main.pdf')))).toBe(sha256(pdf));
  }, 180_000);

  it("adds a label without running bibtex (its .aux lines did not change), to latexmk's bytes", async () => {
    const from = log.requests.length;
    const before = fileSha('paper/main.pdf');
    const edited = MAIN_TEX.replace(
      '\\bibliographystyle',
      '\\section{Third}\\label{sec:third}\nAs Section~\\ref{sec:third} says.\n\\bibliographystyle',
    );
    expect(edited).not.toBe(MAIN_TEX);
    stack.write('paper/main.tex', edited);
    await settled(
      stack.bus,
      (s) => upToDate('paper/main.pdf')(s) && fileSha('paper/main.pdf') !== before,
      60_000,
      () => stack.logs(),
    );
    // Pass 1 writes the new label and toc line into the .aux and .toc; pass 2 reads them and
    // writes the same again: the fixpoint. The .aux's projection for bibtex is unchanged: no
    // bibtex run at all (latexmk reruns it, below).
    const passes = log.passes('paper/main', from);
    expect(passes).toEqual(['1:pdflatex', '2:pdflatex']);

    const lm = stack.dir.join('latexmk');
    writeFileSync(join(lm, 'main.tex'), edited);
    const r = await runCommand('latexmk', ['-pdf', '-interaction=nonstopmode', 'main.tex'], {
      cwd: lm,
      env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(0);
    const runs = (rule: string) =>
      [...(r.stdout + r.stderr).matchAll(new RegExp(`Run number \\d+ of rule '${rule}`, 'g'))]
        .length;
    expect(runs('bibtex')).toBeGreaterThan(0);
    expect(passes.length).toBeLessThanOrEqual(runs('pdflatex'));
    expect(sha256(readFileSync(join(lm, 'main.pdf')))).toBe(fileSha('paper/main.pdf'));
    stack.write('paper/main.tex', MAIN_TEX);
    await settled(
      stack.bus,
      (s) => upToDate('paper/main.pdf')(s) && fileSha('paper/main.pdf') === before,
      60_000,
      () => stack.logs(),
    );
  }, 180_000);

  it('a restarted MajorDomo requests nothing for the converged paper (it restores the .aux projection)', async () => {
    const from = log.requests.length;
    await stack.kill9('majordomo');
    await stack.start('majordomo');
    await settled(stack.bus, upToDate('paper/main.pdf'), 60_000, () => stack.logs());
    // bibtex's trace holds the projection of an .aux it last read several edits ago: without the
    // projection kept in the .aux's artefact record it would be dirty, and requested.
    expect(log.passes('paper/main', from)).toEqual([]);
  }, 120_000);

  it('rebuilds on an edit to an \\input{} file found by discovery, in one pass when the .aux holds', async () => {
    const from = log.requests.length;
    const before = fileSha('paper/main.pdf');
    stack.write('paper/intro.tex', 'Some longer introduction text, edited.\n');
    await settled(
      stack.bus,
      (s) => upToDate('paper/main.pdf')(s) && fileSha('paper/main.pdf') !== before,
      60_000,
      () => stack.logs(),
    );
    // Labels, citations and the toc are unchanged: the .aux hashes the same and bibtex stays put.
    expect(log.passes('paper/main', from)).toEqual(['1:pdflatex']);
  });

  it('converges after MajorDomo is killed -9 mid-cycle, to the same bytes as a build from scratch', async () => {
    const from = log.requests.length;
    writeDoc('crash');
    // Kill once pass 2 is under way: pass 1's .aux is recorded, the fixpoint is not reached.
    const end = performance.now() + 60_000;
    while (!log.requestsFor('pdflatex:crash/main', from).some((r) => r.pass >= 2)) {
      if (performance.now() > end) throw new Error(`pass 2 never started\n${stack.logs()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await stack.kill9('majordomo');
    await stack.start('majordomo');
    await settled(stack.bus, upToDate('crash/main.pdf'), 90_000, () => stack.logs());

    writeDoc('fresh');
    await settled(stack.bus, upToDate('fresh/main.pdf'), 90_000, () => stack.logs());
    for (const f of PRODUCTS) {
      expect({ f, sha: fileSha(`crash/${f}`) }).toEqual({ f, sha: fileSha(`fresh/${f}`) });
      expect((await stack.artefact(`crash/${f}`))?.sha256).toBe(fileSha(`crash/${f}`));
    }
    const s = await mdStatus(stack.bus);
    expect(s.artefacts.filter((a) => a.path.startsWith('crash/') && a.producer)).toEqual(
      expect.arrayContaining(
        PRODUCTS.map((f) => expect.objectContaining({ path: `crash/${f}`, status: 'up_to_date' })),
      ),
    );
    expect(readdirSync(join(stack.workspace, 'crash')).sort()).toEqual(
      readdirSync(join(stack.workspace, 'fresh')).sort(),
    );
  }, 240_000);
});
