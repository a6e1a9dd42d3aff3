/**
 * The chaos driver shared by test/chaos/chaos.test.ts (CI, a few episodes) and bench/chaos
 * (minutes of them): a real stack (nats-server in operator mode, MajorDomo, a chef, a runner, the
 * fswatcher, one OS process each) on a project with a chain of three steps and a two-rule cycle
 * that converges, an edit storm written into the workspace while services and nats-server are
 * killed -9 (two at once, nats-server longer than MajorDomo's chef timeout), then everything
 * restarted, settled, and every artefact compared byte for byte with a from-scratch build of the
 * final sources (the same commands run by sh in a fresh folder).
 *
 *   const run = await ChaosRun.start({ seed: 42 });
 *   const ep = await run.episode('pair');   // a storm with two services down at once
 *   const report = await run.finish();      // lost / duplicated completions over the whole run
 *
 * The schedule of edits and faults comes from a seeded PRNG (CP_CHAOS_SEED replays one); what
 * the run asserts is states, never durations.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  type BuildResult,
  buckets,
  type StatusReply,
  streams,
  TaskRecord,
  TaskStateChanged,
} from '@computepods/protocol';
import { followBuildRecords } from '../src/build-records.js';
import { type ServiceName, Stack } from '../src/stack.js';
import { mdStatus } from '../src/watch-builds.js';

// --- the project -------------------------------------------------------------------------------

interface RuleDef {
  readonly id: string;
  readonly inputs: readonly string[];
  readonly optionalInputs?: readonly string[];
  readonly outputs: readonly string[];
  /** `{in0}` `{out0}` `{in}` `{stem}` as the chef fills them (quoted paths). */
  readonly command: string;
}

/**
 * The chain src → code (comments dropped: a comment edit stops here, early cutoff) → up → sum, and
 * a cycle doc ⇄ lines that converges in two passes: doc is the seed plus the line count lines
 * read from the previous doc; that count is the seed's plus one whatever it read before, so the
 * second pass's lines come out unchanged. Both have one fixpoint, reached from any start.
 */
const RULES: readonly RuleDef[] = [
  {
    id: 'strip',
    inputs: ['src/{stem}.txt'],
    outputs: ['mid/{stem}.code'],
    command: "grep -v '^#' {in0} > {out0} || true",
  },
  {
    id: 'upper',
    inputs: ['mid/{stem}.code'],
    outputs: ['mid/{stem}.up'],
    command: 'tr a-z A-Z < {in0} > {out0}',
  },
  {
    id: 'sum',
    inputs: ['mid/{stem}.up'],
    outputs: ['out/{stem}.sum'],
    command: '(wc -l < {in0}; sha256sum < {in0}) > {out0}',
  },
  {
    id: 'draft',
    inputs: ['cyc/{stem}.seed'],
    optionalInputs: ['cyc/{stem}.lines'],
    outputs: ['cyc/{stem}.doc'],
    command: '(cat {in0}; echo "lines: $(cat cyc/{stem}.lines 2>/dev/null || echo none)") > {out0}',
  },
  {
    id: 'lines',
    inputs: ['cyc/{stem}.doc'],
    outputs: ['cyc/{stem}.lines'],
    command: 'wc -l < {in0} > {out0}',
  },
];
const CHAIN_STEMS = ['a', 'b', 'c'];
const CYCLE_STEMS = ['x', 'y'];
const CHAIN_RULES = ['strip', 'upper', 'sum'];
const CYCLE_RULES = ['draft', 'lines'];
const sourceOf = (stem: string) =>
  CHAIN_STEMS.includes(stem) ? `src/${stem}.txt` : `cyc/${stem}.seed`;
const SOURCES = [...CHAIN_STEMS, ...CYCLE_STEMS].map(sourceOf);
const fill = (pattern: string, stem: string) => pattern.replaceAll('{stem}', stem);
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Every derived artefact of the project, path → producing task (`rule:stem`). */
export const DERIVED: ReadonlyMap<string, string> = new Map(
  RULES.flatMap((r) =>
    (CHAIN_RULES.includes(r.id) ? CHAIN_STEMS : CYCLE_STEMS).flatMap((stem) =>
      r.outputs.map((o) => [fill(o, stem), `${r.id}:${stem}`] as const),
    ),
  ),
);

/**
 * The command as the chef runs it, plus (for the stack only) one ledger line once it is done:
 * `<rule>:<stem> <hash of its inputs when it started> <task id>` (the local runner's task folder
 * holds its stdout). The ledger is outside the workspace, so
 * nothing watches it: it counts the commands that ran to their end, whatever the services
 * recorded about them (a task killed as it exits, or one whose inputs moved while it ran, is
 * in the ledger and was rightly not taken as a completion).
 */
function commandOf(rule: RuleDef, ledger: string | undefined): string {
  if (!ledger) return rule.command;
  return `h=$(cat {in} | sha256sum | cut -c1-16) && (${rule.command}) && echo "${rule.id}:{stem} $h $(basename "$(dirname "$(readlink /proc/$$/fd/1)")")" >> ${quote(ledger)}`;
}

function chefDefinition(ledger: string): string {
  return JSON.stringify({
    rules: RULES.map((r) => ({
      id: r.id,
      inputs: r.inputs,
      ...(r.optionalInputs ? { optionalInputs: r.optionalInputs } : {}),
      outputs: r.outputs,
      command: commandOf(r, ledger),
    })),
  });
}

/** Runs one rule for one stem by sh in `dir`, filling placeholders as the chef does. */
function runRule(dir: string, rule: RuleDef, stem: string): void {
  const inputs = rule.inputs.map((p) => fill(p, stem));
  const optional = (rule.optionalInputs ?? [])
    .map((p) => fill(p, stem))
    .filter((p) => existsSync(join(dir, p)));
  const outputs = rule.outputs.map((p) => fill(p, stem));
  for (const o of outputs) mkdirSync(dirname(join(dir, o)), { recursive: true });
  const cmd = commandOf(rule, undefined)
    .replaceAll('{in0}', quote(inputs[0]!))
    .replaceAll('{out0}', quote(outputs[0]!))
    .replaceAll('{in}', [...inputs, ...optional].map(quote).join(' '))
    .replaceAll('{stem}', stem);
  execFileSync('/bin/sh', ['-c', cmd], { cwd: dir });
}

/**
 * The from-scratch build: the final sources copied into a fresh folder, the chain run in order,
 * the cycle run until a pass changes no byte (at most 5 passes, as MajorDomo's limit).
 */
export function referenceBuild(dir: string, sources: ReadonlyMap<string, string>): void {
  rmSync(dir, { recursive: true, force: true });
  for (const [path, content] of sources) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const rule = (id: string) => RULES.find((r) => r.id === id)!;
  for (const stem of CHAIN_STEMS) for (const id of CHAIN_RULES) runRule(dir, rule(id), stem);
  for (const stem of CYCLE_STEMS) {
    const outs = CYCLE_RULES.flatMap((id) => rule(id).outputs.map((o) => join(dir, fill(o, stem))));
    const snapshot = () => outs.map((f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')).join();
    for (let pass = 0; pass < 5; pass++) {
      const before = snapshot();
      for (const id of CYCLE_RULES) runRule(dir, rule(id), stem);
      if (snapshot() === before) break;
    }
  }
}

// --- the schedule ------------------------------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SERVICES: readonly ServiceName[] = ['majordomo', 'chef', 'runner', 'fswatcher'];
/** Words the chain's code lines are drawn from: code comes back to bytes it had before. */
const WORDS = ['alpha', 'beta', 'gamma', 'delta'];

/**
 * An episode's faults. `pair`: two services down at once, overlapping (killed one after the
 * other, restarted in another order). `nats`: nats-server killed -9 and kept down longer than
 * the chef timeout, a service killed during the outage and started while NATS is still down.
 * `mixed`: one then the other, with single kills between.
 */
export type EpisodeKind = 'pair' | 'nats' | 'mixed';

type Step =
  | { readonly kind: 'edit'; readonly path: string; readonly content: string }
  | { readonly kind: 'pause'; readonly ms: number }
  | { readonly kind: 'kill'; readonly service: ServiceName }
  | { readonly kind: 'start'; readonly service: ServiceName }
  | { readonly kind: 'natsDown' }
  | { readonly kind: 'natsUp' };

export interface ChaosOptions {
  readonly seed: number;
  /** MajorDomo's CP_CHEF_TIMEOUT_MS; NATS outages last longer than this. */
  readonly chefTimeoutMs?: number;
  /** Edits per storm burst (between two faults). */
  readonly editsPerBurst?: number;
  /** A settle that takes longer fails the run, with every service's log. */
  readonly settleTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface EpisodeReport {
  readonly kind: EpisodeKind;
  readonly edits: number;
  readonly kills: Partial<Record<ServiceName, number>>;
  readonly natsOutages: number;
  /** From the last fault repaired (every process up again) to settled and verified. */
  readonly settleMs: number;
  readonly mismatches: readonly string[];
}

export interface ChaosReport {
  readonly seed: number;
  readonly episodes: readonly EpisodeReport[];
  readonly edits: number;
  readonly kills: Record<ServiceName, number>;
  readonly natsOutages: number;
  /** Commands run to their end (ledger lines). */
  readonly executions: number;
  /**
   * Commands run to their end twice in a row on the same inputs (ledger): not all duplicates
   * (see finish), reported for the record.
   */
  readonly reruns: readonly string[];
  /** Succeeded build results stored in the events stream. */
  readonly succeededResults: number;
  readonly lost: readonly string[];
  readonly duplicated: readonly string[];
  readonly mismatches: readonly string[];
}

export class ChaosRun implements AsyncDisposable {
  readonly #rand: () => number;
  readonly #log: (line: string) => void;
  readonly #chefTimeoutMs: number;
  readonly #editsPerBurst: number;
  readonly #settleTimeoutMs: number;
  readonly #ledger: string;
  readonly #chefFile: string;
  /** What the workspace's sources hold now (the storm's last write of each). */
  readonly sources = new Map<string, string>();
  readonly episodes: EpisodeReport[] = [];
  /** Every result a chef stored since the run began, as it came (build-records.ts). */
  readonly #results: Array<BuildResult & { time: string }> = [];
  #edits = 0;

  private constructor(
    readonly stack: Stack,
    readonly options: ChaosOptions,
  ) {
    this.#rand = prng(options.seed);
    this.#log = options.log ?? (() => undefined);
    this.#chefTimeoutMs = options.chefTimeoutMs ?? 2_000;
    this.#editsPerBurst = options.editsPerBurst ?? 6;
    this.#settleTimeoutMs = options.settleTimeoutMs ?? 120_000;
    this.#ledger = stack.dir.join('ledger.txt');
    this.#chefFile = stack.dir.join('chef.json');
  }

  static async start(options: ChaosOptions): Promise<ChaosRun> {
    const stack = await Stack.start('chaos');
    const run = new ChaosRun(stack, options);
    followBuildRecords(stack.bus, (r, time) => run.#results.push({ ...r, time }));
    try {
      writeFileSync(run.#chefFile, chefDefinition(run.#ledger));
      writeFileSync(run.#ledger, '');
      for (const path of SOURCES) run.#write(path, run.#content(path));
      await Promise.all(SERVICES.map((s) => run.#start(s)));
      const t0 = Date.now();
      const st = await run.#settle();
      run.#log(`initial build settled in ${Date.now() - t0} ms`);
      const bad = run.#compare(st);
      if (bad.length) throw new Error(`initial build differs: ${bad.join('; ')}\n${stack.logs()}`);
    } catch (err) {
      await run[Symbol.asyncDispose]();
      throw err;
    }
    return run;
  }

  #env(service: ServiceName): Record<string, string> {
    const base = { CP_LOG_LEVEL: 'info' };
    switch (service) {
      case 'majordomo':
        return { ...base, CP_CHEF_TIMEOUT_MS: String(this.#chefTimeoutMs), CP_CHEF_PING_MS: '300' };
      case 'chef':
        return {
          ...base,
          CP_CHEF: 'chaos',
          CP_CHEF_DEFINITION: this.#chefFile,
          // At least three heartbeats per timeout (services/chef/README.md).
          CP_CHEF_HEARTBEAT_MS: String(Math.max(100, Math.floor(this.#chefTimeoutMs / 4))),
        };
      case 'runner':
        // A stable id: the restarted runner adopts what the killed one had in flight.
        return { ...base, CP_RUNNER_ID: 'chaos-runner' };
      case 'fswatcher':
        return base;
    }
  }

  #start(service: ServiceName) {
    return this.stack.start(service, this.#env(service));
  }

  /** In place, as editors that truncate and rewrite do: the watcher may see a file half-saved. */
  #write(path: string, content: string): void {
    const full = join(this.stack.workspace, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    this.sources.set(path, content);
  }

  /** New bytes for a source: never seen before as a whole, code lines drawn from few words. */
  #content(path: string): string {
    const n = ++this.#edits;
    const r = this.#rand;
    if (path.startsWith('cyc/')) {
      const lines = 1 + Math.floor(r() * 4);
      return Array.from({ length: lines }, (_, i) => `seed ${n} line ${i}\n`).join('');
    }
    // Code from a small vocabulary (so intermediates come back to earlier bytes); a comment
    // that changes every time (so the source never does); sometimes only the comment changes.
    const prev = this.sources.get(path);
    const code =
      prev && r() < 0.3
        ? prev.replace(/^#.*\n/, '')
        : Array.from(
            { length: 1 + Math.floor(r() * 3) },
            () => `${WORDS[Math.floor(r() * WORDS.length)]}\n`,
          ).join('');
    return `# edit ${n}\n${code}`;
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#rand() * xs.length)]!;
  }

  #burst(steps: Step[], edits = this.#editsPerBurst): void {
    for (let i = 0; i < edits; i++) {
      const path = this.#pick(SOURCES);
      steps.push({ kind: 'edit', path, content: '' });
      steps.push({ kind: 'pause', ms: 20 + Math.floor(this.#rand() * 300) });
    }
  }

  /** The episode's steps, drawn from the PRNG (edit contents are drawn when written). */
  #plan(kind: EpisodeKind): Step[] {
    const steps: Step[] = [];
    const pair = () => {
      const first = this.#pick(SERVICES);
      const second = this.#pick(SERVICES.filter((s) => s !== first));
      steps.push({ kind: 'kill', service: first });
      this.#burst(steps);
      steps.push({ kind: 'kill', service: second });
      this.#burst(steps);
      // Restarted in either order: the first one back is not always the first one killed.
      const [a, b] = this.#rand() < 0.5 ? [first, second] : [second, first];
      steps.push({ kind: 'start', service: a });
      this.#burst(steps);
      steps.push({ kind: 'start', service: b });
    };
    const nats = () => {
      const victim = this.#pick(SERVICES);
      steps.push({ kind: 'natsDown' });
      this.#burst(steps);
      steps.push({ kind: 'kill', service: victim });
      this.#burst(steps);
      // Down longer than the chef timeout: MajorDomo sees its chef silent when NATS is back.
      steps.push({ kind: 'pause', ms: this.#chefTimeoutMs + 500 });
      // Started while NATS is down: it connects (with backoff) when the server is back.
      steps.push({ kind: 'start', service: victim });
      steps.push({ kind: 'natsUp' });
    };
    this.#burst(steps);
    if (kind === 'pair') pair();
    else if (kind === 'nats') nats();
    else {
      const order = this.#rand() < 0.5 ? [pair, nats] : [nats, pair];
      for (const f of order) {
        f();
        this.#burst(steps);
        steps.push({ kind: 'kill', service: this.#pick(SERVICES) });
        this.#burst(steps, 2);
        steps.push({ kind: 'start', service: 'majordomo' });
      }
    }
    this.#burst(steps);
    return steps;
  }

  /** One storm with its faults, then everything up, settled, and compared with a fresh build. */
  async episode(kind: EpisodeKind): Promise<EpisodeReport> {
    const steps = this.#plan(kind);
    const kills: Partial<Record<ServiceName, number>> = {};
    let edits = 0;
    let natsOutages = 0;
    const starting = new Map<ServiceName, Promise<unknown>>();
    const edit0 = this.#edits;
    for (const step of steps) {
      switch (step.kind) {
        case 'edit':
          this.#write(step.path, this.#content(step.path));
          edits++;
          break;
        case 'pause':
          await new Promise((r) => setTimeout(r, step.ms));
          break;
        case 'kill': {
          await starting.get(step.service);
          starting.delete(step.service);
          const p = this.stack.procs.get(step.service);
          if (!p?.running) break; // already down in this episode
          this.#log(`kill -9 ${step.service}`);
          await p.kill9();
          kills[step.service] = (kills[step.service] ?? 0) + 1;
          break;
        }
        case 'start':
          if (this.stack.procs.get(step.service)?.running || starting.has(step.service)) break;
          this.#log(`start ${step.service}${this.stack.nats.running ? '' : ' (NATS down)'}`);
          // Not awaited while NATS is down: it is ready only once the server is back.
          starting.set(step.service, this.#start(step.service));
          if (this.stack.nats.running) {
            await starting.get(step.service);
            starting.delete(step.service);
          }
          break;
        case 'natsDown':
          this.#log('kill -9 nats-server');
          await this.stack.nats.kill9();
          natsOutages++;
          break;
        case 'natsUp':
          this.#log('start nats-server');
          await this.stack.nats.start();
          break;
      }
    }
    // Everything up again: the last fault is repaired from here on.
    if (!this.stack.nats.running) await this.stack.nats.start();
    await Promise.all(starting.values());
    for (const s of SERVICES) if (!this.stack.procs.get(s)?.running) await this.#start(s);
    const t0 = Date.now();
    const settled = await this.#settle();
    const settleMs = Date.now() - t0;
    const mismatches = this.#compare(settled);
    const report: EpisodeReport = { kind, edits, kills, natsOutages, settleMs, mismatches };
    this.episodes.push(report);
    this.#log(
      `episode ${this.episodes.length} (${kind}): edits ${edits} (${edit0 + 1}..${this.#edits}), kills ${JSON.stringify(kills)}, NATS outages ${natsOutages}, settled in ${settleMs} ms, mismatches ${mismatches.length}`,
    );
    return report;
  }

  /**
   * Settled: MajorDomo idle, every source recorded with the bytes last written, every derived
   * artefact up to date. States only; the timeout bounds a failure and shows every log.
   */
  async #settle(): Promise<StatusReply> {
    const want = new Map([...this.sources].map(([p, c]) => [p, sha256(c)]));
    const end = Date.now() + this.#settleTimeoutMs;
    let last: StatusReply | undefined;
    for (;;) {
      last = await mdStatus(this.stack.bus).catch(() => undefined);
      if (last?.idle) {
        const rec = new Map(last.artefacts.map((a) => [a.path, a]));
        const sourcesIn = [...want].every(([p, h]) => rec.get(p)?.sha256 === h);
        const built = [...DERIVED.keys()].every((p) => rec.get(p)?.status === 'up_to_date');
        if (sourcesIn && built) return last;
      }
      if (Date.now() > end) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const notDone = last?.artefacts
      .filter((a) => a.status !== 'up_to_date' && a.status !== 'source')
      .map((a) => `${a.path}=${a.status}${a.error ? ` (${a.error.slice(0, 300)})` : ''}`);
    const stale = [...want].filter(
      ([p, h]) => last?.artefacts.find((a) => a.path === p)?.sha256 !== h,
    );
    throw new Error(
      `seed ${this.options.seed}: not settled within ${this.#settleTimeoutMs} ms; idle ${last?.idle}, running ${JSON.stringify(last?.running)}, not done ${JSON.stringify(notDone)}, sources not recorded ${JSON.stringify(stale.map(([p]) => p))}\n${await this.#queues()}\n${this.stack.logs(6000)}`,
    );
  }

  /** The work queues' streams and consumers as the server has them (for a settle that failed). */
  async #queues(): Promise<string> {
    const { jsm, project } = this.stack.bus;
    const out: string[] = [];
    for (const stream of [
      streams.builds(project),
      streams.tasks(project),
      streams.events(project),
    ]) {
      try {
        const { state } = await jsm.streams.info(stream);
        out.push(
          `${stream}: first ${state.first_seq} last ${state.last_seq} messages ${state.messages}`,
        );
        for await (const c of jsm.consumers.list(stream))
          out.push(
            `  ${c.name}: delivered ${c.delivered.stream_seq} ack floor ${c.ack_floor.stream_seq} pending ${c.num_pending} ack pending ${c.num_ack_pending} redelivered ${c.num_redelivered} waiting ${c.num_waiting}`,
          );
      } catch (err) {
        out.push(`${stream}: ${(err as Error).message}`);
      }
    }
    return out.join('\n');
  }

  /**
   * Every derived artefact: workspace bytes equal to the from-scratch build's, and MajorDomo's
   * record holds their hash. Returns what differs.
   */
  #compare(status: StatusReply): string[] {
    const ref = this.stack.dir.join('reference');
    referenceBuild(ref, this.sources);
    const bad: string[] = [];
    const records = new Map(status.artefacts.map((a) => [a.path, a.sha256]));
    for (const path of DERIVED.keys()) {
      const want = readFileSync(join(ref, path));
      const full = join(this.stack.workspace, path);
      const got = existsSync(full) ? readFileSync(full) : undefined;
      if (!got?.equals(want))
        bad.push(
          `${path}: workspace ${JSON.stringify(got?.toString())}, fresh build ${JSON.stringify(want.toString())}`,
        );
      else if (records.get(path) !== sha256(want))
        bad.push(`${path}: bytes right, MajorDomo's record has ${records.get(path)}`);
    }
    return bad;
  }

  /**
   * Lost and duplicated completions over the whole run, from what NATS stored and the ledger.
   *
   * A completion is acknowledged at two places: the runner's KV record of a task turning
   * `finished` (written before it is published), and the chef's `succeeded` build result stored
   * by JetStream (the build's result, which MajorDomo consumes from a durable consumer).
   *
   * Lost:
   * - a task recorded `finished` whose build never got a result stored (any status: a result
   *   that says "cancelled, the inputs moved" is an answer; none at all is a completion dropped
   *   between runner and chef);
   * - a build result stored that MajorDomo's consumer has not acknowledged once settled;
   * - an artefact whose final record names a build with no succeeded result stored, or other
   *   bytes than that result reported.
   *
   * Duplicated:
   * - a task id published `finished` more than once, or whose record's history has it twice;
   * - one build (same rule, stem and input hashes: one build id) recorded `finished` by two tasks
   *   in a row for its target, that is with no other task of the target finished in between (so
   *   the first one's outputs were still there), unless the first was reported as no success in
   *   between (an input moved while it ran: what it read was not the build's inputs). The same
   *   inputs built again after another build of the target overwrote its outputs are a new
   *   completion, not a duplicate (`1:copy, 1:copy` in a cycle's pass log is one of these only
   *   when both ran to completion).
   */
  async finish(): Promise<ChaosReport> {
    const { stack } = this;
    const events = await stack.readStream(streams.events(stack.project));
    const results = this.#results;
    const finishedEvents = new Map<string, number>();
    for (const e of events) {
      if (e.type === 'task.state') {
        const s = TaskStateChanged.parse(e.body);
        if (s.state === 'finished')
          finishedEvents.set(s.taskId, (finishedEvents.get(s.taskId) ?? 0) + 1);
      }
    }
    const tasksKv = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const tasks = [...(await tasksKv.entries())].map(([, { value }]) => value);

    const lost: string[] = [];
    const resultBuilds = new Set(results.map((r) => r.buildId));
    for (const t of tasks) {
      if (t.state !== 'finished' || !t.task.buildId || resultBuilds.has(t.task.buildId)) continue;
      // Superseded, not lost: MajorDomo moved on to other inputs of the target, and a result of
      // a later build of it came back (its chef died holding this one, which was purged with
      // the chef's queue when MajorDomo retired it, or cancelled).
      const target = DERIVED.get(t.task.files?.outputs[0] ?? '');
      const ended = Date.parse(t.updated);
      const later = results.some(
        (r) => r.taskId === target && r.buildId !== t.task.buildId && Date.parse(r.time) > ended,
      );
      if (!later)
        lost.push(
          `task ${t.task.taskId} (${target}) finished, no result for build ${t.task.buildId}`,
        );
    }
    // Results a killed MajorDomo had been handed come again once their ack wait (30 s) is over:
    // waited for, and lost only if they never are acknowledged.
    const drained = async () => {
      const info = await stack.bus.jsm.consumers.info(
        streams.buildRecords(stack.project),
        'majordomo-builds',
      );
      return info.num_pending + info.num_ack_pending === 0 ? undefined : info;
    };
    let undrained = await drained();
    for (let end = Date.now() + 90_000; undrained && Date.now() < end; undrained = await drained())
      await new Promise((r) => setTimeout(r, 500));
    if (undrained)
      lost.push(
        `MajorDomo's results consumer has ${undrained.num_pending} results pending and ${undrained.num_ack_pending} unacknowledged`,
      );
    const status = await mdStatus(stack.bus);
    for (const path of DERIVED.keys()) {
      const rec = status.artefacts.find((a) => a.path === path);
      const r = results.find((x) => x.buildId === rec?.buildId && x.status === 'succeeded');
      if (!rec?.buildId || !r)
        lost.push(`${path}: record names build ${rec?.buildId}, no succeeded result`);
      else if (r.outputs[path]?.sha256 !== rec.sha256)
        lost.push(
          `${path}: record has ${rec.sha256}, its build's result ${r.outputs[path]?.sha256}`,
        );
    }

    const duplicated: string[] = [];
    for (const [taskId, n] of finishedEvents)
      if (n > 1) duplicated.push(`task ${taskId} published finished ${n} times`);
    for (const t of tasks) {
      const n = t.history.filter((h) => h.state === 'finished').length;
      if (n > 1) duplicated.push(`task ${t.task.taskId} recorded finished ${n} times`);
    }
    // The same build finished twice for its target with no other task of the target started in
    // between: nothing else wrote the target, so the first run's outputs were still there.
    // Rightly run again only when the first was reported as no success (an input moved while it
    // ran, it was killed as it ended).
    const byTarget = new Map<string, TaskRecord[]>();
    for (const t of tasks) {
      const target = DERIVED.get(t.task.files?.outputs[0] ?? '');
      if (target && t.task.buildId) byTarget.set(target, [...(byTarget.get(target) ?? []), t]);
    }
    const createdAt = (t: TaskRecord) => Date.parse(t.history[0]?.time ?? t.updated);
    for (const [target, all] of byTarget) {
      const list = all
        .filter((t) => t.state === 'finished')
        .sort((a, b) => Date.parse(a.updated) - Date.parse(b.updated));
      for (let i = 1; i < list.length; i++) {
        const [a, b] = [list[i - 1]!, list[i]!];
        if (a.task.buildId !== b.task.buildId) continue;
        const created = createdAt(b);
        const between = all.filter(
          (t) => t !== a && t !== b && createdAt(t) > createdAt(a) && createdAt(t) < created,
        );
        if (between.length) continue;
        const notSuccess = results.some(
          (r) =>
            r.buildId === a.task.buildId &&
            r.status !== 'succeeded' &&
            Date.parse(r.time) >= Date.parse(a.updated) &&
            Date.parse(r.time) <= created,
        );
        const said = results
          .filter((r) => r.buildId === a.task.buildId)
          .map((r) => `${r.status}@${r.time}${r.error ? ` (${r.error.slice(0, 120)})` : ''}`);
        if (!notSuccess)
          duplicated.push(
            `${target}: build ${a.task.buildId} finished twice in a row (tasks ${a.task.taskId} ${JSON.stringify(a.history)}, ${b.task.taskId} ${JSON.stringify(b.history)}; results ${said.join(', ')})`,
          );
      }
    }
    // Raw re-runs (not asserted): a command run to its end twice in a row on the same inputs.
    const ledger = readFileSync(this.#ledger, 'utf8').split('\n').filter(Boolean);
    const lastOf = new Map<string, { inputs: string; taskId: string }>();
    const reruns: string[] = [];
    const stateOf = new Map(tasks.map((t) => [t.task.taskId, t.state]));
    for (const line of ledger) {
      const [target, inputs, taskId] = line.split(' ');
      const last = lastOf.get(target!);
      if (last?.inputs === inputs)
        reruns.push(
          `${target} on ${inputs}: ${last?.taskId} (${stateOf.get(last?.taskId ?? '')}) then ${taskId} (${stateOf.get(taskId ?? '')})`,
        );
      lastOf.set(target!, { inputs: inputs!, taskId: taskId! });
    }

    const kills = Object.fromEntries(SERVICES.map((s) => [s, 0])) as Record<ServiceName, number>;
    for (const ep of this.episodes)
      for (const [s, n] of Object.entries(ep.kills)) kills[s as ServiceName] += n;
    return {
      seed: this.options.seed,
      episodes: this.episodes,
      edits: this.episodes.reduce((n, e) => n + e.edits, 0),
      kills,
      natsOutages: this.episodes.reduce((n, e) => n + e.natsOutages, 0),
      executions: ledger.length,
      reruns,
      succeededResults: results.filter((r) => r.status === 'succeeded').length,
      lost,
      duplicated,
      mismatches: this.episodes.flatMap((e) => e.mismatches),
    };
  }

  logs(chars?: number): string {
    return this.stack.logs(chars);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const dump = process.env.CP_TEST_DUMP;
    if (dump && existsSync(this.#ledger)) {
      // The stack makes its own folder there only as it stops, after this.
      mkdirSync(dump, { recursive: true });
      writeFileSync(join(dump, 'ledger.txt'), readFileSync(this.#ledger));
    }
    await this.stack[Symbol.asyncDispose]();
  }
}

function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}
