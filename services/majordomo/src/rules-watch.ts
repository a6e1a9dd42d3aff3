import { issuesOf, type Logger, type TypedKv, type Versioned } from '@computepods/bus';
import { RulesDeclared } from '@computepods/protocol';
import { unparsed } from './restore-state.js';

type OnChange = (chef: string, decl: RulesDeclared | undefined, revision: number) => void;

/**
 * One watch of the rules bucket for MajorDomo's three readers of it (its rules registry, chef
 * liveness, chef replicas), each declaration validated once, not once per reader: a watch each
 * parsed every declaration three times at a start (at 100k artefacts, 1,204 rules in 10
 * declarations: ~140 ms of a restart before ready) and at each chef's heartbeat. A declaration
 * at the revision the restore read it (`known`, what validDeclarations gave) is not parsed again.
 *
 * watchValid() is TypedKv's: the current values, then every change, until the returned stop();
 * an invalid value is logged and skipped (the last valid one stands), a delete is undefined.
 */
export class RulesWatch {
  readonly #current = new Map<string, Versioned<RulesDeclared>>();
  readonly #readers = new Set<OnChange>();
  #stop: (() => void) | undefined;

  private constructor(
    readonly kv: TypedKv<typeof RulesDeclared>['kv'],
    readonly logger: Logger,
    readonly known: ReadonlyMap<string, Versioned<RulesDeclared>>,
  ) {}

  static async start(
    rules: TypedKv<typeof RulesDeclared>,
    known: ReadonlyMap<string, Versioned<RulesDeclared>>,
    logger: Logger,
  ): Promise<RulesWatch> {
    const w = new RulesWatch(rules.kv, logger, known);
    w.#stop = await unparsed(rules).watchValid((chef, value, revision) =>
      w.#changed(chef, value, revision),
    );
    return w;
  }

  async watchValid(onChange: OnChange): Promise<() => void> {
    for (const [chef, { value, revision }] of this.#current) onChange(chef, value, revision);
    this.#readers.add(onChange);
    return () => {
      this.#readers.delete(onChange);
    };
  }

  stop(): void {
    this.#readers.clear();
    this.#stop?.();
  }

  #changed(chef: string, value: unknown, revision: number): void {
    let decl: RulesDeclared | undefined;
    if (value !== undefined) {
      const known = this.known.get(chef);
      if (known?.revision === revision) decl = known.value;
      else {
        const parsed = RulesDeclared.safeParse(value);
        if (!parsed.success) {
          this.logger.warn(
            { bucket: 'rules', key: chef, issues: issuesOf(parsed.error) },
            'invalid KV value ignored',
          );
          return;
        }
        decl = parsed.data;
      }
      this.#current.set(chef, { value: decl, revision });
    } else this.#current.delete(chef);
    for (const read of this.#readers) read(chef, decl, revision);
  }
}
