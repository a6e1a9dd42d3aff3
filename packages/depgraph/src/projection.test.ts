import { defined } from '@computepods/testkit';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cutoffDigest } from './cutoff.js';
import { DependencyManager } from './dependency-manager.js';
import { lineProjectionHasher, projectionKey, projectLines } from './projection.js';
import { drive, sha } from './test-harness.js';
import type { TaskInstance } from './types.js';

const CITES = '^[^\\\\]*\\\\(citation|bibdata|bibstyle|@input)\\{';
const KEY = projectionKey({ lines: CITES });
const pdflatex = {
  id: 'pdflatex',
  inputs: ['{stem}.tex'],
  optionalInputs: ['{stem}.aux', '{stem}.bbl', '{stem}.toc'],
  outputs: ['{stem}.pdf', '{stem}.aux', '{stem}.toc'],
};
const bibtex = {
  id: 'bibtex',
  inputs: ['{stem}.aux'],
  outputs: ['{stem}.bbl'],
  projections: { '{stem}.aux': KEY },
};

const store = new Map<string, string>();
const put = (content: string) => {
  const h = sha(content);
  store.set(h, content);
  return h;
};

/**
 * A toy LaTeX whose .aux has LaTeX's lines: \citation for each cite of the .tex, \bibcite once
 * the .bbl was read, \newlabel for each label. The toy bibtex reads only the \citation lines, as
 * the real one does; pdflatex reports the .aux's projection as a chef would.
 */
function latex(task: TaskInstance, reportProjections = true) {
  const stem = task.stem;
  const read = (p: string) => {
    const h = task.inputHashes[p];
    return h === undefined ? undefined : store.get(h);
  };
  if (task.ruleId === 'bibtex') {
    const cites = defined(read(`${stem}.aux`))
      .split('\n')
      .filter((l) => l.startsWith('\\citation'));
    return { outputs: { [`${stem}.bbl`]: put(`bbl:${cites.join(',')}`) } };
  }
  const [cites, labels] = defined(read(`${stem}.tex`)).split('|') as [string, string];
  const bbl = read(`${stem}.bbl`);
  const aux = [
    ...cites.split(',').map((c) => `\\citation{${c}}`),
    '\\bibdata{refs}',
    ...(bbl ? cites.split(',').map((c) => `\\bibcite{${c}}{1}`) : []),
    ...labels.split(',').map((l) => `\\newlabel{${l}}{{1}{1}}`),
    '',
  ].join('\n');
  const auxHash = put(aux);
  return {
    outputs: {
      [`${stem}.aux`]: auxHash,
      [`${stem}.pdf`]: put(`pdf:${cites}:${labels}:${read(`${stem}.aux`) ?? ''}:${bbl ?? ''}`),
      [`${stem}.toc`]: put(`toc:${labels}`),
    },
    ...(reportProjections
      ? { projections: { [`${stem}.aux`]: { [KEY]: projectLines(aux, CITES) } } }
      : {}),
  };
}
const passes = (runs: ReturnType<typeof drive>) =>
  runs.map((r) => `${r.task.pass}:${r.task.ruleId}`);

describe('input projections', () => {
  it('bibtex runs once from clean and not at all for a new label, with the .aux projected', () => {
    const dm = new DependencyManager();
    dm.addRule(pdflatex);
    dm.addRule(bibtex);
    dm.setArtefact('p/main.tex', put('knuth|intro'));
    expect(passes(drive(dm, (t) => latex(t)))).toEqual([
      '1:pdflatex',
      '1:bibtex',
      '2:pdflatex',
      '3:pdflatex',
    ]);
    dm.setArtefact('p/main.tex', put('knuth|intro,more'));
    expect(passes(drive(dm, (t) => latex(t)))).toEqual(['1:pdflatex', '2:pdflatex']);
    // A new citation changes the projection: bibtex reads it.
    dm.setArtefact('p/main.tex', put('knuth,lamport|intro,more'));
    expect(passes(drive(dm, (t) => latex(t)))).toContain('1:bibtex');
    expect(dm.status()).toMatchObject({ idle: true, dirty: [] });
  });

  it('without a known projection the whole hash decides (never a missed change)', () => {
    const dm = new DependencyManager();
    dm.addRule(pdflatex);
    dm.addRule(bibtex);
    dm.setArtefact('p/main.tex', put('knuth|intro'));
    expect(passes(drive(dm, (t) => latex(t, false)))).toEqual([
      '1:pdflatex',
      '1:bibtex',
      '2:pdflatex',
      '2:bibtex',
      '3:pdflatex',
    ]);
  });

  it('records the projection a run reports for its inputs, and keeps projections across fromState', () => {
    const dm = new DependencyManager();
    dm.addRule(pdflatex);
    dm.addRule(bibtex);
    dm.setArtefact('p/main.tex', put('knuth|intro'));
    const withInputs = (t: TaskInstance) => {
      if (t.ruleId !== 'bibtex') return latex(t, false);
      const aux = defined(store.get(defined(t.inputHashes['p/main.aux'])));
      return {
        ...latex(t, false),
        inputProjections: { 'p/main.aux': { [KEY]: projectLines(aux, CITES) } },
      };
    };
    drive(dm, withInputs);
    const trace = defined(dm.exportState().traces['bibtex:p/main']);
    const aux = defined(
      store.get(defined(defined(dm.toJSON().artefacts.find((a) => a.path === 'p/main.aux')).hash)),
    );
    expect(trace.inputs['p/main.aux']).toBe(projectLines(aux, CITES));
    // A new label: the .aux's projection is learned from pdflatex now, and bibtex stays clean,
    // in a graph rebuilt from the exported state too.
    dm.setArtefact('p/main.tex', put('knuth|intro,x'));
    expect(passes(drive(dm, (t) => latex(t)))).toEqual(['1:pdflatex', '2:pdflatex']);
    const again = DependencyManager.fromState(dm.exportState());
    expect(again.status().dirty).toEqual([]);
  });

  it("learns a source's projection from the run that read it, and settles (no rerun loop)", () => {
    const KEYS = projectionKey({ lines: '^key=' });
    const dm = new DependencyManager();
    dm.addRule({
      id: 'keys',
      inputs: ['{stem}.cfg'],
      outputs: ['{stem}.keys'],
      projections: { '{stem}.cfg': KEYS },
    });
    dm.addRule({ id: 'count', inputs: ['{stem}.keys'], outputs: ['{stem}.n'] });
    const step = (
      t: TaskInstance,
    ): {
      outputs: Record<string, string>;
      inputProjections?: Record<string, Record<string, string>>;
    } => {
      const text = defined(
        store.get(defined(Object.values(t.inputHashes)[0], 'Object.values(t.inputHashes)[0]')),
      );
      if (t.ruleId === 'count') return { outputs: { 'a.n': put(`n:${text}`) } };
      const keys = text
        .split('\n')
        .filter((l) => l.startsWith('key='))
        .join('\n');
      return {
        outputs: { 'a.keys': put(keys) },
        inputProjections: { 'a.cfg': { [KEYS]: projectLines(text, '^key=') } },
      };
    };
    dm.setArtefact('a.cfg', put('key=1\n# comment\n'));
    expect(passes(drive(dm, step))).toEqual(['1:keys', '1:count']);
    // The projection of these bytes is known now: nothing is dirty.
    expect(dm.status().dirty).toEqual([]);
    // An edit outside the key= lines: the graph cannot know its projection (the watcher reports
    // hashes only), so keys runs, writes the same .keys, and count is cut off.
    dm.setArtefact('a.cfg', put('key=1\n# another\n'));
    const runs = drive(dm, step);
    expect(passes(runs)).toEqual(['1:keys']);
    expect(defined(runs[0]?.result, 'runs[0].result').cutoff).toEqual(['a.keys']);
    expect(dm.status()).toMatchObject({ idle: true, dirty: [], nonConvergent: [] });
  });

  it('refuses a projection on a path that is not an input', () => {
    const dm = new DependencyManager();
    expect(() => dm.addRule({ ...bibtex, projections: { '{stem}.bbl': KEY } })).toThrow(
      /projection on "\{stem\}.bbl", which is not one of its inputs/,
    );
  });

  it('line projections hash the same fed in any chunks, and differ from the plain hash', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.constantFrom('\\citation{a}\n', '\\newlabel{x}\r\n', 'text', '\n', '\\bibdata{r}'),
        ),
        fc.array(fc.nat(), { maxLength: 5 }),
        (pieces, cuts) => {
          const text = pieces.join('');
          const bytes = Buffer.from(text);
          const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const h = lineProjectionHasher(KEY, CITES);
          let from = 0;
          for (const c of at) {
            h.update(bytes.subarray(from, c));
            from = c;
          }
          h.update(bytes.subarray(from));
          expect(h.digest()).toBe(projectLines(text, CITES));
          expect(projectLines(text, CITES)).not.toBe(cutoffDigest(text, []));
        },
      ),
    );
  });
});
