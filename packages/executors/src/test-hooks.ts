import type { TaskRecord, TaskState, TaskStateChanged } from '@computepods/protocol';
import type { ExecutorHooks } from './executor.js';

/**
 * Test support: keeps records in memory and the order of record() and publish() calls, so a
 * test can check that every transition was recorded before it was published.
 */
export class RecordingHooks implements ExecutorHooks {
  readonly records = new Map<string, TaskRecord>();
  readonly calls: { kind: 'record' | 'publish'; taskId: string; state: TaskState }[] = [];
  readonly events: TaskStateChanged[] = [];
  failRecords = false;

  async record(rec: TaskRecord): Promise<void> {
    if (this.failRecords)
      throw Object.assign(new Error('KV unavailable (test)'), { retryable: false });
    this.calls.push({ kind: 'record', taskId: rec.task.taskId, state: rec.state });
    this.records.set(rec.task.taskId, structuredClone(rec));
  }

  publish(event: TaskStateChanged): void {
    this.calls.push({ kind: 'publish', taskId: event.taskId, state: event.state });
    this.events.push(event);
  }

  /** Published states of one task, in order. */
  states(taskId: string): TaskState[] {
    return this.events.filter((e) => e.taskId === taskId).map((e) => e.state);
  }

  /** Every publish of a state was preceded by a record of that state for that task. */
  recordedBeforePublished(): boolean {
    const recorded = new Set<string>();
    for (const c of this.calls) {
      const key = `${c.taskId}>${c.state}`;
      if (c.kind === 'record') recorded.add(key);
      else if (!recorded.has(key)) return false;
    }
    return true;
  }
}
