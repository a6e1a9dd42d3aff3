/**
 * DependencyManager: the cyclic build graph of a project, rebuilt to a fixpoint with early cutoff
 * and dynamic dependencies. Pure: no I/O, no NATS.
 *
 *   import { DependencyManager, cutoffDigest } from '@computepods/depgraph';
 *   const dm = new DependencyManager({ passLimit: 5 });
 *   dm.addRule({ id: 'pdflatex', inputs: ['{stem}.tex'],
 *     optionalInputs: ['{stem}.aux', '{stem}.bbl', '{stem}.toc'],
 *     outputs: ['{stem}.pdf', '{stem}.aux', '{stem}.toc'] });
 *   dm.addRule({ id: 'bibtex', inputs: ['{stem}.aux'], outputs: ['{stem}.bbl'] });
 *   dm.setArtefact('paper/main.tex', sha256);
 *   for (const task of dm.take(4)) {            // ready() + started()
 *     const outputs = await build(task);          // path → hash (cutoffDigest for ignore lines)
 *     const r = dm.completed(task.id, { outputs, discovered: ['paper/intro.tex'], run: task.run });
 *   }
 *   dm.status(); dm.why('paper/main.pdf'); dm.plan(); dm.toDOT();
 */
export { CutoffHasher, cutoffDigest } from './cutoff.js';
export { DependencyManager } from './dependency-manager.js';
export {
  InvalidHashError,
  InvalidIgnorePatternError,
  InvalidPathError,
  RuleInvalidError,
  StateCorruptError,
  TaskNotReadyError,
  UnknownTaskError,
} from './errors.js';
export type {
  GraphJSON,
  GraphStats,
  PlanComponentState,
  PlanJSON,
  PlanTaskState,
} from './export.js';
export {
  compilePattern,
  fillPattern,
  matchPattern,
  type Pattern,
  stemKey,
} from './pattern.js';
export {
  lineProjectionHasher,
  type ProjectionSpec,
  projectedHasher,
  projectionKey,
  projectLines,
} from './projection.js';
export { type CompiledRule, compileRule } from './rule.js';
export type { Snapshot } from './snapshot.js';
export { decodeSnapshot, isEncodedState } from './state-codec.js';
export { tarjan } from './tarjan.js';
export type {
  ArtefactState,
  ChangeResult,
  CompletedReport,
  CompletedResult,
  DependencyManagerOptions,
  GraphState,
  GraphWarning,
  NonConvergence,
  PathStrings,
  ReadOptions,
  RuleSpec,
  Status,
  TaskInstance,
  TraceRecord,
  WarningCode,
  WhyStep,
} from './types.js';
