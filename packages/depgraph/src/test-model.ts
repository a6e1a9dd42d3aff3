import { defined } from '@computepods/testkit';
import fc from 'fast-check';
import { sha } from './test-harness.js';
import type { RuleSpec, TaskInstance } from './types.js';

/**
 * Random build graphs for property tests, with simulated deterministic tasks.
 *
 * Rule j reads required inputs only from sources and outputs of rules before it, so forward
 * chaining is well founded; optional and discovered inputs may also read outputs of rules at or
 * after j, which makes cycles. An output is { base, n }: `base` hashes the inputs read "forward",
 * `n` is a counter fed back through cycles. Modes:
 * - pure: n = 0;                         - const: the same output whatever the inputs;
 * - sat(k): n = min(k, 1 + max n fed back), so a cycle converges after about k passes;
 * - flip: n flips each time it reads its own output, so its cycle never converges.
 * With forward bases and backward counters the fixpoint is unique, so an incremental build must
 * equal a build from scratch wherever it converges.
 */
export type Mode = 'pure' | 'const' | 'sat1' | 'sat2' | 'flip';

export interface ModelRule {
  readonly index: number;
  readonly mode: Mode;
  readonly spec: RuleSpec;
  /** Paths this task may discover; which ones depends on its required inputs. */
  readonly discoverable: readonly string[];
}

export interface Model {
  readonly sources: readonly string[];
  readonly rules: readonly ModelRule[];
}

export interface ModelOptions {
  readonly cycles?: boolean;
  readonly discover?: boolean;
  readonly modes?: readonly Mode[];
  readonly maxRules?: number;
}

const ruleId = (j: number) => `r${j}`;
const outputsOf = (j: number, count: number) => ['a', 'b'].slice(0, count).map((x) => `r${j}.${x}`);

export function modelArb(options: ModelOptions = {}): fc.Arbitrary<Model> {
  const modes = options.modes ?? ['pure', 'const', 'sat1', 'sat2', 'flip'];
  const maxRules = options.maxRules ?? 6;
  const ruleArb = fc.record({
    mode: fc.constantFrom(...modes),
    outs: fc.integer({ min: 1, max: 2 }),
    req: fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 2 }),
    opt: fc.uniqueArray(fc.nat(), { maxLength: options.cycles ? 2 : 1 }),
    back: fc.boolean(),
    disc: fc.uniqueArray(fc.nat(), { maxLength: options.discover ? 2 : 0 }),
  });
  return fc
    .record({
      sources: fc.integer({ min: 1, max: 4 }),
      rules: fc.array(ruleArb, { minLength: 1, maxLength: maxRules }),
    })
    .map(({ sources, rules }) => {
      const src = Array.from({ length: sources }, (_, i) => `s${i}.src`);
      const outCounts = rules.map((r) => r.outs);
      const all = [
        ...src,
        ...rules.flatMap((_, j) => outputsOf(j, defined(outCounts[j], 'outCounts[j]'))),
      ];
      const built = rules.map((r, j): ModelRule => {
        const forward = [
          ...src,
          ...rules
            .slice(0, j)
            .flatMap((_, k) => outputsOf(k, defined(outCounts[k], 'outCounts[k]'))),
        ];
        const pick = (pool: string[], picks: number[]) => [
          ...new Set(picks.map((i) => defined(pool[i % pool.length], 'pool[i % pool.length]'))),
        ];
        const inputs = pick(forward, r.req);
        const own = outputsOf(j, r.outs);
        // Optional inputs may point back (cycles) when allowed; a flip rule always reads itself.
        const optPool = options.cycles && r.back ? all : forward;
        let optionalInputs = pick(optPool, r.opt).filter((p) => !inputs.includes(p));
        const self = defined(own[0], 'first output');
        if (r.mode === 'flip' && !optionalInputs.includes(self)) {
          optionalInputs = [...optionalInputs, self];
        }
        const discoverable = options.cycles ? pick(all, r.disc) : pick(forward, r.disc);
        return {
          index: j,
          mode: r.mode,
          spec: { id: ruleId(j), inputs, optionalInputs, outputs: own },
          discoverable,
        };
      });
      return { sources: src, rules: built };
    });
}

/** Contents by hash: simulated tools read what their inputs say. */
export class Contents {
  private readonly byHash = new Map<string, { base: string; n: number }>();

  put(value: { base: string; n: number }): string {
    const h = sha(JSON.stringify(value));
    this.byHash.set(h, value);
    return h;
  }

  get(hash: string | undefined) {
    return hash === undefined ? undefined : this.byHash.get(hash);
  }

  source(path: string, version: number): string {
    return this.put({ base: `${path}@${version}`, n: 0 });
  }
}

/** Rule index of the task producing `path`, or -1 for a source. */
function producerIndex(path: string): number {
  const m = /^r(\d+)\./.exec(path);
  return m ? Number(m[1]) : -1;
}

/**
 * The simulated build: a pure function of what it reads. It reads its declared inputs (as the
 * manager gave them) and the dependencies it discovers now, which depend only on its required
 * inputs; a discovered file the manager did not give it is read from `disk`, as a real build
 * would.
 */
export function simulate(
  model: Model,
  contents: Contents,
  task: TaskInstance,
  disk: (path: string) => string | undefined = () => undefined,
) {
  const rule = defined(model.rules.find((r) => r.spec.id === task.ruleId));
  const j = rule.index;
  const required = rule.spec.inputs.map((p) => task.inputHashes[p]).join(',');
  const discovered = rule.discoverable.filter(
    (_, i) => sha(`${required}#${i}`).charCodeAt(0) % 2 === 0,
  );
  const declared = [...rule.spec.inputs, ...(rule.spec.optionalInputs ?? [])];
  const forward: string[] = [];
  let fedBack = 0;
  for (const p of new Set([...declared, ...discovered])) {
    const h = task.inputHashes[p] ?? disk(p);
    if (h === undefined) continue;
    if (producerIndex(p) < j) forward.push(`${p}=${h}`);
    else fedBack = Math.max(fedBack, contents.get(h)?.n ?? 0);
  }
  forward.sort();
  const self = defined(task.outputs[0], 'first output');
  const own = contents.get(task.inputHashes[self] ?? disk(self));
  const n =
    rule.mode === 'sat1' || rule.mode === 'sat2'
      ? Math.min(rule.mode === 'sat1' ? 1 : 2, fedBack + 1)
      : rule.mode === 'flip'
        ? own
          ? 1 - own.n
          : 1
        : 0;
  const outputs: Record<string, string> = {};
  for (const o of task.outputs) {
    outputs[o] =
      rule.mode === 'const'
        ? contents.put({ base: `const ${o}`, n: 0 })
        : contents.put({ base: sha(`${o}|${forward.join(',')}`), n });
  }
  return { outputs, discovered };
}
