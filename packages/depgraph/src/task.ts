import { GraphInvariantError } from './checked.js';
import { NONE, packedDiscovered, packedInputs } from './id-lists.js';
import type { CompiledRule } from './rule.js';
import type { NonConvergence } from './types.js';

/** One run in flight: what it was given, so a change under it can be detected. */
export interface Run {
  readonly run: number;
  /** Hash of every input that existed at dispatch (path id → hash): the trace's inputs. */
  readonly snapshot: Map<number, string>;
  /** Projected hash of each projected input, when the graph knew it at dispatch. */
  readonly projected: Map<number, string> | undefined;
  readonly pass: number;
  /** The task's runPass before this run: a cancelled run gives its pass back. */
  readonly prevRunPass: number;
}

/** A rule instance. Graph structure is readonly; the rest is scheduling state. */
export class Task {
  alive = true;
  /**
   * Required, optional, then discovered inputs, without duplicates (path ids): `required` itself
   * when it is all of them (lists of ids are never changed in place, so may be shared).
   */
  inputs: readonly number[] = NONE;
  comp = -1;
  dirty = false;
  /** Pass of the current round in which it last ran; 0 when it has not run in this round. */
  runPass = 0;
  running: Run | undefined = undefined;
  failed: string | undefined = undefined;
  /** Cancelled on request: not run again until an input changes or a rebuild is asked for. */
  held = false;
  nc: NonConvergence | undefined = undefined;
  /** Inputs the rule projects: path id → projection key (absent when none). */
  projected: ReadonlyMap<number, string> | undefined = undefined;

  /** The placeholders' values, when known; else made from the stem when first read. */
  #bindings: Readonly<Record<string, string>> | undefined;
  #discovered: readonly number[] = NONE;
  /**
   * A restored task's packed trace record (its words, the record's offset), while its discovered
   * inputs are still only there: made into a list when first read (few are; see packedInputs).
   */
  #packed: Uint32Array | undefined;
  #packedAt = 0;

  /**
   * `bindings` may be left out for a rule whose only placeholder is {stem}, or that has none: a
   * restart restores 100,000s of tasks and reads few tasks' bindings (an object and a string
   * fewer per task for the young generation to copy).
   */
  constructor(
    readonly idx: number,
    readonly id: string,
    readonly rule: CompiledRule,
    bindings: Readonly<Record<string, string>> | undefined,
    readonly required: readonly number[],
    readonly optional: readonly number[],
    readonly outputs: readonly number[],
    readonly depth: number,
  ) {
    this.#bindings = bindings;
  }

  /** The instance's stem: its id after the rule's id and the colon. */
  get stem(): string {
    return this.id.slice(this.rule.id.length + 1);
  }

  get bindings(): Readonly<Record<string, string>> {
    this.#bindings ??= stemBindings(this.rule, this.stem);
    return this.#bindings;
  }

  /** Inputs found by running it (path ids, as the graph resolved them from its trace). */
  get discovered(): readonly number[] {
    if (this.#packed) {
      this.#discovered = packedDiscovered(
        this.#packed,
        this.#packedAt,
        this.required,
        this.optional,
      );
      this.#packed = undefined;
    }
    return this.#discovered;
  }

  set discovered(list: readonly number[]) {
    this.#discovered = list;
    this.#packed = undefined;
  }

  /**
   * A restored task's discovered inputs are those of the packed trace record at `at` in `words`
   * (a snapshot's, checked as it was decoded); returns its inputs, as inputsOf would give them.
   */
  restorePacked(words: Uint32Array, at: number): readonly number[] {
    this.#packed = words;
    this.#packedAt = at;
    return packedInputs(words, at, this.required, this.optional);
  }

  /** An input changed, or it ran: neither a failure nor a user's cancel holds it any longer. */
  unblock(): void {
    this.failed = undefined;
    this.held = false;
  }
}

/** The bindings of a rule with no placeholder or only {stem}, from its stem. */
export function stemBindings(rule: CompiledRule, stem: string): Record<string, string> {
  if (rule.names.length === 0 && stem === '') return {};
  if (rule.names.length === 1 && rule.names[0] === 'stem') return { stem };
  throw new GraphInvariantError('bindings for the placeholders of rule', rule.id);
}

/** Precedence when two tasks claim one output: lowest rule id, then lowest task id. */
export function beats(a: { rule: { id: string }; id: string }, b: typeof a): boolean {
  if (a.rule.id !== b.rule.id) return a.rule.id < b.rule.id;
  return a.id < b.id;
}
