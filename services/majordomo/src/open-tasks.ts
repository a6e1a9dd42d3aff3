import type { TypedKv, Versioned } from '@computepods/bus';
import { type TaskRecord, TERMINAL_STATES } from '@computepods/protocol';

/**
 * The task records that have not ended, for the runner-liveness sweep: one pass over the tasks
 * bucket, then at each refresh only what was written since (TypedKv.changesSince). The sweep
 * listed the whole bucket every time (each message a JetStream get, every kept revision of
 * every key): the bucket keeps records for CP_RECORD_MAX_AGE_S (14 days) with five revisions
 * each, so a lab's busy fortnight made every sweep read hundreds of thousands of messages, once
 * a grace; in `pnpm bench cbuild` the sweeps were ~270 ms of MajorDomo's CPU in a minute.
 *
 * A key whose record ended, or was deleted, leaves the set. A bucket made again (its stream's
 * creation time changed) is read whole again. A record that expired (the bucket's max age) sends
 * no change: forget() drops it once a revision-checked update of it fails; if it was written
 * instead, that write is past the last refresh and comes back with the next.
 */
export class OpenTasks {
  readonly #tasks: TypedKv<typeof TaskRecord>;
  readonly #open = new Map<string, Versioned<TaskRecord>>();
  /** The bucket's revision the set reflects (0: nothing read yet). */
  #last = 0;
  #created: string | undefined;

  constructor(tasks: TypedKv<typeof TaskRecord>) {
    this.#tasks = tasks;
  }

  /** The open records as of now: reads the changes since the last refresh first. */
  async refresh(): Promise<ReadonlyMap<string, Versioned<TaskRecord>>> {
    let read = await this.#tasks.changesSince(this.#last);
    if (this.#created !== undefined && read.created !== this.#created) {
      // The bucket was made again: its revisions start again, and nothing held holds.
      this.#open.clear();
      read = await this.#tasks.changesSince(0);
    }
    for (const [id, rec] of read.changes) {
      if (rec === undefined || TERMINAL_STATES.includes(rec.value.state)) this.#open.delete(id);
      else this.#open.set(id, rec);
    }
    this.#last = read.last;
    this.#created = read.created;
    return this.#open;
  }

  /** Drops `id` until it is written again (an update of it failed: changed, deleted or expired). */
  forget(id: string): void {
    this.#open.delete(id);
  }
}
