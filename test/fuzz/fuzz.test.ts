import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeInput, type FuzzInput, sha256, TARGET_NAMES, targets } from './arbitraries.js';
import { FuzzRig } from './rig.js';

/**
 * Fuzzing over real processes (nats-server and the four services, each with its role's
 * credentials): every NATS subject a service consumes, every bucket a service reads, every REST
 * route and the watched workspace get structurally valid messages with hostile mutations and raw
 * garbage. Properties: no service process exits; every input the protocol refuses is
 * dead-lettered, and a refused request is answered with a validation error naming the field;
 * nothing is answered CP_INTERNAL or 5xx; and afterwards the system still builds.
 *
 * CI runs a fixed seed (CP_FUZZ_SEED) and CP_FUZZ_RUNS inputs per target; set either to explore.
 * `pnpm bench fuzz` throws 100,000 inputs with the same generators.
 */
const SEED = Number(process.env.CP_FUZZ_SEED ?? 20261203);
const RUNS = Number(process.env.CP_FUZZ_RUNS ?? 40);

describe('fuzzing the whole stack', { timeout: 300_000 }, () => {
  let rig: FuzzRig;
  const tally: Record<string, Record<string, number>> = {};

  /** One input, judged: a problem or a dead service fails the property with the input shown. */
  const check = async (input: FuzzInput) => {
    const o = await rig.send(input);
    const row = tally[o.target] ?? {};
    tally[o.target] = row;
    row[o.outcome] = (row[o.outcome] ?? 0) + 1;
    if (o.code) row[o.code] = (row[o.code] ?? 0) + 1;
    const dead = rig.dead();
    if (o.problem || dead.length)
      throw new Error(
        `${o.problem ?? ''}${dead.length ? ` services down: ${dead.join(', ')}` : ''}\ninput: ${describeInput(input)}\n${rig.logs(2500)}`,
      );
  };

  /** fast-check's own report prints the bytes as numbers: this one shows the input as text. */
  const report = (out: fc.RunDetails<[FuzzInput]>) => {
    if (!out.failed) return;
    const input = out.counterexample?.[0];
    throw new Error(
      `seed ${out.seed}, path ${out.counterexamplePath}, after ${out.numRuns} runs and ${out.numShrinks} shrinks: ${input ? describeInput(input) : '(no counterexample)'}\n${String(out.errorInstance)}`,
    );
  };

  beforeAll(async () => {
    rig = await FuzzRig.start();
    await rig.sentinel('before');
  }, 180_000);
  afterAll(async () => {
    console.log(`fuzz outcomes (seed ${SEED}, ${RUNS} runs a target): ${JSON.stringify(tally)}`);
    console.log(
      `valid inputs dead-lettered by a handler: ${JSON.stringify(Object.fromEntries(rig?.validLetterReasons ?? []), null, 1)}`,
    );
    await rig?.[Symbol.asyncDispose]();
  });

  for (const name of TARGET_NAMES) {
    it(`${name}: refused inputs are dead-lettered or answered as invalid, no service goes down`, async () => {
      const target = targets(rig.ctx).find((t) => t.name === name)!;
      await fc.assert(fc.asyncProperty(target.arb, check), {
        seed: SEED,
        // An answer takes MajorDomo's whole gathering deadline (0.5 s here): fewer of them.
        numRuns: name === 'how-to-build.answer' ? Math.max(5, Math.ceil(RUNS / 5)) : RUNS,
        reporter: report,
      });
      expect(rig.dead()).toEqual([]);
    });
  }

  it('model: valid source edits interleaved with garbage on every target are all built', async () => {
    let run = 0;
    type Model = { edits: Map<string, string>; prefix: string };
    class Edit implements fc.AsyncCommand<Model, FuzzRig> {
      constructor(
        readonly stem: string,
        readonly text: string,
      ) {}
      check = () => true;
      async run(m: Model, r: FuzzRig) {
        const stem = `${m.prefix}-${this.stem}`;
        r.stack.write(`src/${stem}.txt`, this.text);
        m.edits.set(stem, this.text);
      }
      toString = () => `edit ${this.stem} ${JSON.stringify(this.text)}`;
    }
    class Garbage implements fc.AsyncCommand<Model, FuzzRig> {
      constructor(readonly input: FuzzInput) {}
      check = () => true;
      async run() {
        await check(this.input);
      }
      toString = () => `garbage ${describeInput(this.input).slice(0, 300)}`;
    }
    const all = targets(rig.ctx);
    const commands = [
      fc
        .tuple(fc.constantFrom('a', 'b', 'c'), fc.stringMatching(/^[a-z ]{0,30}$/))
        .map(([stem, text]) => new Edit(stem, `${text}\n`)),
      fc.oneof(...all.map((t) => t.arb)).map((input) => new Garbage(input)),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 20 }), async (cmds) => {
        const model: Model = { edits: new Map(), prefix: `model${++run}` };
        await fc.asyncModelRun(() => ({ model, real: rig }), cmds);
        for (const [stem, text] of model.edits) {
          const want = sha256(text.toUpperCase());
          await rig.stack.until(
            `out/${stem}.upper`,
            (a) => a.status === 'up_to_date' && a.sha256 === want,
            90_000,
          );
        }
        expect(rig.dead()).toEqual([]);
      }),
      { seed: SEED, numRuns: Math.max(2, Math.ceil(RUNS / 10)) },
    );
  });

  it('still builds afterwards, and after a MajorDomo restart over every fuzzed bucket', async () => {
    expect(rig.dead()).toEqual([]);
    await rig.sentinel('after');
    await rig.restartMajorDomo();
    await rig.sentinel('restarted');
    expect(rig.dead()).toEqual([]);
  });
});
