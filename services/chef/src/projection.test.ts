import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectedHasher, projectionKey, projectLines } from '@computepods/depgraph';
import { InputProjection } from '@computepods/protocol';
import { defined, ensureTex } from '@computepods/testkit';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillCommand } from './command.js';
import { loadDefinition } from './definition.js';
import { projectFile, projectionsOf } from './projection.js';
import { SMALL_FILE_MAX } from './small-file.js';

const dir = mkdtempSync(join(tmpdir(), 'cp-projection-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const latex = loadDefinition(join(import.meta.dirname, '../chefs/latex.yaml'));
const bibtexRule = defined(
  latex.rules.find((r) => r.id === 'bibtex'),
  'the bibtex rule',
);
const auxProjection = defined(bibtexRule.projections[0], "the bibtex rule's projection");

async function projected(text: string, spec: InputProjection): Promise<string> {
  const file = join(dir, 'in.txt');
  writeFileSync(file, text);
  const r = await projectFile(file, spec);
  if (!('sha256' in r)) throw new Error(r.error);
  return r.sha256;
}

/** Runs the LaTeX chef's own bibtex command on `aux` beside refs.bib: its .bbl and exit status. */
function bibtex(aux: string): { code: number | null; bbl: string | undefined } {
  const run = mkdtempSync(join(dir, 'bib-'));
  writeFileSync(join(run, 'main.aux'), aux);
  writeFileSync(join(run, 'refs.bib'), BIB);
  const command = fillCommand(bibtexRule.command, {
    stem: 'main',
    inputs: ['main.aux'],
    outputs: ['main.bbl'],
  });
  const r = spawnSync('sh', ['-c', command], { cwd: run, stdio: 'ignore', timeout: 30_000 });
  const bblPath = join(run, 'main.bbl');
  const bbl = existsSync(bblPath) ? readFileSync(bblPath, 'utf8') : undefined;
  rmSync(run, { recursive: true, force: true });
  return { code: r.status, bbl };
}

const KEYS = ['knuth', 'lamport', 'dijkstra', 'nokey'];
const BIB = [
  '@book{knuth, author={Donald Knuth}, title={The TeXbook}, publisher={Addison-Wesley}, year={1984}}',
  '@book{lamport, author={Leslie Lamport}, title={LaTeX}, publisher={Addison-Wesley}, year={1994}}',
  '@article{dijkstra, author={Edsger Dijkstra}, title={Go To Statement Considered Harmful}, journal={CACM}, year={1968}}',
  '',
].join('\n');

/** Lines of the kinds a real .aux holds: those bibtex reads and those it does not. */
const auxLine = fc.oneof(
  fc.constantFrom(...KEYS).map((k) => `\\citation{${k}}`),
  fc.constantFrom('\\bibdata{refs}', '\\bibstyle{plain}', '\\bibstyle{alpha}', '\\citation{*}'),
  fc.constantFrom(...KEYS).map((k) => `\\bibcite{${k}}{1}`),
  fc.integer({ min: 1, max: 9 }).map((n) => `\\newlabel{sec:${n}}{{${n}}{1}}`),
  fc
    .integer({ min: 1, max: 9 })
    .map((n) => `\\@writefile{toc}{\\contentsline {section}{\\numberline {${n}}S}{1}{}}`),
  fc.constantFrom('\\relax', '\\gdef \\@abspage@last{1}', ''),
);

type Edit =
  | { kind: 'insert'; at: number; line: string }
  | { kind: 'delete'; at: number }
  | { kind: 'replace'; at: number; line: string };
const edit = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), line: auxLine }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), line: auxLine }),
);
function apply(lines: readonly string[], edits: readonly Edit[]): string[] {
  const out = [...lines];
  for (const e of edits) {
    const at = e.at % (out.length + 1);
    if (e.kind === 'insert') out.splice(at, 0, e.line);
    else if (at < out.length) {
      if (e.kind === 'delete') out.splice(at, 1);
      else out[at] = e.line;
    }
  }
  return out;
}
const text = (lines: readonly string[]) => `${lines.join('\n')}\n`;

describe('input projections', () => {
  // Real pdflatex and bibtex: installed once per machine, whichever test file comes first.
  beforeAll(ensureTex, 900_000);

  it('never hide a change bibtex reads: equal .aux projections give equal .bbl (real bibtex)', async () => {
    execFileSync('bibtex', ['--version'], { stdio: 'ignore' });
    let same = 0;
    let differ = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(auxLine, { minLength: 1, maxLength: 12 }),
        fc.array(edit, { minLength: 1, maxLength: 3 }),
        async (lines, edits) => {
          const before = text(['\\relax', ...lines, '\\bibdata{refs}', '\\bibstyle{plain}']);
          const after = text(
            apply(['\\relax', ...lines, '\\bibdata{refs}', '\\bibstyle{plain}'], edits),
          );
          if (
            (await projected(before, auxProjection)) !== (await projected(after, auxProjection))
          ) {
            differ++;
            return;
          }
          same++;
          expect(bibtex(after)).toEqual(bibtex(before));
        },
      ),
      { numRuns: 60, seed: 15 },
    );
    // Not vacuous: many edits leave what bibtex reads alone, and many do not.
    expect(same).toBeGreaterThan(10);
    expect(differ).toBeGreaterThan(10);
  }, 300_000);

  it('never hide a change a toy step reads: a command projection (sort -u) and a step reading the set of lines', async () => {
    const spec = InputProjection.parse({ input: '{stem}.txt', command: ['sort', '-u'] });
    const step = (t: string) => [...new Set(t.split('\n'))].sort().join('|');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('a', 'b', 'c', 'a b', ''), { maxLength: 8 }),
        fc.array(edit, { minLength: 1, maxLength: 3 }),
        async (lines, edits) => {
          const before = text(lines);
          const after = text(
            apply(
              lines,
              edits.map((e) => ('line' in e ? { ...e, line: e.line.length % 2 ? 'a' : 'b' } : e)),
            ),
          );
          if ((await projected(before, spec)) === (await projected(after, spec)))
            expect(step(after)).toBe(step(before));
        },
      ),
      { numRuns: 40, seed: 15 },
    );
  }, 120_000);

  it('a line filter keeps exactly the lines bibtex acts on, and a command runs without a shell', async () => {
    const aux = '\\relax\n\\citation{knuth}\n\\bibdata{refs}\n';
    expect(
      await projected(`${aux}\\newlabel{x}{{1}{1}}\n\\bibcite{knuth}{1}\n`, auxProjection),
    ).toBe(await projected(aux, auxProjection));
    expect(await projected(`${aux}\\citation{lamport}\n`, auxProjection)).not.toBe(
      await projected(aux, auxProjection),
    );
    // "$HOME" reaches echo as a literal argument: no shell expands it.
    const echo = InputProjection.parse({ input: 'x', command: ['echo', '$HOME'] });
    const literal = projectedHasher(projectionKey(echo));
    literal.update('$HOME\n');
    expect(await projected('', echo)).toBe(literal.digest());
    // A command that stops reading early is not a failure.
    const head = InputProjection.parse({ input: 'x', command: ['head', '-c', '1'] });
    expect(await projected('x'.repeat(1 << 20), head)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a line filter hashes the same whether the file is read whole (small) or streamed', async () => {
    // Lines of 64 bytes, kept and dropped in turn: a file of SMALL_FILE_MAX bytes is read in
    // the chef's thread, one a line longer through a stream, in 1 MiB chunks.
    const line = (i: number) =>
      `${i % 2 ? '\\citation' : '\\newlabel'}{${String(i).padStart(6, '0')}}`.padEnd(63, '.');
    const text = (n: number) => Array.from({ length: n }, (_, i) => `${line(i)}\n`).join('');
    const n = SMALL_FILE_MAX / 64;
    for (const lines of [1, n, n + 1, 3 * n]) {
      const whole = text(lines);
      expect(await projected(whole, auxProjection), `${lines} lines`).toBe(
        projectLines(whole, defined(auxProjection.lines, 'a line filter')),
      );
    }
  });

  it('gives no projection (the whole file counts) for a failing, slow, chatty or missing command', async () => {
    const file = join(dir, 'bounds.txt');
    writeFileSync(file, 'y\n'.repeat(1000));
    const cases: Array<[unknown, RegExp]> = [
      [{ command: ['false'] }, /exited 1/],
      [{ command: ['sleep', '10'], timeoutMs: 200 }, /took longer than 200 ms/],
      [{ command: ['cat'], maxOutputBytes: 100 }, /wrote more than 100 bytes/],
      [{ command: ['/no/such/program'] }, /cannot run it/],
    ];
    for (const [spec, error] of cases) {
      const r = await projectFile(file, InputProjection.parse({ input: 'x', ...(spec as object) }));
      expect(r).toEqual({ error: expect.stringMatching(error) });
    }
  }, 60_000);

  it('finds which of its rules project an output (bibtex projects pdflatex’s .aux)', () => {
    const specs = projectionsOf(latex.rules, 'paper/main.aux');
    expect([...specs.keys()]).toEqual([projectionKey(auxProjection)]);
    expect(projectionsOf(latex.rules, 'paper/main.pdf').size).toBe(0);
  });
});
