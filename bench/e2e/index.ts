// pnpm bench e2e: edit → rebuilt artefact through the real services (fswatcher → MajorDomo →
// chef → runner → chef → MajorDomo, a real nats-server, one OS process each) for the generic
// `upper` rule, against entr driving make on the same rule, edits alternating between the two; where the time goes
// (from the messages each stage publishes); and, when TeX is there (or can be installed), the
// passes a document with references, citations and a table of contents takes to converge,
// against latexmk. Sizes: CP_BENCH_EDITS (default 50); CP_BENCH_DEBOUNCE_MS sets the fswatcher's
// quiet window (default: its own, 20 ms).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Envelope } from '@computepods/protocol';
import { runCommand } from '@computepods/testkit';
import { Stack } from '../../test/src/stack.js';
import { ensureTex } from '../../test/src/tex.js';
import { BuildLog, settled } from '../../test/src/watch-builds.js';
import { finish, percentile, table } from '../lib/report.js';

const EDITS = Number(process.env.CP_BENCH_EDITS ?? 50);
const WARMUP = 3;
const figures: Record<string, number | string | boolean> = {
  edits: EDITS,
  fswatcher_debounce_ms: Number(process.env.CP_BENCH_DEBOUNCE_MS ?? 20),
};
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves when `file` holds exactly `want` (inotify on its directory, plus a slow poll). */
function whenContent(file: string, want: string, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const check = () => {
      try {
        if (readFileSync(file, 'utf8') === want) {
          done();
          resolve(now());
        }
      } catch {
        // not there yet
      }
    };
    const w = watch(join(file, '..'), check);
    const poll = setInterval(check, 20);
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${file} never held ${JSON.stringify(want)}`));
    }, timeoutMs);
    const done = () => {
      w.close();
      clearInterval(poll);
      clearTimeout(timer);
    };
    check();
  });
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? Number.NaN };
};

/**
 * One edit of src/bench.txt, waiting for out/bench.upper to follow: the latency, or undefined
 * when `mayMiss` and it did not follow within 5 s (entr, under load, sometimes runs make on
 * the truncated file and drops the write that follows; ComputePods may not miss any).
 */
async function editOnce(
  ws: string,
  i: number,
  mayMiss: boolean,
  onStart?: (t0: number) => void,
): Promise<number | undefined> {
  const text = `edit number ${i} ${Math.random().toString(36).slice(2)}\n`;
  const t0 = now();
  onStart?.(t0);
  const seen = whenContent(
    join(ws, 'out/bench.upper'),
    text.toUpperCase(),
    mayMiss ? 5_000 : 30_000,
  );
  writeFileSync(join(ws, 'src/bench.txt'), text);
  try {
    return (await seen) - t0;
  } catch (err) {
    if (!mayMiss) throw err;
    return undefined;
  } finally {
    // Let the watchers go quiet so one edit never overlaps the next.
    await sleep(150);
  }
}

// --- 1. ComputePods against entr + make ----------------------------------------------------------------------------
const stack = await Stack.start('bench');
const quiet = { CP_LOG_LEVEL: 'info' };
await Promise.all([
  stack.start('majordomo', quiet),
  stack.start('runner', quiet),
  // CP_BENCH_DEBOUNCE_MS: the fswatcher's quiet window (its default, 20 ms, when unset).
  stack.start('fswatcher', {
    ...quiet,
    ...(process.env.CP_BENCH_DEBOUNCE_MS
      ? { CP_DEBOUNCE_MS: process.env.CP_BENCH_DEBOUNCE_MS }
      : {}),
  }),
  stack.start('chef', { ...quiet, CP_CHEF: 'text', CP_CHEF_DEFINITION: 'generic' }),
]);
mkdirSync(join(stack.workspace, 'src'), { recursive: true });
mkdirSync(join(stack.workspace, 'out'), { recursive: true });

// Stage timestamps: the first message of each kind after an edit, as it crosses NATS.
type Stage =
  | 'files.changed'
  | 'build.requested'
  | 'task.submitted'
  | 'task.running'
  | 'task.finished'
  | 'build.result'
  | 'artefact.up_to_date';
const STAGES: Stage[] = [
  'files.changed',
  'build.requested',
  'task.submitted',
  'task.running',
  'task.finished',
  'build.result',
  'artefact.up_to_date',
];
type EditTimes = Partial<Record<Stage, number>> & { t0: number };
const perEdit: EditTimes[] = [];
let current: EditTimes = { t0: 0 };
const mark = (s: Stage) => {
  current[s] ??= now();
};
const sub = stack.bus.nc.subscribe(`cp.${stack.project}.>`, {
  callback: (_e, m) => {
    let env: Envelope;
    try {
      env = Envelope.parse(JSON.parse(new TextDecoder().decode(m.data)));
    } catch {
      return;
    }
    const b = env.body as Record<string, unknown>;
    if (env.type === 'files.changed') {
      const evs = (b.events as { path: string }[]) ?? [];
      if (evs.some((e) => e.path === 'src/bench.txt')) mark('files.changed');
    } else if (env.type === 'build.requested' && b.taskId === 'upper:bench')
      mark('build.requested');
    else if (env.type === 'task.submitted') mark('task.submitted');
    else if (env.type === 'task.state' && b.state === 'running') mark('task.running');
    else if (env.type === 'task.state' && b.state === 'finished') mark('task.finished');
    else if (env.type === 'build.result' && b.taskId === 'upper:bench') mark('build.result');
    else if (
      env.type === 'artefact.state' &&
      b.path === 'out/bench.upper' &&
      b.status === 'up_to_date'
    )
      mark('artefact.up_to_date');
  },
});
// entr + make on the same rule, in its own folder; the edits alternate between the two systems
// so that both see the same load on the machine.
const mk = stack.dir.join('make');
mkdirSync(join(mk, 'src'), { recursive: true });
mkdirSync(join(mk, 'out'), { recursive: true });
writeFileSync(join(mk, 'Makefile'), 'out/%.upper: src/%.txt\n\ttr a-z A-Z < $< > $@\n');
writeFileSync(join(mk, 'src/bench.txt'), 'start\n');
const entr: ChildProcess = spawn(
  'sh',
  ['-c', 'echo src/bench.txt | exec entr -n -p make -s out/bench.upper'],
  {
    cwd: mk,
    stdio: ['ignore', 'ignore', 'pipe'],
  },
);
await sleep(500);
const ours = { latencies: [] as number[] };
const base = { latencies: [] as number[], missed: 0 };
for (let i = 0; i < EDITS + WARMUP; i++) {
  const cp = await editOnce(stack.workspace, i, false, (t0) => {
    current = { t0 };
    perEdit.push(current);
  });
  const m = await editOnce(mk, i, true);
  if (m === undefined && ++base.missed > 10) throw new Error('entr + make missed over 10 edits');
  if (i < WARMUP) continue;
  if (cp !== undefined) ours.latencies.push(cp);
  if (m !== undefined) base.latencies.push(m);
}
entr.kill('SIGTERM');
await sleep(300);
sub.unsubscribe();

// Breakdown over the measured edits: time from the previous stage's timestamp.
const measured = perEdit.slice(WARMUP);
const deltas = new Map<string, number[]>();
for (const e of measured) {
  let prev = e.t0;
  for (const s of STAGES) {
    const t = e[s];
    if (t === undefined) continue;
    if (!deltas.has(s)) deltas.set(s, []);
    deltas.get(s)!.push(t - prev);
    prev = t;
  }
}

const o = stats(ours.latencies);
const m = stats(base.latencies);
table(
  'edit → rebuilt out/bench.upper (ms; file on disk holds the new bytes)',
  ['system', 'p50', 'p99', 'max'],
  [
    ['ComputePods (fswatcher → MajorDomo → chef → runner)', o.p50, o.p99, o.max],
    ['entr + make', m.p50, m.p99, m.max],
  ],
);
const stageRows = STAGES.filter((s) => deltas.has(s)).map((s) => {
  const d = stats(deltas.get(s)!);
  return [s, d.p50, d.p99];
});
table(
  'where the time goes (ms from the previous stage, median and p99 over the edits)',
  ['stage reached', 'p50', 'p99'],
  stageRows,
);
Object.assign(figures, {
  cp_p50_ms: o.p50,
  cp_p99_ms: o.p99,
  entr_make_p50_ms: m.p50,
  entr_make_p99_ms: m.p99,
  ratio_p50: o.p50 / m.p50,
  ratio_p99: o.p99 / m.p99,
  entr_make_missed_edits: base.missed,
});
for (const [s, d] of deltas) figures[`stage_${s.replace(/[.]/g, '_')}_p50_ms`] = stats(d).p50;

// --- 3. LaTeX passes to convergence --------------------------------------------------------------
const tex = await ensureTex().then(
  () => true,
  (err: Error) => {
    figures.latex_skipped = `TeX not available: ${err.message.slice(0, 200)}`;
    return false;
  },
);
if (tex) {
  await stack.start(
    'chef',
    { ...quiet, CP_CHEF: 'latex', CP_CHEF_DEFINITION: 'latex' },
    'chef-latex',
  );
  const log = new BuildLog(stack.bus);
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
  const t0 = now();
  for (const [f, text] of Object.entries(doc)) stack.write(`paper/${f}`, text);
  await settled(
    stack.bus,
    (s) => s.artefacts.some((a) => a.path === 'paper/main.pdf' && a.status === 'up_to_date'),
    120_000,
  );
  const cpMs = now() - t0;
  const passes = log.passes('paper/main');
  const cpLatex = passes.filter((p) => p.endsWith(':pdflatex')).length;
  const cpBibtex = passes.filter((p) => p.endsWith(':bibtex')).length;
  const cpPasses = Math.max(...passes.map((p) => Number(p.split(':')[0])));
  const lm = stack.dir.join('latexmk');
  mkdirSync(lm);
  for (const [f, text] of Object.entries(doc)) writeFileSync(join(lm, f), text);
  const t1 = now();
  const r = await runCommand('latexmk', ['-pdf', '-interaction=nonstopmode', 'main.tex'], {
    cwd: lm,
    env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
    timeoutMs: 120_000,
  });
  const lmMs = now() - t1;
  const runsOf = (out: string, rule: string) =>
    [...out.matchAll(new RegExp(`Run number \\d+ of rule '${rule}`, 'g'))].length;
  const runs = (rule: string) => runsOf(r.stdout + r.stderr, rule);
  const samePdf = () =>
    readFileSync(join(lm, 'main.pdf')).equals(
      readFileSync(join(stack.workspace, 'paper/main.pdf')),
    );
  const same = samePdf();
  const rows: (string | number)[][] = [
    ['clean', 'ComputePods (MajorDomo fixpoint)', cpLatex, cpBibtex, cpPasses, cpMs],
    ['clean', 'latexmk', runs('pdflatex'), runs('bibtex'), runs('pdflatex'), lmMs],
  ];
  // Edits on top, the same for both: a new labelled section (the .aux and .toc change, not
  // what bibtex reads: its .aux projection), then a typo (nothing in the .aux or .toc changes).
  let tex = doc['main.tex'];
  const edits: Array<[string, (t: string) => string]> = [
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
  for (const [name, change] of edits) {
    tex = change(tex);
    const from = log.requests.length;
    const before = readFileSync(join(stack.workspace, 'paper/main.pdf'));
    const e0 = now();
    stack.write('paper/main.tex', tex);
    await settled(
      stack.bus,
      (s) =>
        s.artefacts.some((a) => a.path === 'paper/main.pdf' && a.status === 'up_to_date') &&
        !readFileSync(join(stack.workspace, 'paper/main.pdf')).equals(before),
      120_000,
    );
    const eMs = now() - e0;
    const ps = log.passes('paper/main', from);
    writeFileSync(join(lm, 'main.tex'), tex);
    const l0 = now();
    const lr = await runCommand('latexmk', ['-pdf', '-interaction=nonstopmode', 'main.tex'], {
      cwd: lm,
      env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
      timeoutMs: 120_000,
    });
    const lMs = now() - l0;
    const out = lr.stdout + lr.stderr;
    const cp = {
      pdflatex: ps.filter((p) => p.endsWith(':pdflatex')).length,
      bibtex: ps.filter((p) => p.endsWith(':bibtex')).length,
    };
    rows.push(
      [name, 'ComputePods (MajorDomo fixpoint)', cp.pdflatex, cp.bibtex, cp.pdflatex, eMs],
      [
        name,
        'latexmk',
        runsOf(out, 'pdflatex'),
        runsOf(out, 'bibtex'),
        runsOf(out, 'pdflatex'),
        lMs,
      ],
    );
    Object.assign(figures, {
      [`latex_${name}_cp_pdflatex_runs`]: cp.pdflatex,
      [`latex_${name}_cp_bibtex_runs`]: cp.bibtex,
      [`latex_${name}_cp_ms`]: eMs,
      [`latex_${name}_latexmk_pdflatex_runs`]: runsOf(out, 'pdflatex'),
      [`latex_${name}_latexmk_bibtex_runs`]: runsOf(out, 'bibtex'),
      [`latex_${name}_latexmk_ms`]: lMs,
      [`latex_${name}_same_pdf_bytes`]: samePdf(),
    });
  }
  log.close();
  table(
    'LaTeX to convergence (references + citations + table of contents; bibtex projects the .aux)',
    ['edit', 'system', 'pdflatex runs', 'bibtex runs', 'passes', 'ms'],
    rows,
  );
  Object.assign(figures, {
    latex_cp_pdflatex_runs: cpLatex,
    latex_cp_bibtex_runs: cpBibtex,
    latex_cp_passes: cpPasses,
    latex_cp_ms: cpMs,
    latex_latexmk_pdflatex_runs: runs('pdflatex'),
    latex_latexmk_bibtex_runs: runs('bibtex'),
    latex_latexmk_ms: lmMs,
    latex_pdflatex_runs_ratio: cpLatex / runs('pdflatex'),
    latex_same_pdf_bytes: same,
  });
}

await stack[Symbol.asyncDispose]();
finish('e2e', figures);
process.exit(0);
