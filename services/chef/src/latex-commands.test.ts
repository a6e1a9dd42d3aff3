import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { defined, ensureTex } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillCommand } from './command.js';
import { loadDefinition } from './definition.js';

const latex = loadDefinition(join(import.meta.dirname, '../chefs/latex.yaml'));
const rule = (id: string) =>
  defined(
    latex.rules.find((r) => r.id === id),
    `the ${id} rule`,
  );
const root = mkdtempSync(join(tmpdir(), 'cp-latex-commands-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const DOC = String.raw`\documentclass{article}
\begin{document}
\tableofcontents
\section{Intro} See \cite{knuth}.
\bibliographystyle{plain}
\bibliography{refs}
\end{document}
`;
const BIB =
  '@book{knuth, author={Donald Knuth}, title={The TeXbook}, publisher={Addison-Wesley}, year={1984}}\n';

/** Runs rule `id`'s command for `stem` as the runner does: `sh -c`, in the workspace root. */
function run(
  ws: string,
  id: 'pdflatex' | 'bibtex',
  stem: string,
): { code: number | null; stderr: string } {
  const r = rule(id);
  const command = fillCommand(r.command, {
    stem,
    inputs: [id === 'pdflatex' ? `${stem}.tex` : `${stem}.aux`],
    outputs: id === 'pdflatex' ? [`${stem}.pdf`, `${stem}.aux`, `${stem}.toc`] : [`${stem}.bbl`],
  });
  const p = spawnSync('sh', ['-c', command], {
    cwd: ws,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
  });
  return { code: p.status, stderr: p.stderr };
}

/**
 * The LaTeX chef's commands with real pdflatex and bibtex: each runs in its document's folder,
 * taken from {in0} and {stem} by the shell itself (no dirname/basename processes), at the
 * workspace's top, in a sub-folder, and under a folder whose name starts with '-'.
 */
describe('latex chef commands', () => {
  // Real pdflatex and bibtex: installed once per machine, whichever test file comes first.
  beforeAll(ensureTex, 900_000);

  it.each(['main', 'paper/main', '-x/sub/main'])(
    '%s: pdflatex and bibtex write beside the document',
    (stem) => {
      const ws = mkdtempSync(join(root, 'ws-'));
      const at = (ext: string) => join(ws, `${stem}.${ext}`);
      mkdirSync(dirname(at('tex')), { recursive: true });
      writeFileSync(at('tex'), DOC);
      writeFileSync(join(dirname(at('tex')), 'refs.bib'), BIB);
      expect(run(ws, 'pdflatex', stem)).toMatchObject({ code: 0 });
      for (const ext of ['pdf', 'aux', 'toc']) expect(existsSync(at(ext)), ext).toBe(true);
      expect(run(ws, 'bibtex', stem)).toMatchObject({ code: 0 });
      expect(readFileSync(at('bbl'), 'utf8')).toContain('The TeXbook');
      // Nothing landed at the workspace's top but a top-level document's own files.
      if (stem.includes('/')) expect(readdirSync(ws).sort()).toEqual([stem.split('/')[0]]);
    },
  );

  it('finds \\documentclass where grep would: after \\pdfoutput=1, after 150 comment lines (past the shell loop), on a last line with no newline', () => {
    const ws = mkdtempSync(join(root, 'ws-'));
    const header = Array.from({ length: 150 }, (_, n) => `% licence line ${n}`).join('\n');
    const docs = {
      arxiv: `\\pdfoutput=1\n${DOC}`,
      late: `${header}\n${DOC}`,
    };
    for (const [stem, text] of Object.entries(docs)) {
      writeFileSync(join(ws, `${stem}.tex`), text);
      expect(run(ws, 'pdflatex', stem), stem).toMatchObject({ code: 0 });
      expect(existsSync(join(ws, `${stem}.pdf`)), stem).toBe(true);
    }
    // A last line without its newline is read too (pdflatex then fails on the document itself).
    writeFileSync(join(ws, 'short.tex'), '% one line\n\\documentclass{article}');
    const short = run(ws, 'pdflatex', 'short');
    expect(short.stderr).not.toContain('has no \\documentclass');
    expect(existsSync(join(ws, 'short.log'))).toBe(true);
  });

  it('a long fragment (past the shell loop) fails as a short one does', () => {
    const ws = mkdtempSync(join(root, 'ws-'));
    const body = Array.from({ length: 150 }, (_, n) => `Paragraph ${n} of a chapter.`).join('\n');
    writeFileSync(join(ws, 'long.tex'), `${body}\n`);
    const r = run(ws, 'pdflatex', 'long');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('long.tex has no \\documentclass');
    expect(existsSync(join(ws, 'long.log'))).toBe(false);
  });

  it('a fragment without \\documentclass fails with its reason, and pdflatex never runs', () => {
    const ws = mkdtempSync(join(root, 'ws-'));
    mkdirSync(join(ws, 'frag'), { recursive: true });
    writeFileSync(join(ws, 'frag/chapter.tex'), 'Just a chapter, for \\input.\n');
    const r = run(ws, 'pdflatex', 'frag/chapter');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('chapter.tex has no \\documentclass');
    expect(existsSync(join(ws, 'frag/chapter.log'))).toBe(false);
  });
});
