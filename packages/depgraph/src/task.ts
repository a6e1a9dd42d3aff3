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
  /** Required, optional, then discovered inputs, without duplicates (path ids). */
  inputs: number[] = [];
  discovered: readonly number[] = [];
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

  constructor(
    readonly idx: number,
    readonly id: string,
    readonly rule: CompiledRule,
    readonly stem: string,
    readonly bindings: Readonly<Record<string, string>>,
    readonly required: readonly number[],
    readonly optional: readonly number[],
    readonly outputs: readonly number[],
    readonly depth: number,
  ) {}

  /** An input changed, or it ran: neither a failure nor a user's cancel holds it any longer. */
  unblock(): void {
    this.failed = undefined;
    this.held = false;
  }
}

/** Precedence when two tasks claim one output: lowest rule id, then lowest task id. */
export function beats(a: { rule: { id: string }; id: string }, b: typeof a): boolean {
  if (a.rule.id !== b.rule.id) return a.rule.id < b.rule.id;
  return a.id < b.id;
}
