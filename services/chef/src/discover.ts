import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Rule } from '@computepods/protocol';
import { Confinement, confineAll, confineLocal } from './confine.js';
import { parseDepfile } from './depfile.js';
import { DiscoveryError } from './errors.js';
import type { Step } from './group.js';
import { parseAuxBibliography, parseFls } from './latex-records.js';
import type { StepPaths } from './rule-paths.js';
import { readWhole, withSmallFile } from './small-file.js';

export interface DiscoverInput {
  readonly workspace: string;
  readonly rule: Rule;
  /** The build's outputs (project-relative). */
  readonly outputs: readonly string[];
  /** Inputs and outputs the rule declares: already in the graph, so never reported. */
  readonly declared: ReadonlySet<string>;
  /** The build's check of its paths after the run (else each read is checked on its own). */
  readonly confine?: Confinement;
}

/**
 * Dependencies a successful build revealed, as project-relative paths inside the workspace,
 * sorted. `makedepend`: the Make-format depfiles among the outputs (`*.d`; else `<out0>.d`),
 * paths relative to the workspace (the task's cwd). `latex`: for a `.pdf`/`.dvi` output, the
 * INPUT lines of the `.fls` beside it (pdflatex -recorder), less what the run itself wrote (an
 * undeclared self-output such as hyperref's .out would otherwise be a hidden cycle); for a
 * `.bbl` output, the `\bibdata` databases named in the `.aux` beside it and any local `\bibstyle`.
 */
export async function discover(input: DiscoverInput): Promise<string[]> {
  const found = new Set<string>();
  if (input.rule.discover === 'makedepend') {
    for (const p of await fromDepfiles(input)) found.add(p);
  } else if (input.rule.discover === 'latex') {
    for (const p of await fromLatex(input)) found.add(p);
  }
  return [...found].filter((p) => !input.declared.has(p)).sort();
}

async function read(input: DiscoverInput, path: string, why: string): Promise<string> {
  try {
    // The record is a file the command wrote: a symlink leading out of the workspace is refused.
    const full = await (input.confine ?? new Confinement(input.workspace)).check(path);
    // A small record (a depfile) is read in this thread: small-file.ts.
    const small = withSmallFile(full, readWhole);
    return small ? small.toString('utf8') : await readFile(full, 'utf8');
  } catch (cause) {
    throw new DiscoveryError(input.rule.id, `cannot read ${path} (${why})`, { cause });
  }
}

function withoutExt(path: string): string {
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return dot > slash ? path.slice(0, dot) : path;
}

async function fromDepfiles(input: DiscoverInput): Promise<string[]> {
  const first = input.outputs[0];
  const depfiles = input.outputs.filter((p) => p.endsWith('.d'));
  if (depfiles.length === 0 && first !== undefined) depfiles.push(`${withoutExt(first)}.d`);
  const out: string[] = [];
  for (const d of depfiles) {
    const text = await read(input, d, 'the depfile of a makedepend rule: pass -MMD -MF to cc');
    out.push(...confineAll(input.workspace, input.workspace, parseDepfile(text)));
  }
  return out;
}

async function fromLatex(input: DiscoverInput): Promise<string[]> {
  const out: string[] = [];
  for (const o of input.outputs) {
    if (o.endsWith('.pdf') || o.endsWith('.dvi')) {
      const fls = `${withoutExt(o)}.fls`;
      const rec = parseFls(await read(input, fls, 'run the TeX engine with -recorder'));
      const base = rec.pwd ?? dirname(join(input.workspace, fls));
      const written = new Set(confineAll(input.workspace, base, rec.outputs));
      for (const p of confineAll(input.workspace, base, rec.inputs))
        if (!written.has(p)) out.push(p);
    } else if (o.endsWith('.bbl')) {
      const aux = `${withoutExt(o)}.aux`;
      const bib = parseAuxBibliography(await read(input, aux, 'the .aux BibTeX read'));
      const dir = dirname(join(input.workspace, aux));
      out.push(...confineAll(input.workspace, dir, bib.bibdata));
      // A style found in the workspace is a dependency; one from the TeX tree is not ours.
      for (const p of confineAll(input.workspace, dir, bib.bibstyle))
        if (await existsInside(input.workspace, p)) out.push(p);
    }
  }
  return out;
}

/** True when `path` is a file inside the workspace, symlinks followed only if they stay inside. */
async function existsInside(workspace: string, path: string): Promise<boolean> {
  const full = await confineLocal(workspace, path).catch(() => undefined);
  return (
    full !== undefined &&
    (await stat(full).then(
      () => true,
      () => false,
    ))
  );
}

/** What each step of a build revealed (BuildResult.steps), and their union (`discovered`). */
export interface StepsDiscovered {
  readonly discovered: string[];
  readonly steps: Record<string, string[]>;
}

/**
 * The dependencies each step's run revealed, found as for a lone build from that step's own
 * outputs and paths: a group's task runs every step, and each step's record (its depfile) names
 * what that step read. The union leaves out what any step declares: already in the graph.
 */
export async function discoverSteps(
  input: Omit<DiscoverInput, 'outputs' | 'declared'>,
  steps: readonly Step[],
): Promise<StepsDiscovered> {
  const declaredBy = (p: StepPaths) => new Set([...p.required, ...p.optional, ...p.outputs]);
  const found = await Promise.all(
    steps.map((s) =>
      discover({ ...input, outputs: s.paths.outputs, declared: declaredBy(s.paths) }),
    ),
  );
  const declared = new Set(steps.flatMap((s) => [...declaredBy(s.paths)]));
  const all = new Set(found.flat().filter((p) => !declared.has(p)));
  return {
    discovered: [...all].sort(),
    steps: Object.fromEntries(steps.map((s, i) => [s.taskId, found[i] ?? []])),
  };
}
