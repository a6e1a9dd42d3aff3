import {
  type Bus,
  decode,
  killTask as killTaskOnBus,
  type Logger,
  readStored,
  type TypedKv,
} from '@computepods/bus';
import { streams, subjects } from '@computepods/protocol';
import type { TaskView } from './task-view.js';

interface Held {
  /** The steps (MajorDomo's task ids) the build is of: one, or a group's (BuildRequested.group). */
  readonly steps: readonly string[];
  readonly controller: AbortController;
  taskId: string | undefined;
  /** Requests for this build being handled: MajorDomo may re-send one after a restart. */
  refs: number;
  /** Begun while a cancelled attempt of the same build still winds down. */
  readonly afterCancel: boolean;
  /**
   * The task every request sharing the hold runs or joins (see taskIdFor), picked once: twin
   * requests each made a task of their own, and both ran.
   */
  pick: Promise<string> | undefined;
  /** Settles when the last request sharing this hold ends. */
  readonly ended: Promise<void>;
  readonly settle: () => void;
  /** The holds of any of its steps this one came after, while they still wind down. */
  readonly predecessor: Promise<unknown> | undefined;
}

/**
 * The builds this chef holds, so a `build.cancel` can stop one: before its task is submitted the
 * build just ends as cancelled; after, the runner is asked to kill the task. Requests for one
 * build id share a cancellation while it is in flight; one that comes after a cancel starts a
 * new hold (a fresh attempt), never the cancelled one's fate. The signal begin() returns names
 * the hold in submitted() and end().
 *
 * One build of a step at a time: MajorDomo asks for a step's next build only once it gave the
 * last one up (its result came, or it cancelled it), so a request for another build of a step
 * this chef still holds supersedes that build (cancelled, its task killed), and waits for every
 * earlier hold of the step to wind down (predecessorEnded). A cancel can come before the request
 * it cancels is pulled (the chef ignores it then), and the stale build used to run beside the
 * step's next one: both wrote the outputs, and the next one's report named the other's
 * half-written file (test/src/chef-cancel-early.test.ts). A group's build holds each of its
 * steps so: it supersedes and waits for every earlier hold of any of them, and a later build of
 * any of them supersedes it and waits for it.
 */
export class InFlightBuilds {
  /** The current hold of each build id; cancelled ones still winding down are not in it. */
  readonly #held = new Map<string, Held>();
  /**
   * Cancels that came for a build this chef did not hold, naming MajorDomo's last request for it
   * (BuildCancel.upTo): that request, pulled later, is answered cancelled (cancelledUpTo). The
   * oldest go first past MAX_EARLY_CANCELS.
   */
  readonly #early = new Map<string, { upTo: number; reason: string }>();
  /** Every hold of each step not yet ended, cancelled ones too, in the order they began. */
  readonly #steps = new Map<string, Held[]>();
  readonly #bySignal = new WeakMap<AbortSignal, Held>();

  constructor(readonly kill: (taskId: string) => Promise<void>) {}

  /** Holds a build of `steps` (a step's task id, or a group's); the signal names the hold. */
  begin(buildId: string, steps: string | readonly string[]): AbortSignal {
    const known = this.#held.get(buildId);
    if (known && !known.controller.signal.aborted) {
      known.refs++;
      return known.controller.signal;
    }
    // A refused group may name a step twice: held once.
    const mine = [...new Set(typeof steps === 'string' ? [steps] : steps)];
    // A group's earlier hold is in several of its steps' lists: waited for once.
    const before = new Set(mine.flatMap((step) => this.#steps.get(step) ?? []));
    for (const h of before)
      if (!h.controller.signal.aborted) this.#abort(h, `superseded by build ${buildId}`);
    let settle = () => {};
    const ended = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const held: Held = {
      steps: mine,
      controller: new AbortController(),
      taskId: undefined,
      refs: 1,
      afterCancel: known !== undefined,
      pick: undefined,
      ended,
      settle,
      predecessor: before.size ? Promise.all([...before].map((h) => h.ended)) : undefined,
    };
    this.#held.set(buildId, held);
    for (const step of mine) {
      const list = this.#steps.get(step);
      if (list) list.push(held);
      else this.#steps.set(step, [held]);
    }
    this.#bySignal.set(held.controller.signal, held);
    return held.controller.signal;
  }

  /**
   * True when a hold of one of its steps began before this one and has not ended: its build is
   * cancelled or superseded, and this one waits for it (predecessorEnded) before anything else.
   */
  hasPredecessor(signal: AbortSignal): boolean {
    return this.#bySignal.get(signal)?.predecessor !== undefined;
  }

  /**
   * True for an attempt begun while a cancelled one of the same build winds down: its task needs
   * an id of its own (the cancelled one's task id is being killed, and a publish with it would
   * be dropped as a duplicate).
   */
  afterCancel(signal: AbortSignal): boolean {
    return this.#bySignal.get(signal)?.afterCancel ?? false;
  }

  /**
   * Resolves once the holds of its steps this one came after have ended (at once when there
   * is none, or when this one is cancelled too). A cancelled attempt of the same build may have
   * run to its end before the kill reached it, its result recorded: the build is then done, and
   * running it again is a duplicate (found by test/chaos: a cancel and a re-send 6 ms apart ran
   * the build twice). Nor do two tasks of a step write its outputs at once.
   */
  async predecessorEnded(signal: AbortSignal): Promise<void> {
    const before = this.#bySignal.get(signal)?.predecessor;
    if (!before || signal.aborted) return;
    let onAbort = () => {};
    await Promise.race([
      before,
      new Promise<void>((resolve) => {
        onAbort = resolve;
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    signal.removeEventListener('abort', onAbort);
  }

  /** The hold's task id: `pick`ed by its first request, the same for every other sharing it. */
  taskIdOnce(signal: AbortSignal, pick: () => Promise<string>): Promise<string> {
    const held = this.#bySignal.get(signal);
    if (!held) return pick();
    held.pick ??= pick();
    return held.pick;
  }

  /** The build's task is on the runner queue; a cancel that came first kills it now. */
  submitted(signal: AbortSignal, taskId: string): void {
    const held = this.#bySignal.get(signal);
    if (!held) return;
    held.taskId = taskId;
    if (held.controller.signal.aborted) void this.kill(taskId);
  }

  end(buildId: string, signal: AbortSignal): void {
    const held = this.#bySignal.get(signal);
    if (!held || --held.refs > 0) return;
    held.settle();
    if (this.#held.get(buildId) === held) this.#held.delete(buildId);
    for (const step of held.steps) {
      const list = this.#steps.get(step);
      const at = list?.indexOf(held) ?? -1;
      if (at >= 0) list?.splice(at, 1);
      if (list?.length === 0) this.#steps.delete(step);
    }
  }

  /**
   * False when this chef does not hold the build (another chef's, not pulled yet, or already
   * finished); with `upTo`, a request for it at or below that stream sequence is then answered
   * cancelled when it comes (cancelledUpTo).
   */
  cancel(buildId: string, reason: string, upTo?: number): boolean {
    const held = this.#held.get(buildId);
    if (!held) {
      if (upTo !== undefined) {
        // A replayed cancel (replayCancels) may come after a newer one for the same build.
        const had = this.#early.get(buildId);
        if (had && had.upTo >= upTo) return false;
        this.#early.delete(buildId);
        this.#early.set(buildId, { upTo, reason });
        if (this.#early.size > MAX_EARLY_CANCELS)
          this.#early.delete(this.#early.keys().next().value as string);
      }
      return false;
    }
    if (!held.controller.signal.aborted) this.#abort(held, reason);
    return true;
  }

  /** The reason a request for `buildId` at stream `sequence` was cancelled before it came. */
  cancelledUpTo(buildId: string, sequence: number): string | undefined {
    const early = this.#early.get(buildId);
    if (early === undefined || sequence > early.upTo) return undefined;
    return early.reason;
  }

  #abort(held: Held, reason: string): void {
    held.controller.abort(reason);
    if (held.taskId) void this.kill(held.taskId);
  }

  /**
   * True when a request of this chef other than the one `signal` names (any, without one) holds
   * the build: its task, submitted or about to be, is that request's to follow.
   */
  heldByOthers(buildId: string, signal?: AbortSignal): boolean {
    const held = this.#held.get(buildId);
    if (!held) return false;
    return signal === undefined || this.#bySignal.get(signal) !== held || held.refs > 1;
  }

  get size(): number {
    return this.#held.size;
  }
}

/** Early cancels remembered (InFlightBuilds.cancelledUpTo): far more than a chef's queue holds. */
const MAX_EARLY_CANCELS = 10_000;

/** Kills `taskId` (the bus's killTask), reading its state through the chef's view of records. */
export async function killTask(
  bus: Bus,
  tasks: TypedKv<typeof TaskView>,
  taskId: string,
  logger: Logger,
): Promise<void> {
  await killTaskOnBus(bus, async (id) => (await tasks.get(id))?.value.state, taskId, logger);
}

/** Subscribes to `build.cancel`; cancels for builds this chef does not hold are ignored. */
export function listenForCancels(bus: Bus, held: InFlightBuilds): () => void {
  const sub = bus.listen(subjects.buildCancel(bus.project), {
    accept: ['build.cancel'],
    handler: (msg) => {
      const { buildId, reason, upTo } = msg.body;
      const mine = held.cancel(buildId, reason, upTo);
      bus.logger[mine ? 'info' : 'debug'](
        { buildId, reason, cid: msg.cid },
        mine ? 'cancelling a build' : 'cancel for a build this chef does not hold; ignored',
      );
    },
  });
  return () => sub.unsubscribe();
}

/**
 * Feeds `held` the cancels kept in the project's events stream (build.cancel, for
 * CP_EVENT_MAX_AGE_S), as if they came now; resolves with how many it read. A chef keeps the
 * cancels of requests it has not taken up yet in memory only, so one killed -9 and restarted ran
 * a request MajorDomo had cancelled (a user's cancel among them): called at start, after
 * listenForCancels and before any request is taken up, it answers such a request cancelled
 * again. Nothing is read when the chef's durable (`durable` on the builds stream) holds no
 * request, delivered or not: a cancel can only matter to one. The stream's end is where it was
 * when the replay began (what comes later, the listener hears); a cancel that cannot be read is
 * logged and skipped. The order cancels are read in does not matter (InFlightBuilds.cancel
 * keeps each build's latest).
 */
export async function replayCancels(
  bus: Bus,
  held: InFlightBuilds,
  durable: string,
): Promise<number> {
  const p = bus.project;
  const waiting = await bus.jsm.consumers.info(streams.builds(p), durable).then(
    (c) => c.num_pending + c.num_ack_pending > 0,
    // Not made yet (a chef's first start): requests may wait in the stream all the same.
    (err: unknown) => {
      if (/consumer not found/i.test(String(err))) return true;
      throw err;
    },
  );
  if (!waiting) return 0;
  let valid = 0;
  await readStored(bus.jsm, streams.events(p), subjects.buildCancel(p), (m) => {
    try {
      const { body } = decode(m.data, ['build.cancel'], p);
      held.cancel(body.buildId, body.reason, body.upTo);
      valid++;
    } catch (err) {
      bus.logger.warn(
        { seq: m.seq, err: String(err) },
        'a stored build.cancel is not valid; skipped',
      );
    }
  });
  return valid;
}
