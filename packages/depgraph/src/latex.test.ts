import { defined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { DependencyManager } from './dependency-manager.js';
import { drive, sha } from './test-harness.js';
import type { TaskInstance } from './types.js';

const pdflatex = {
  id: 'pdflatex',
  inputs: ['{stem}.tex'],
  optionalInputs: ['{stem}.aux', '{stem}.bbl', '{stem}.toc'],
  outputs: ['{stem}.pdf', '{stem}.aux', '{stem}.toc'],
};
const bibtex = { id: 'bibtex', inputs: ['{stem}.aux'], outputs: ['{stem}.bbl'] };

/** Content by hash, so the toy tools can read what their inputs say. */
const store = new Map<string, string>();
const put = (content: string) => {
  const h = sha(content);
  store.set(h, content);
  return h;
};

/**
 * A toy LaTeX. The .aux lists the citations of the .tex and whether they were resolved (a .bbl
 * was read); bibtex turns the citation list into a .bbl; the .pdf shows what the .aux said.
 */
function latex(task: TaskInstance) {
  const stem = task.stem;
  const read = (p: string) => {
    const h = task.inputHashes[p];
    return h === undefined ? undefined : store.get(h);
  };
  if (task.ruleId === 'bibtex') {
    const cites = defined(read(`${stem}.aux`)).split('|')[0];
    return { outputs: { [`${stem}.bbl`]: put(`bbl:${cites}`) } };
  }
  const tex = defined(read(`${stem}.tex`));
  const bbl = read(`${stem}.bbl`);
  return {
    outputs: {
      [`${stem}.aux`]: put(`cites:${tex}|resolved:${bbl !== undefined}`),
      [`${stem}.pdf`]: put(`pdf:${tex}:${read(`${stem}.aux`) ?? 'no aux'}`),
      [`${stem}.toc`]: put(`toc:${tex}`),
    },
  };
}

describe('LaTeX-like doc/aux/bib/toc cycle', () => {
  it('instantiates pdflatex and bibtex as one cyclic component, pdflatex first', () => {
    const dm = new DependencyManager();
    dm.addRule(pdflatex);
    dm.addRule(bibtex);
    const r = dm.setArtefact('paper/main.tex', put('v1'));
    expect(r.added.sort()).toEqual(['bibtex:paper/main', 'pdflatex:paper/main']);
    const plan = dm.plan();
    expect(plan.components).toHaveLength(1);
    expect(defined(plan.components[0], 'plan.components[0]').cyclic).toBe(true);
    expect(defined(plan.components[0], 'plan.components[0]').tasks.map((t) => t.id)).toEqual([
      'pdflatex:paper/main',
      'bibtex:paper/main',
    ]);
    expect(plan.ready).toEqual(['pdflatex:paper/main']);
  });

  it('reaches a fixpoint in passes, running each task at most once per pass', () => {
    const dm = new DependencyManager();
    dm.addRule(pdflatex);
    dm.addRule(bibtex);
    dm.setArtefact('paper/main.tex', put('v1'));
    const runs = drive(dm, latex);
    expect(runs.map((r) => `${r.task.pass}:${r.task.ruleId}`)).toEqual([
      '1:pdflatex',
      '1:bibtex',
      '2:pdflatex',
      '2:bibtex',
      '3:pdflatex',
    ]);
    const s = dm.status();
    expect(s).toMatchObject({ idle: true, dirty: [], running: [], nonConvergent: [] });
    expect(dm.artefactState('paper/main.pdf')).toBe('up_to_date');
    expect(dm.artefactState('paper/main.tex')).toBe('source');
    // The first pdflatex ran before any .aux existed: optional inputs are given only if present.
    expect(defined(runs[0], 'runs[0]').task.inputs).toEqual(['paper/main.tex']);
    expect(defined(runs[2], 'runs[2]').task.inputs).toEqual([
      'paper/main.tex',
      'paper/main.aux',
      'paper/main.bbl',
      'paper/main.toc',
    ]);
  });

  it('after an edit, rebuilds and explains why the pdf is dirty', () => {
    const dm = new DependencyManager();
    dm.addRule(pdflatex);
    dm.addRule(bibtex);
    dm.setArtefact('paper/main.tex', put('v1'));
    drive(dm, latex);
    const r = dm.setArtefact('paper/main.tex', put('v2'));
    expect(r.nowDirty).toEqual(['pdflatex:paper/main']);
    expect(dm.artefactState('paper/main.pdf')).toBe('dirty');
    expect(dm.artefactState('paper/main.bbl')).toBe('dirty');
    expect(dm.why('paper/main.pdf')).toEqual([
      {
        artefact: 'paper/main.tex',
        because: expect.stringMatching(/^changed since pdflatex:paper\/main last ran/),
      },
      {
        artefact: 'paper/main.pdf',
        because: expect.stringMatching(/^input paper\/main.tex of pdflatex:paper\/main changed/),
      },
    ]);
    expect(dm.why('paper/main.bbl').map((s) => s.artefact)).toEqual([
      'paper/main.tex',
      'paper/main.aux',
      'paper/main.bbl',
    ]);
    const runs = drive(dm, latex);
    // bibtex's .bbl changes (new citations), the .aux it then feeds back is stable: 3 runs.
    expect(runs.map((x) => `${x.task.pass}:${x.task.ruleId}`)).toEqual([
      '1:pdflatex',
      '1:bibtex',
      '2:pdflatex',
    ]);
    expect(dm.why('paper/main.pdf')).toEqual([]);
  });

  it('an edit to the .toc alone does not reach bibtex (early cutoff on .aux)', () => {
    const dm = new DependencyManager();
    dm.addRule(pdflatex);
    dm.addRule(bibtex);
    dm.setArtefact('paper/main.tex', put('v1'));
    drive(dm, latex);
    const toc = defined(
      defined(dm.toJSON().artefacts.find((a) => a.path === 'paper/main.toc')).hash,
    );
    // Someone touches the toc: pdflatex rewrites the same toc, aux and pdf; bibtex stays clean.
    dm.setArtefact('paper/main.toc', put('garbage'));
    const runs = drive(dm, latex);
    // The toc is pdflatex's own input, so it runs a second pass to confirm; bibtex never runs.
    expect(runs.map((r) => `${r.task.pass}:${r.task.id}`)).toEqual([
      '1:pdflatex:paper/main',
      '2:pdflatex:paper/main',
    ]);
    expect(defined(runs[1]?.result, 'runs[1].result').changed).toEqual([]);
    expect(defined(runs[0]?.result, 'runs[0].result').cutoff.sort()).toEqual([
      'paper/main.aux',
      'paper/main.pdf',
    ]);
    expect(defined(runs[0]?.result, 'runs[0].result').changed).toEqual(['paper/main.toc']);
    expect(defined(dm.toJSON().artefacts.find((a) => a.path === 'paper/main.toc')).hash).toBe(toc);
    expect(dm.status().dirty).toEqual([]);
  });
});
