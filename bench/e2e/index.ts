// pnpm bench e2e: edit → rebuilt artefact through the real services (fswatcher → MajorDomo →
// chef → runner → chef → MajorDomo, a real nats-server, one OS process each) for the generic
// `upper` rule, against entr driving make on the same rule, edits alternating between the two; where the time goes
// (from the messages each stage publishes); and, when TeX is there (or can be installed), the
// passes a document with references, citations and a table of contents takes to converge
// (clean, then a new labelled section, then a typo), against latexmk and against the same LaTeX
// chef without bibtex's .aux projection (a second project on the same server). Sizes: CP_BENCH_EDITS (default 50); CP_BENCH_DEBOUNCE_MS sets the fswatcher's
// quiet window (default: its own, 20 ms).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Bus, createLogger } from '@computepods/bus';
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
const sub = envelopes(stack.bus, (env, b) => {
  if (env.type === 'files.changed') {
    const evs = (b.events as { path: string }[]) ?? [];
    if (evs.some((e) => e.path === 'src/bench.txt')) mark('files.changed');
  } else if (env.type === 'build.requested' && b.taskId === 'upper:bench') mark('build.requested');
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
// The machine is shared, and the ratio moves with its load: on 2 cores at load averages from 2
// to 15, entr + make's p50 stayed at 56-61 ms while ComputePods' went from 41 to 65 ms (five
// processes and a nats-server taking turns, a dozen hops in a row). Compare runs at like loads.
figures.loadavg_1m_start = loadavg()[0]!;
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
figures.loadavg_1m_end = loadavg()[0]!;
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
console.log(
  `load average (1 min) at start ${figures.loadavg_1m_start}, at end ${figures.loadavg_1m_end}`,
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
 * another): the time since the message before it is that stage's. `md` is MajorDomo from a
 * result (or the edit, through the watcher) to the next request; `chef_in` a request to its task;
 * `runner_start` the task queued to running; `tool` pdflatex or bibtex running (the runner's
 * spawn and exit included); `chef_out` the task's end to the result (hashing, discovery).
 */
type LatexStage = 'watcher_md' | 'md' | 'chef_in' | 'runner_start' | 'tool' | 'chef_out' | 'md_end';
const LATEX_STAGES: LatexStage[] = [
  'watcher_md',
  'md',
  'chef_in',
  'runner_start',
  'tool',
  'chef_out',
  'md_end',
];

/** Timestamps of the build messages of `bus`'s project, for latexStages. */
function timeline(bus: Bus): { events: Array<[number, string]>; stop: () => void } {
  const events: Array<[number, string]> = [];
  const sub = envelopes(bus, (env, b, t) => {
    if (env.type === 'task.state' && (b.state === 'running' || b.state === 'finished'))
      events.push([t, `task.${b.state}`]);
    else if (['build.requested', 'task.submitted', 'build.result'].includes(env.type))
      events.push([t, env.type]);
    else if (
      env.type === 'artefact.state' &&
      b.path === 'paper/main.pdf' &&
      b.status === 'up_to_date'
    )
      events.push([t, 'pdf.up_to_date']);
  });
  return { events, stop: () => sub.unsubscribe() };
}

/** Calls `fn` with every envelope published in `bus`'s project, its body, and when it came. */
function envelopes(
  bus: Bus,
  fn: (env: Envelope, body: Record<string, unknown>, t: number) => void,
): { unsubscribe(): void } {
  return bus.nc.subscribe(`cp.${bus.project}.>`, {
    callback: (_e, m) => {
      const t = now();
      let env: Envelope;
      try {
        env = Envelope.parse(JSON.parse(new TextDecoder().decode(m.data)));
      } catch {
        return;
      }
      fn(env, env.body as Record<string, unknown>, t);
    },
  });
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
    'task.running': 'runner_start',
    'task.finished': 'tool',
    'build.result': 'chef_out',
  };
  let prev = t0;
  let first = true;
  for (const [t, kind] of events) {
    if (t < t0 || t > t1) continue;
    if (kind === 'build.requested') {
      out[first ? 'watcher_md' : 'md'] += t - prev;
      first = false;
    } else if (kind === 'pdf.up_to_date') continue;
    else {
      const stage = stageOf[kind];
      if (stage) out[stage] += t - prev;
    }
    prev = t;
  }
  out.md_end += t1 - prev;
  return out;
}

/** The paper built clean, then each edit, by the services of `bus`'s project on `workspace`. */
async function paperRuns(bus: Bus, workspace: string): Promise<Map<string, PaperRun>> {
  const log = new BuildLog(bus);
  const tl = timeline(bus);
  await bus.nc.flush();
  const pdfPath = join(workspace, 'paper/main.pdf');
  const write = (f: string, text: string) => {
    mkdirSync(join(workspace, 'paper'), { recursive: true });
    writeFileSync(join(workspace, 'paper', f), text);
  };
  const out = new Map<string, PaperRun>();
  const step = async (name: string, edit: () => void, before: Buffer | undefined) => {
    const from = log.requests.length;
    const t0 = now();
    edit();
    await settled(
      bus,
      (s) =>
        s.artefacts.some((a) => a.path === 'paper/main.pdf' && a.status === 'up_to_date') &&
        (before === undefined || !readFileSync(pdfPath).equals(before)),
      120_000,
    );
    // Done when MajorDomo said the PDF is up to date for the last time (its message), as latexmk
    // is done when it exits: not when the 50 ms status poll above next noticed, which added
    // 25 ms on average and up to 50 to every figure of ours before.
    const settledAt = now();
    const doneAt =
      tl.events
        .filter(([t, k]) => k === 'pdf.up_to_date' && t >= t0 && t <= settledAt)
        .at(-1)?.[0] ?? settledAt;
    const ms = doneAt - t0;
    const ps = log.passes('paper/main', from);
    const pdf = readFileSync(pdfPath);
    out.set(name, {
      pdflatex: ps.filter((p) => p.endsWith(':pdflatex')).length,
      bibtex: ps.filter((p) => p.endsWith(':bibtex')).length,
      passes: Math.max(...ps.map((p) => Number(p.split(':')[0]))),
      ms,
      settledMs: settledAt - t0,
      pdf,
      stages: latexStages(tl.events, t0, t0 + ms),
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
}

/** latexmk on its own copy of the paper, clean and then each edit. */
async function latexmkRuns(dir: string): Promise<Map<string, PaperRun>> {
  mkdirSync(dir);
  const out = new Map<string, PaperRun>();
  const run = async (name: string) => {
    const t0 = now();
    const r = await runCommand('latexmk', ['-pdf', '-interaction=nonstopmode', 'main.tex'], {
      cwd: dir,
      env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
      timeoutMs: 120_000,
    });
    const ms = now() - t0;
    const text = r.stdout + r.stderr;
    const runs = (rule: string) =>
      [...text.matchAll(new RegExp(`Run number \\d+ of rule '${rule}`, 'g'))].length;
    out.set(name, {
      pdflatex: runs('pdflatex'),
      bibtex: runs('bibtex'),
      passes: runs('pdflatex'),
      ms,
      pdf: readFileSync(join(dir, 'main.pdf')),
    });
  };
  for (const [f, text] of Object.entries(doc)) writeFileSync(join(dir, f), text);
  await run('clean');
  let tex = doc['main.tex'];
  for (const [name, change] of texEdits) {
    tex = change(tex);
    writeFileSync(join(dir, 'main.tex'), tex);
    await run(name);
  }
  return out;
}

if (tex) {
  await stack.start(
    'chef',
    { ...quiet, CP_CHEF: 'latex', CP_CHEF_DEFINITION: 'latex' },
    'chef-latex',
  );
  const ours = await paperRuns(stack.bus, stack.workspace);
  const lm = await latexmkRuns(stack.dir.join('latexmk'));

  // The code before projections, in the same run: the same LaTeX chef without bibtex's .aux
  // projection, in a project of its own (its own services and workspace) on the same server.
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
  const logger = createLogger('bench-old');
  logger.level = 'silent';
  const oldBus = await Bus.connect({
    servers: stack.nats.url,
    credsFile: oldCreds,
    service: 'bench-old',
    project: 'old',
    logger,
    discoverable: false,
  });
  const old = await paperRuns(oldBus, oldWs);
  await oldBus.close();

  const rows: (string | number)[][] = [];
  for (const edit of ['clean', ...texEdits.map(([n]) => n)]) {
    const o = ours.get(edit)!;
    const b = old.get(edit)!;
    const l = lm.get(edit)!;
    rows.push(
      [edit, 'ComputePods (bibtex projects the .aux)', o.pdflatex, o.bibtex, o.passes, o.ms],
      [edit, 'ComputePods without projections', b.pdflatex, b.bibtex, b.passes, b.ms],
      [edit, 'latexmk', l.pdflatex, l.bibtex, l.passes, l.ms],
    );
    const p = edit === 'clean' ? 'latex' : `latex_${edit}`;
    Object.assign(figures, {
      [`${p}_cp_pdflatex_runs`]: o.pdflatex,
      [`${p}_cp_bibtex_runs`]: o.bibtex,
      [`${p}_cp_passes`]: o.passes,
      [`${p}_cp_ms`]: o.ms,
      [`${p}_cp_noproj_pdflatex_runs`]: b.pdflatex,
      [`${p}_cp_noproj_bibtex_runs`]: b.bibtex,
      [`${p}_cp_noproj_ms`]: b.ms,
      [`${p}_latexmk_pdflatex_runs`]: l.pdflatex,
      [`${p}_latexmk_bibtex_runs`]: l.bibtex,
      [`${p}_latexmk_ms`]: l.ms,
      [`${p}_same_pdf_bytes`]: o.pdf.equals(l.pdf) && b.pdf.equals(l.pdf),
    });
  }
  figures.latex_pdflatex_runs_ratio = ours.get('clean')!.pdflatex / lm.get('clean')!.pdflatex;
  const stageRows: (string | number)[][] = [];
  for (const edit of ['clean', ...texEdits.map(([n]) => n)]) {
    const st = ours.get(edit)?.stages;
    if (!st) continue;
    stageRows.push([edit, ...LATEX_STAGES.map((s) => st[s])]);
    const p = edit === 'clean' ? 'latex' : `latex_${edit}`;
    figures[`${p}_cp_vs_latexmk_ms_ratio`] = ours.get(edit)!.ms / lm.get(edit)!.ms;
    figures[`${p}_cp_settled_poll_ms`] = ours.get(edit)!.settledMs ?? Number.NaN;
    for (const s of LATEX_STAGES) figures[`${p}_cp_stage_${s}_ms`] = st[s];
  }
  table(
    'LaTeX: where ComputePods spends each build (ms summed over its passes; tool = pdflatex/bibtex running)',
    ['edit', ...LATEX_STAGES],
    stageRows,
  );
  table(
    'LaTeX to convergence (references + citations + table of contents), clean then edits on top',
    ['edit', 'system', 'pdflatex runs', 'bibtex runs', 'passes', 'ms'],
    rows,
  );
}

await stack[Symbol.asyncDispose]();
finish('e2e', figures);
process.exit(0);
