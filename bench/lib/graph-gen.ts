import { createHash } from 'node:crypto';
import type { GraphState, RuleSpec, TraceRecord } from '@computepods/depgraph';

/**
 * A code base shaped like a real one: layers of modules, each module 32 C files with their
 * headers; compiles include their own header, two neighbours, a few headers of lower layers and
 * some very popular base headers (fan-in), found as discovered dependencies (depfiles). Objects are
 * archived per module, binaries link libraries of lower layers. Small cycles: LaTeX documents
 * (pdflatex ⇄ bibtex through .aux/.bbl, pdflatex ⇄ itself through .aux/.toc) and pairs of IDL
 * generators that each read the other's generated header.
 */
export interface CodeBase {
  readonly state: GraphState;
  /** Ninja statements: outputs, explicit inputs, implicit inputs, rule. */
  readonly ninja: Array<{ rule: string; outs: string[]; ins: string[]; implicit: string[] }>;
  /** Edges that make cycles, dropped for ninja. */
  readonly backEdges: number;
  readonly cFiles: string[];
  readonly popularHeaders: string[];
}

export const LAYERS = 8;
export const MODULES_PER_LAYER = 125;
export const FILES_PER_MODULE = 32;
export const BINARIES = 200;
export const DOCS = 300;
export const IDL_PAIRS = 100;
const POPULAR = 40;

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const hashOf = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * `scale` shrinks (or grows) the code base in proportion: modules per layer, binaries, documents
 * and IDL pairs (at least one of each); 1 is the full ~100k artefacts, 0.1 about 10k.
 */
export function generate(seed = 42, scale = 1): CodeBase {
  const rand = rng(seed);
  const scaled = (n: number) => Math.max(1, Math.round(n * scale));
  const modulesPerLayer = scaled(MODULES_PER_LAYER);
  const binaries = scaled(BINARIES);
  const docs = scaled(DOCS);
  const idlPairs = scaled(IDL_PAIRS);
  const pick = <T>(list: readonly T[]) => list[Math.floor(rand() * list.length)]!;
  const artefacts: Record<string, string> = {};
  const traces: Record<string, TraceRecord> = {};
  const ninja: CodeBase['ninja'] = [];
  const has = (p: string) => {
    artefacts[p] ??= hashOf(p);
    return artefacts[p];
  };
  const trace = (id: string, inputs: string[], outputs: string[], discovered?: string[]) => {
    traces[id] = {
      inputs: Object.fromEntries(inputs.map((p) => [p, has(p)])),
      outputs: Object.fromEntries(outputs.map((p) => [p, has(p)])),
      ...(discovered ? { discovered } : {}),
    };
  };
  const mod = (l: number, m: number) => `l${l}/m${String(m).padStart(3, '0')}`;
  const file = (f: number) => `f${String(f).padStart(2, '0')}`;
  const rules: RuleSpec[] = [
    { id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] },
    { id: 'idl', inputs: ['gen/{stem}.idl'], outputs: ['gen/{stem}.h'] },
    {
      id: 'pdflatex',
      inputs: ['docs/{stem}.tex'],
      optionalInputs: ['docs/{stem}.aux', 'docs/{stem}.bbl', 'docs/{stem}.toc'],
      outputs: ['docs/{stem}.pdf', 'docs/{stem}.aux', 'docs/{stem}.toc'],
    },
    { id: 'bibtex', inputs: ['docs/{stem}.aux'], outputs: ['docs/{stem}.bbl'] },
  ];
  let backEdges = 0;

  const popularHeaders = Array.from({ length: POPULAR }, (_, i) => `src/base/common${i}.h`);
  for (const h of popularHeaders) has(h);
  const genHeaders: string[] = [];
  for (let i = 0; i < idlPairs * 2; i++) {
    const g = `gen/g${String(i).padStart(3, '0')}`;
    has(`${g}.idl`);
    genHeaders.push(`${g}.h`);
  }
  for (let i = 0; i < idlPairs * 2; i++) {
    // Each generator of a pair reads the other's header: a 2-task cycle.
    const other = genHeaders[i ^ 1]!;
    const idl = genHeaders[i]!.replace(/\.h$/, '.idl');
    trace(`idl:${genHeaders[i]!.slice(4, -2)}`, [idl, other], [genHeaders[i]!], [other]);
    if (i % 2 === 1) backEdges++;
    ninja.push({
      rule: 'idl',
      outs: [genHeaders[i]!],
      ins: [idl],
      implicit: i % 2 === 1 ? [] : [other],
    });
  }

  const cFiles: string[] = [];
  const libsByLayer: string[][] = [];
  for (let l = 0; l < LAYERS; l++) {
    libsByLayer.push([]);
    for (let m = 0; m < modulesPerLayer; m++) {
      const objs: string[] = [];
      for (let f = 0; f < FILES_PER_MODULE; f++) {
        const stem = `${mod(l, m)}/${file(f)}`;
        const c = `src/${stem}.c`;
        has(c);
        has(`src/${stem}.h`);
        cFiles.push(c);
      }
      for (let f = 0; f < FILES_PER_MODULE; f++) {
        const stem = `${mod(l, m)}/${file(f)}`;
        const c = `src/${stem}.c`;
        const headers = new Set<string>([`src/${stem}.h`]);
        for (let k = 0; k < 2; k++)
          headers.add(`src/${mod(l, m)}/${file(Math.floor(rand() * FILES_PER_MODULE))}.h`);
        for (let k = 0; k < 2; k++) headers.add(pick(popularHeaders));
        if (l > 0) {
          for (let k = 0; k < 2; k++) {
            const lower = Math.floor(rand() * l);
            headers.add(
              `src/${mod(lower, Math.floor(rand() * modulesPerLayer))}/${file(Math.floor(rand() * FILES_PER_MODULE))}.h`,
            );
          }
        }
        if (rand() < 0.05) headers.add(pick(genHeaders));
        const o = `obj/${stem}.o`;
        objs.push(o);
        const discovered = [...headers];
        trace(`cc:${stem}`, [c, ...discovered], [o], discovered);
        ninja.push({ rule: 'cc', outs: [o], ins: [c], implicit: discovered });
      }
      const lib = `lib/${mod(l, m)}.a`;
      const id = `ar-${mod(l, m).replace('/', '-')}`;
      rules.push({ id, inputs: objs, outputs: [lib] });
      trace(`${id}:`, objs, [lib]);
      libsByLayer[l]!.push(lib);
      ninja.push({ rule: 'ar', outs: [lib], ins: objs, implicit: [] });
    }
  }
  for (let b = 0; b < binaries; b++) {
    const top = 1 + Math.floor(rand() * (LAYERS - 1));
    const libs = new Set<string>();
    for (let k = 0; k < 15; k++) libs.add(pick(libsByLayer[Math.floor(rand() * (top + 1))]!));
    const bin = `bin/b${String(b).padStart(3, '0')}`;
    const id = `ld-b${String(b).padStart(3, '0')}`;
    rules.push({ id, inputs: [...libs].sort(), outputs: [bin] });
    trace(`${id}:`, [...libs].sort(), [bin]);
    ninja.push({ rule: 'ld', outs: [bin], ins: [...libs].sort(), implicit: [] });
  }
  has('docs/refs.bib');
  for (let d = 0; d < docs; d++) {
    const s = `docs/d${String(d).padStart(3, '0')}`;
    const stem = s.slice(5);
    has(`${s}.tex`);
    // A converged state: pdflatex read the .aux/.bbl/.toc it last wrote.
    trace(
      `pdflatex:${stem}`,
      [`${s}.tex`, `${s}.aux`, `${s}.bbl`, `${s}.toc`],
      [`${s}.pdf`, `${s}.aux`, `${s}.toc`],
    );
    trace(`bibtex:${stem}`, [`${s}.aux`, 'docs/refs.bib'], [`${s}.bbl`], ['docs/refs.bib']);
    // pdflatex reads its own .aux and .toc and bibtex's .bbl: three back edges per document.
    backEdges += 3;
    ninja.push({
      rule: 'tex',
      outs: [`${s}.pdf`, `${s}.aux`, `${s}.toc`],
      ins: [`${s}.tex`],
      implicit: [],
    });
    ninja.push({ rule: 'bib', outs: [`${s}.bbl`], ins: [`${s}.aux`], implicit: ['docs/refs.bib'] });
  }
  return { state: { rules, artefacts, traces }, ninja, backEdges, cFiles, popularHeaders };
}
