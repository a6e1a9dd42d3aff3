// The LaTeX part of `pnpm bench e2e`: the passes a document with references, citations and a
// table of contents takes to converge (clean, then a new labelled section, then a typo) through
// the services, against latexmk and against the same LaTeX chef without bibtex's .aux projection
// (the code before projections, a second project on the same server).
//
// Like against like: each system first builds the paper once unmeasured (TeX's format, fonts and
// binaries in the page cache, the services' code paths warm: a daemon that keeps running), then
// CP_BENCH_LATEX_ROUNDS rounds (default 3), each on a fresh copy of the paper, the systems' order
// reversed every other round so that neither always runs first; medians are reported.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Bus, quietLogger } from '@computepods/bus';
import { runCommand } from '@computepods/testkit';
import { followBuildRecords } from '../../test/src/build-records.js';
import type { Stack } from '../../test/src/stack.js';
import { BuildLog, settled } from '../../test/src/watch-builds.js';
import { table } from '../lib/report.js';
import { envelopes, median, recordsOf, taskRecords } from './envelopes.js';

/** The states a task record ends in. */
const ENDED: ReadonlySet<string> = new Set(['finished', 'failed', 'killed']);

const ROUNDS = Number(process.env.CP_BENCH_LATEX_ROUNDS ?? 3);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The paper, and the edits made on top of it, the same for every system measured. */
const doc = {
  'main.tex': String.raw`\documentclass{article}
\begin{document}
\tableofcontents
\section{Intro}\label{sec:intro}
See Section~\ref{sec:more} and \cite{knuth}.
\section{More}\label{sec:more}
Back to Section~\ref{sec:intro}.
\bibliographystyle{plain}
\bibliography{refs}
\end{document}
`,
  'refs.bib':
    '@book{knuth, author={Donald Knuth}, title={The TeXbook}, publisher={Addison-Wesley}, year={1984}}\n',
};
// A new labelled section (the .aux and .toc change, not the lines bibtex reads: its .aux
// projection), then a typo (nothing in the .aux or .toc changes).
const texEdits: Array<[string, (t: string) => string]> = [
  [
    'label',
    (t) =>
      t.replace(
        '\\bibliographystyle',
        '\\section{Third}\\label{sec:third}\nAs Section~\\ref{sec:third} says.\n\\bibliographystyle',
      ),
  ],
  ['typo', (t) => t.replace('Back to', 'Bakc to')],
];
const EDITS = ['clean', ...texEdits.map(([n]) => n)];

interface PaperRun {
  readonly pdflatex: number;
  readonly bibtex: number;
  readonly passes: number;
  readonly ms: number;
  /** When the status poll saw it settled (ms; ours only): the figure before the end was the message. */
  readonly settledMs?: number;
  readonly pdf: Buffer;
  /** Where the time went (ms by stage), from the messages of the run; latexmk: none. */
  readonly stages?: Record<LatexStage, number>;
}

/**
 * The stage a message ends, on the timeline of one paper build (its builds run one after
 * another): the time since the message before it is that stage's. `watcher_md` is the edit to
 * the first request (the watcher's quiet window and MajorDomo); `md` MajorDomo from a result to
 * the next request; `chef_in` a request to its task; `task` the task queued to its end recorded
 * by the runner (its record in the tasks bucket: the runner's intake, spawn and end record, and
 * pdflatex or bibtex running; CP_BENCH_STAGES=1 splits the runner's part); `chef_out` the
 * task's end to the result (hashing, discovery); `md_end` the last result to the PDF recorded.
 * Clocked by records, not `task.state` events: the runner holds an event while its task runs.
 */
type LatexStage = 'watcher_md' | 'md' | 'chef_in' | 'task' | 'chef_out' | 'md_end';
const LATEX_STAGES: LatexStage[] = ['watcher_md', 'md', 'chef_in', 'task', 'chef_out', 'md_end'];

/** Timestamps of the build messages of `bus`'s project, for latexStages. */
function timeline(bus: Bus): { events: Array<[number, string]>; stop: () => void } {
  const events: Array<[number, string]> = [];
  const sub = envelopes(bus, (env, b, t) => {
    if (env.type === 'build.requested' || env.type === 'task.submitted') events.push([t, env.type]);
    else if (env.type === 'artefact.states')
      for (const r of recordsOf(b))
        if (r.status === 'up_to_date') events.push([t, `up_to_date:${r.path}`]);
  });
  // A task's end: its runner's record of it.
  const ends = taskRecords(bus, (state, _id, t) => {
    if (ENDED.has(state)) events.push([t, 'task.ended']);
  });
  // A build's result: its chef's put in the builds bucket (MajorDomo hears it there).
  const results = followBuildRecords(bus, () => events.push([performance.now(), 'build.result']));
  return {
    events,
    stop: () => {
      sub.unsubscribe();
      ends.unsubscribe();
      results.unsubscribe();
    },
  };
}

/** ms by stage between t0 and t1 (see LatexStage). */
function latexStages(
  events: ReadonlyArray<[number, string]>,
  t0: number,
  t1: number,
): Record<LatexStage, number> {
  const out = Object.fromEntries(LATEX_STAGES.map((s) => [s, 0])) as Record<LatexStage, number>;
  const stageOf: Record<string, LatexStage> = {
    'task.submitted': 'chef_in',
    'task.ended': 'task',
    'build.result': 'chef_out',
  };
  let prev = t0;
  let first = true;
  for (const [t, kind] of events) {
    if (t < t0 || t > t1) continue;
    if (kind === 'build.requested') {
      out[first ? 'watcher_md' : 'md'] += t - prev;
      first = false;
    } else if (kind.startsWith('up_to_date:')) continue;
    else {
      const stage = stageOf[kind];
      if (stage) out[stage] += t - prev;
    }
    prev = t;
  }
  out.md_end += t1 - prev;
  return out;
}

/** A system that builds the paper in folder `dir`: clean, then each edit. */
type System = (dir: string) => Promise<Map<string, PaperRun>>;

/** The services of `bus`'s project, on `workspace`. */
function services(bus: Bus, workspace: string): System {
  return async (dir) => {
    const log = new BuildLog(bus);
    const tl = timeline(bus);
    await bus.nc.flush();
    const pdfPath = join(workspace, dir, 'main.pdf');
    const pdfKey = `up_to_date:${dir}/main.pdf`;
    const write = (f: string, text: string) => {
      mkdirSync(join(workspace, dir), { recursive: true });
      writeFileSync(join(workspace, dir, f), text);
    };
    const out = new Map<string, PaperRun>();
    const step = async (name: string, edit: () => void, before: Buffer | undefined) => {
      const from = log.requests.length;
      const t0 = performance.now();
      const changed = () => before === undefined || !readFileSync(pdfPath).equals(before);
      edit();
      // The first time MajorDomo says the PDF is up to date with new bytes (from its messages,
      // no request to it), then its status until it is idle: the status is not polled while
      // pdflatex runs (latexmk is not asked anything either).
      const deadline = t0 + 120_000;
      while (!tl.events.some(([t, k]) => k === pdfKey && t >= t0) || !changed()) {
        if (performance.now() > deadline) throw new Error(`${dir}/main.pdf never built (${name})`);
        await sleep(5);
      }
      await settled(
        bus,
        (s) => s.artefacts.some((a) => a.path === `${dir}/main.pdf` && a.status === 'up_to_date'),
        120_000,
      );
      // Done when MajorDomo said the PDF is up to date for the last time (its message), as
      // latexmk is done when it exits: not when the status poll above next noticed.
      const settledAt = performance.now();
      const doneAt =
        tl.events.filter(([t, k]) => k === pdfKey && t >= t0 && t <= settledAt).at(-1)?.[0] ??
        settledAt;
      const ps = log.passes(`${dir}/main`, from);
      const pdf = readFileSync(pdfPath);
      out.set(name, {
        pdflatex: ps.filter((p) => p.endsWith(':pdflatex')).length,
        bibtex: ps.filter((p) => p.endsWith(':bibtex')).length,
        passes: Math.max(...ps.map((p) => Number(p.split(':')[0]))),
        ms: doneAt - t0,
        settledMs: settledAt - t0,
        pdf,
        stages: latexStages(tl.events, t0, doneAt),
      });
      return pdf;
    };
    let pdf = await step(
      'clean',
      () => {
        for (const [f, text] of Object.entries(doc)) write(f, text);
      },
      undefined,
    );
    let tex = doc['main.tex'];
    for (const [name, change] of texEdits) {
      tex = change(tex);
      const text = tex;
      pdf = await step(name, () => write('main.tex', text), pdf);
    }
    log.close();
    tl.stop();
    return out;
  };
}

/** latexmk, each paper in its own folder under `root`. */
function latexmk(root: string): System {
  return async (name) => {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const out = new Map<string, PaperRun>();
    const run = async (edit: string) => {
      const t0 = performance.now();
      const r = await runCommand('latexmk', ['-pdf', '-interaction=nonstopmode', 'main.tex'], {
        cwd: dir,
        env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
        timeoutMs: 120_000,
      });
      const ms = performance.now() - t0;
      const text = r.stdout + r.stderr;
      const runs = (rule: string) =>
        [...text.matchAll(new RegExp(`Run number \\d+ of rule '${rule}`, 'g'))].length;
      // Should latexmk leave an edit unbuilt again (see write above), its own words say why.
      if (edit !== 'clean' && runs('pdflatex') === 0)
        console.log(`latexmk ran no pdflatex for ${name}/${edit}:\n${text.slice(-1500)}`);
      out.set(edit, {
        pdflatex: runs('pdflatex'),
        bibtex: runs('bibtex'),
        passes: runs('pdflatex'),
        ms,
        pdf: readFileSync(join(dir, 'main.pdf')),
      });
    };
    // latexmk takes a file whose mtime second and size are unchanged for unchanged ("Nothing to
    // do for 'main.tex'"): the typo (same size) written in the second of the label edit was not
    // rebuilt at all. So each edit waits, untimed, until 20 ms into a later second than the last
    // write's mtime (the kernel's file times lag Date.now() by a tick: a write just after the
    // second turned still carried the old second); ComputePods, which hashes, is not given that wait.
    let written = 0;
    const write = async (f: string, text: string) => {
      while (Math.floor((Date.now() - 20) / 1000) <= Math.floor(written / 1000)) await sleep(10);
      writeFileSync(join(dir, f), text);
      written = statSync(join(dir, f)).mtimeMs;
    };
    for (const [f, text] of Object.entries(doc)) await write(f, text);
    await run('clean');
    let tex = doc['main.tex'];
    for (const [name, change] of texEdits) {
      tex = change(tex);
      await write('main.tex', tex);
      await run(name);
    }
    return out;
  };
}

/** The same LaTeX chef without bibtex's .aux projection, as a project of its own on the server. */
async function withoutProjections(
  stack: Stack,
  quiet: Record<string, string>,
): Promise<{ system: System; close: () => Promise<void> }> {
  const oldDef = stack.dir.join('latex-no-projection.yaml');
  const builtin = readFileSync(
    join(import.meta.dirname, '../../services/chef/chefs/latex.yaml'),
    'utf8',
  );
  writeFileSync(oldDef, builtin.replace(/\n {4}projections:\n( {6}.*\n| {8}.*\n)+/, '\n'));
  if (readFileSync(oldDef, 'utf8').includes('projections:'))
    throw new Error(`could not take the projection out of ${oldDef}`);
  const oldCreds = await stack.addProject('old');
  const oldWs = stack.dir.join('workspace-old');
  mkdirSync(oldWs);
  const oldEnv = { ...quiet, CP_PROJECT: 'old', CP_WORKSPACE: oldWs };
  await Promise.all([
    stack.start('majordomo', oldEnv, 'majordomo-old'),
    stack.start('runner', oldEnv, 'runner-old'),
    stack.start('fswatcher', oldEnv, 'fswatcher-old'),
    stack.start(
      'chef',
      { ...oldEnv, CP_CHEF: 'latex', CP_CHEF_DEFINITION: oldDef },
      'chef-latex-old',
    ),
  ]);
  const logger = quietLogger('bench-old');
  const oldBus = await Bus.connect({
    servers: stack.nats.url,
    credsFile: oldCreds,
    service: 'bench-old',
    project: 'old',
    logger,
    discoverable: false,
  });
  return { system: services(oldBus, oldWs), close: () => oldBus.close() };
}

type Name = 'cp' | 'cp_noproj' | 'latexmk';
const LABELS: Record<Name, string> = {
  cp: 'ComputePods (bibtex projects the .aux)',
  cp_noproj: 'ComputePods without projections',
  latexmk: 'latexmk',
};

/** Runs the LaTeX part on `stack` (MajorDomo, runner and fswatcher started) into `figures`. */
export async function latexBench(
  stack: Stack,
  quiet: Record<string, string>,
  figures: Record<string, number | string | boolean>,
): Promise<void> {
  await stack.start(
    'chef',
    { ...quiet, CP_CHEF: 'latex', CP_CHEF_DEFINITION: 'latex' },
    'chef-latex',
  );
  const old = await withoutProjections(stack, quiet);
  const systems: Record<Name, System> = {
    cp: services(stack.bus, stack.workspace),
    cp_noproj: old.system,
    latexmk: latexmk(stack.dir.join('latexmk')),
  };
  const names = Object.keys(systems) as Name[];
  figures.latex_rounds = ROUNDS;
  figures.latex_loadavg_1m_start = loadavg()[0] ?? Number.NaN;
  for (const n of names) await systems[n]('warm');
  const runs = new Map<Name, Array<Map<string, PaperRun>>>(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? names : [...names].reverse();
    for (const n of order) runs.get(n)?.push(await systems[n](`paper${r}`));
  }
  figures.latex_loadavg_1m_end = loadavg()[0] ?? Number.NaN;
  await old.close();

  const of = (n: Name, edit: string): PaperRun[] =>
    (runs.get(n) ?? []).map((m) => {
      const run = m.get(edit);
      if (!run) throw new Error(`no ${edit} run of ${n}`);
      return run;
    });
  const rows: (string | number)[][] = [];
  const stageRows: (string | number)[][] = [];
  let countsStable = true;
  for (const edit of EDITS) {
    const p = edit === 'clean' ? 'latex' : `latex_${edit}`;
    const lm = of('latexmk', edit);
    for (const n of names) {
      const rs = of(n, edit);
      const count = (k: 'pdflatex' | 'bibtex' | 'passes') => {
        if (new Set(rs.map((x) => x[k])).size > 1) countsStable = false;
        return median(rs.map((x) => x[k]));
      };
      const ms = median(rs.map((x) => x.ms));
      rows.push([edit, LABELS[n], count('pdflatex'), count('bibtex'), count('passes'), ms]);
      Object.assign(figures, {
        [`${p}_${n}_pdflatex_runs`]: count('pdflatex'),
        [`${p}_${n}_bibtex_runs`]: count('bibtex'),
        [`${p}_${n}_ms`]: ms,
        [`${p}_${n}_ms_rounds`]: rs.map((x) => Math.round(x.ms)).join('/'),
      });
      if (n !== 'latexmk') figures[`${p}_${n}_passes`] = count('passes');
    }
    const cp = of('cp', edit);
    const noproj = of('cp_noproj', edit);
    figures[`${p}_same_pdf_bytes`] = lm.every(
      (l, i) => cp[i]?.pdf.equals(l.pdf) && noproj[i]?.pdf.equals(l.pdf),
    );
    figures[`${p}_cp_vs_latexmk_ms_ratio`] =
      median(cp.map((x) => x.ms)) / median(lm.map((x) => x.ms));
    // Each round's ratio (the two systems ran one right after the other in it), their median:
    // a shared machine's load drifts between rounds, less within one.
    figures[`${p}_cp_vs_latexmk_ms_ratio_round_median`] = median(
      cp.map((x, i) => x.ms / (lm[i]?.ms ?? Number.NaN)),
    );
    figures[`${p}_cp_settled_poll_ms`] = median(cp.map((x) => x.settledMs ?? Number.NaN));
    const st = Object.fromEntries(
      LATEX_STAGES.map((s) => [s, median(cp.map((x) => x.stages?.[s] ?? Number.NaN))]),
    ) as Record<LatexStage, number>;
    stageRows.push([edit, ...LATEX_STAGES.map((s) => st[s])]);
    for (const s of LATEX_STAGES) figures[`${p}_cp_stage_${s}_ms`] = st[s];
  }
  // The whole session a round is (clean, then each edit), each system's rounds summed: what a
  // writer waits in all. A figure beside the clean one, which the goal (<= 0.9x) is about.
  const session = (n: Name) =>
    (runs.get(n) ?? []).map((m) => EDITS.reduce((ms, e) => ms + (m.get(e)?.ms ?? Number.NaN), 0));
  const allCp = median(session('cp'));
  const allLatexmk = median(session('latexmk'));
  Object.assign(figures, {
    latex_all_edits_cp_ms: allCp,
    latex_all_edits_latexmk_ms: allLatexmk,
    latex_all_edits_cp_vs_latexmk_ms_ratio: allCp / allLatexmk,
  });
  figures.latex_counts_same_every_round = countsStable;
  figures.latex_pdflatex_runs_ratio =
    median(of('cp', 'clean').map((x) => x.pdflatex)) /
    median(of('latexmk', 'clean').map((x) => x.pdflatex));
  table(
    `LaTeX: where ComputePods spends each build (ms summed over its passes, median of ${ROUNDS} rounds; task = queued to its end recorded, pdflatex/bibtex running in it)`,
    ['edit', ...LATEX_STAGES],
    stageRows,
  );
  table(
    `LaTeX to convergence (references + citations + table of contents), clean then edits on top; ms: median of ${ROUNDS} rounds after a warm-up`,
    ['edit', 'system', 'pdflatex runs', 'bibtex runs', 'passes', 'ms'],
    rows,
  );
  console.log(
    `clean + ${texEdits.map(([e]) => e).join(' + ')} in all (median of the rounds' sums): ComputePods ${Math.round(allCp)} ms, latexmk ${Math.round(allLatexmk)} ms (${(allCp / allLatexmk).toFixed(3)}x)`,
  );
  console.log(
    `load average (1 min) at LaTeX start ${figures.latex_loadavg_1m_start}, at end ${figures.latex_loadavg_1m_end}`,
  );
}
