/** A pattern rule as a chef declares it (see Pattern for the placeholder syntax). */
export interface RuleSpec {
  /** Unique within the project; task ids are `${id}:${stem}`. Letters, digits, "-", "_". */
  readonly id: string;
  /** Required inputs. Every placeholder of the rule must appear in the first one. */
  readonly inputs: readonly string[];
  /** Inputs used only when they exist (an .aux is both an output and an input of pdflatex). */
  readonly optionalInputs?: readonly string[];
  readonly outputs: readonly string[];
  /** Passes allowed for a cycle this rule is part of (the largest among its members wins). */
  readonly passLimit?: number;
  /**
   * Inputs the rule reads only part of (input pattern → projection key, see projectionKey): the
   * task is dirty when that part changed, which it learns from projected hashes reported with
   * completed() or setProjections(). While the projection of the current bytes is unknown, the
   * whole hash is compared (the task reruns): never a missed change.
   */
  readonly projections?: Readonly<Record<string, string>>;
  /** Carried through untouched (MajorDomo keeps the command, resource, cutoff patterns here). */
  readonly meta?: unknown;
}

/** What a task's last successful run read and wrote: a verifying trace. */
export interface TraceRecord {
  /**
   * Hash of every input that existed when the run started (required, optional, discovered); the
   * projected hash for an input the rule projects, when it was known.
   */
  readonly inputs: Readonly<Record<string, string>>;
  readonly outputs: Readonly<Record<string, string>>;
  /**
   * Dependencies the build discovered, existing or not. When absent, every input not declared
   * by the rule is taken as discovered.
   */
  readonly discovered?: readonly string[];
}

export interface TaskInstance {
  /** `${ruleId}:${stem}`. */
  readonly id: string;
  readonly ruleId: string;
  readonly stem: string;
  readonly bindings: Readonly<Record<string, string>>;
  /** Inputs that exist now: required, then optional, then discovered. */
  readonly inputs: readonly string[];
  /** Hash of each of `inputs` as the build must see them. */
  readonly inputHashes: Readonly<Record<string, string>>;
  readonly outputs: readonly string[];
  /** 1-based pass within the current round of its component. */
  readonly pass: number;
  readonly component: number;
  /** True when the component is a cycle rebuilt to a fixpoint. */
  readonly cyclic: boolean;
  /** Run number, set by started(); pass it back to completed() to drop late results. */
  readonly run: number;
  readonly meta: unknown;
}

export type WarningCode =
  | 'DEPGRAPH_OUTPUT_CONFLICT'
  | 'DEPGRAPH_DERIVATION_TOO_DEEP'
  | 'DEPGRAPH_UNDECLARED_OUTPUT';

/** Something MajorDomo should log; nothing failed. */
export interface GraphWarning {
  readonly code: WarningCode;
  readonly message: string;
  readonly paths: readonly string[];
  readonly tasks: readonly string[];
}

export interface NonConvergence {
  readonly component: number;
  readonly tasks: readonly string[];
  /** Outputs whose hash still changed in the last pass. */
  readonly artefacts: readonly string[];
  readonly passes: number;
}

/** What a call changed. */
export interface ChangeResult {
  /** Task instances created (forward chaining). */
  readonly added: string[];
  /** Task instances that went away (rule retired, required input deleted, conflict lost). */
  readonly removed: string[];
  /** Tasks whose trace no longer matches. */
  readonly nowDirty: string[];
  /** Running tasks the caller must cancel: an input changed under them, or they went away. */
  readonly cancel: string[];
  /** Existing outputs whose producing task went away: they are now plain files. */
  readonly orphaned: string[];
  readonly warnings: GraphWarning[];
}

export interface CompletedReport {
  /** Hash of each output written (the cutoff digest when the rule ignores lines). */
  readonly outputs: Readonly<Record<string, string>>;
  /** Dependencies found while building; replaces those of the previous run. */
  readonly discovered?: readonly string[];
  /** The run number from started(); a mismatch marks the result stale. */
  readonly run?: number;
  /** Projected hashes of outputs as written (path → projection key → hash). */
  readonly projections?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * Projected hashes of the inputs the run read, at the hashes it was started with (path →
   * projection key → hash): recorded in its trace when the graph did not know them.
   */
  readonly inputProjections?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export interface CompletedResult extends ChangeResult {
  /** True when the task was not running (cancelled, retired, or an old run): nothing recorded. */
  readonly stale: boolean;
  /** Outputs whose hash changed. */
  readonly changed: string[];
  /** Outputs rebuilt with the same hash: early cutoff, their dependants stay clean. */
  readonly cutoff: string[];
  /** Components that just hit their pass limit. */
  readonly nonConvergent: NonConvergence[];
}

export interface Status {
  /** Nothing running and nothing ready: what is left is blocked on failures or non-convergence. */
  readonly idle: boolean;
  readonly running: string[];
  readonly dirty: string[];
  /** Dirty tasks that cannot run: a required input is missing, they failed, or do not converge. */
  readonly blocked: string[];
  readonly failed: Array<{ task: string; reason: string }>;
  readonly nonConvergent: NonConvergence[];
}

export type ArtefactState =
  | 'source'
  | 'up_to_date'
  | 'dirty'
  | 'building'
  | 'failed'
  /** Its producer's build was cancelled on request: held until an input changes or a rebuild. */
  | 'cancelled'
  | 'not_converging'
  | 'missing';

export interface WhyStep {
  readonly artefact: string;
  readonly because: string;
}

export interface DependencyManagerOptions {
  /** Passes a cycle may take before it is reported as not converging (default 5, as latexmk). */
  readonly passLimit?: number;
  /** Longest chain of generated inputs instantiated (guards rules like `{stem}.x -> {stem}.x.x`). */
  readonly maxDerivationDepth?: number;
}

/** A path's strings as the graph holds them (DependencyManager.stringsAt). */
export interface PathStrings {
  path: string;
  hash: string | undefined;
  /** Id of the task producing it. */
  producer: string | undefined;
}

/** How fromBytes reads the compact form. */
export interface ReadOptions {
  /**
   * The caller has checked the bytes against a digest of its own (MajorDomo: the snapshot's
   * sha256, before any of it is used): the body's crc32 is not computed again (~5-15 ms at 100k
   * artefacts). Every other check stays.
   */
  readonly verified?: boolean;
}

/** Everything the graph is derived from; what MajorDomo persists. */
export interface GraphState {
  readonly rules: readonly RuleSpec[];
  readonly artefacts: Readonly<Record<string, string>>;
  readonly traces: Readonly<Record<string, TraceRecord>>;
  /** Known projected hashes of the artefacts' current bytes (path → key → hash). */
  readonly projections?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}
