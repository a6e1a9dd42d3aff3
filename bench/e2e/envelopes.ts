import type { Bus } from '@computepods/bus';
import { buckets, Envelope } from '@computepods/protocol';

/**
 * Calls `fn` with every envelope published in `bus`'s project, its body, and when it came
 * (performance.now(), taken before decoding). Messages that are no envelope are skipped.
 */
export function envelopes(
  bus: Bus,
  fn: (env: Envelope, body: Record<string, unknown>, t: number) => void,
): { unsubscribe(): void } {
  return bus.nc.subscribe(`cp.${bus.project}.>`, {
    callback: (_e, m) => {
      const t = performance.now();
      let env: Envelope;
      try {
        env = Envelope.parse(JSON.parse(new TextDecoder().decode(m.data)));
      } catch {
        return;
      }
      fn(env, env.body as Record<string, unknown>, t);
    },
  });
}

/** The records of an `artefact.states` body (one turn's changes of MajorDomo), in order. */
export function recordsOf(body: Record<string, unknown>): Array<{ path: string; status: string }> {
  return Array.isArray(body.records)
    ? (body.records as Array<{ path: string; status: string }>)
    : [];
}

/** Median of `xs` (the mean of the middle two for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * Calls `fn` with the state of every task record the runners write in `bus`'s project (a put on
 * the tasks bucket; MajorDomo and the chefs follow these), when it came. The `task.state` events
 * are no clock for a stage: the runner holds one up to EVENT_HOLD_MS for a record write to travel
 * with.
 */
export function taskRecords(
  bus: Bus,
  fn: (state: string, taskId: string, t: number) => void,
): { unsubscribe(): void } {
  return bus.nc.subscribe(`$KV.${buckets.tasks(bus.project)}.>`, {
    callback: (_e, m) => {
      const t = performance.now();
      if (!m.data.length) return; // a delete or purge marker
      try {
        const rec = JSON.parse(new TextDecoder().decode(m.data)) as {
          state?: unknown;
          task?: { taskId?: unknown };
        };
        if (typeof rec.state === 'string' && typeof rec.task?.taskId === 'string')
          fn(rec.state, rec.task.taskId, t);
      } catch {
        // not a record
      }
    },
  });
}
