import type { Bus } from '@computepods/bus';
import { envelope, subjects, type TaskStateChanged } from '@computepods/protocol';

/**
 * The longest a task-state event waits for a record write to travel with (ms): as long as the
 * spawner holds a started task's pid for its exit (CP_SPAWNER_PID_HOLD_MS, 100 ms) and a plain
 * ack waits for a write (bus consume.ts PLAIN_ACK_HOLD_MS, 100 ms), so that a task that ends
 * within that time (a compile: 40-100 ms) has its running event, its message's ack and its end
 * record leave in one socket write.
 */
export const EVENT_HOLD_MS = 100;

/**
 * The runner's task-state events (plain publishes; the record in KV, written before, is the
 * truth). Each socket write to NATS is a write(2) whose loopback TCP delivery and wakeup of the
 * server cost more than the message itself, and an event published when its record's ack
 * arrives went alone. While a task runs or waits for a lane, the runner writes a record again
 * soon (that task's end, at the latest): an event announced then waits, up to EVENT_HOLD_MS, and
 * leaves in the same socket write as the next record (`beforeWrite`) — one write(2) a task fewer
 * for short tasks, and, where lanes overlap (a chef's compiles), for most: another lane's record
 * write comes within the hold. The task message's plain ack waits for a write too (it goes with
 * the event's). A waiting task counts since a short one that waited is announced
 * submitted and then ended, its running being in its end's record (LocalBackend's one write):
 * counting running tasks alone, each such end event left alone. With nothing running or waiting
 * there is no next record to wait for: it leaves at once. Events leave in the order they were
 * announced.
 *
 * An event is enveloped with no parse of its own (as Bus.emitValidated sends): the executor
 * builds it from a record it wrote, whose task was parsed as it came in (Executor.submit) and
 * whose other fields come from typed code, its reason cut to the event's 10,000 characters
 * (Executor's #announce). Every reader parses what it receives. The parse was two zod passes
 * a task on the runner's hot path.
 */
export class TaskEvents {
  readonly #bus: Bus;
  readonly #subject: string;
  readonly #holdMs: number;
  /** Encoded events, in order. */
  #held: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Tasks announced submitted or running and not since announced ended or paused. */
  readonly #active = new Set<string>();

  constructor(bus: Bus, holdMs = EVENT_HOLD_MS) {
    this.#bus = bus;
    this.#subject = subjects.taskState(bus.project);
    this.#holdMs = holdMs;
  }

  /** Announces a recorded state (an event the executor built from its record). */
  emit(event: TaskStateChanged, cid: string | undefined): void {
    const bus = this.#bus;
    const data = JSON.stringify(
      envelope('task.state', event, { project: bus.project, source: bus.service, cid }),
    );
    if (event.state === 'running' || event.state === 'submitted') this.#active.add(event.taskId);
    else this.#active.delete(event.taskId);
    this.#held.push(data);
    if (this.#active.size === 0) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#holdMs);
  }

  /** A record is about to be written: the held events go in the same socket write. */
  beforeWrite(): void {
    if (this.#held.length) this.flush();
  }

  /** Publishes the held events now (and at stop); never throws. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const held = this.#held;
    this.#held = [];
    try {
      for (const data of held) this.#bus.nc.publish(this.#subject, data);
    } catch (err) {
      // The connection is closing: the records, in KV, are the truth.
      this.#bus.logger.warn({ err: String(err), events: held.length }, 'task events not published');
    }
  }
}
