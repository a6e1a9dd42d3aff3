import {
  compilePattern,
  fillPattern,
  matchPattern,
  type Pattern,
  stemKey,
} from '@computepods/depgraph';
import { CpError, type Rule } from '@computepods/protocol';

interface Compiled {
  readonly names: readonly string[];
  readonly out0: Pattern;
  readonly aux: readonly Pattern[];
}

/**
 * Which task writes a file as an auxiliary (a .log, .fls, .blg beside its outputs): a rule's
 * auxiliary pattern matches it and the task it binds exists (produces the rule's first output),
 * or an on-demand build's answer named it. Such files are products: never sources.
 */
export class Auxiliaries {
  readonly #compiled = new WeakMap<Rule, Compiled>();
  /** Auxiliaries named by "can build from" answers: path → task id. */
  readonly #named = new Map<string, string>();

  name(taskId: string, paths: readonly string[]): void {
    for (const p of paths) this.#named.set(p, taskId);
  }

  /** Whether any answer named auxiliaries. */
  get named(): boolean {
    return this.#named.size > 0;
  }

  forget(taskId: string): void {
    for (const [p, t] of this.#named) if (t === taskId) this.#named.delete(p);
  }

  taskOf(
    path: string,
    rules: Iterable<Rule>,
    producerOf: (path: string) => string | undefined,
  ): string | undefined {
    const named = this.#named.get(path);
    if (named) return named;
    for (const rule of rules) {
      if (rule.auxiliaries.length === 0) continue;
      const c = this.#compile(rule);
      for (const pattern of c.aux) {
        const b = matchPattern(pattern, path);
        if (!b || c.names.some((n) => b[n] === undefined)) continue;
        const taskId = `${rule.id}:${stemKey(c.names, b)}`;
        if (producerOf(fillPattern(c.out0, b)) === taskId) return taskId;
      }
    }
    return undefined;
  }

  #compile(rule: Rule): Compiled {
    let c = this.#compiled.get(rule);
    if (!c) {
      // A declared rule has both (its schema says so); checked, not assumed.
      const [in0] = rule.inputs;
      const [out0] = rule.outputs;
      if (in0 === undefined || out0 === undefined)
        throw new CpError('CP_INTERNAL', `rule ${rule.id} names no input or no output`);
      c = {
        names: compilePattern(in0).names,
        out0: compilePattern(out0),
        aux: rule.auxiliaries.map(compilePattern),
      };
      this.#compiled.set(rule, c);
    }
    return c;
  }
}
