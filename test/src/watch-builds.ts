import type { Bus } from '@computepods/bus';
import {
  BuildRequested,
  type BuildResult,
  Envelope,
  StatusReply,
  statusWithAllArtefacts,
  subjects,
} from '@computepods/protocol';
import { followBuildRecords } from './build-records.js';

/**
 * Records every build request and result of a project as they cross NATS (core subscriptions
 * see JetStream publishes too; results as chefs store them, build-records.ts), so a test can count what ran, in which pass, and what it found.
 * Open it with BuildLog.start: MajorDomo publishes on its own connection, so a request could
 * reach the server before this connection's SUBs and go unrecorded.
 */
export class BuildLog {
  /** A log whose subscriptions the server has: every request published after it is recorded. */
  static async start(bus: Bus): Promise<BuildLog> {
    const log = new BuildLog(bus);
    await bus.nc.flush();
    return log;
  }

  readonly requests: BuildRequested[] = [];
  readonly results: BuildResult[] = [];
  readonly #subs: Array<{ unsubscribe(): void }> = [];

  /** `onRequest`: called with each request as it is recorded (a test acting at a given one). */
  constructor(
    readonly bus: Bus,
    readonly onRequest: (r: BuildRequested) => void = () => undefined,
  ) {
    const p = bus.project;
    const decode = (data: Uint8Array) => Envelope.parse(JSON.parse(new TextDecoder().decode(data)));
    this.#subs.push(
      bus.nc.subscribe(subjects.buildRequestAll(p), {
        callback: (_e, m) => {
          // A new leader's fence (fence.ts) shares the requests' subjects: not a request.
          if (m.subject === subjects.buildFence(p)) return;
          const r = BuildRequested.parse(decode(m.data).body);
          this.requests.push(r);
          this.onRequest(r);
        },
      }),
      followBuildRecords(bus, (r) => this.results.push(r)),
    );
  }

  /**
   * Requests that build one task (`rule:stem`) since `from` (an index into requests): its own,
   * and groups that list it (BuildRequested.group).
   */
  requestsFor(taskId: string, from = 0): BuildRequested[] {
    return this.requests.slice(from).filter((r) => stepsOf(r).includes(taskId));
  }

  /** `pass:rule` for every request of tasks whose stem is `stem`, in dispatch order. */
  passes(stem: string, from = 0): string[] {
    return this.requests
      .slice(from)
      .filter((r) => r.stem === stem)
      .map((r) => `${r.pass}:${r.ruleId}`);
  }

  resultOf(buildId: string): BuildResult | undefined {
    return this.results.find((r) => r.buildId === buildId);
  }

  close(): void {
    for (const s of this.#subs) s.unsubscribe();
  }
}

/** The steps a request builds: its own, then its group's (BuildRequested.group). */
export function stepsOf(r: BuildRequested): string[] {
  return [r.taskId, ...(r.group ?? []).map((g) => g.taskId)];
}

/** MajorDomo's status with every artefact record (read page by page). */
export async function mdStatus(bus: Bus): Promise<StatusReply> {
  return statusWithAllArtefacts((req) => bus.request('status', req, StatusReply));
}

/** Waits until MajorDomo has nothing running or ready and `ok` holds (both polled together). */
export async function settled(
  bus: Bus,
  ok: (s: StatusReply) => boolean,
  timeoutMs = 60_000,
  describe = () => '',
): Promise<StatusReply> {
  const end = performance.now() + timeoutMs;
  let last: StatusReply | undefined;
  while (performance.now() < end) {
    last = await mdStatus(bus).catch(() => undefined);
    if (last?.idle && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `MajorDomo did not settle within ${timeoutMs} ms; last status: ${summary(last)}\n${describe()}`,
  );
}

function summary(s: StatusReply | undefined): string {
  if (!s) return 'no answer';
  const notDone = s.artefacts
    .filter((a) => a.status !== 'up_to_date' && a.status !== 'source')
    .map((a) => `${a.path}=${a.status}${a.error ? ` (${a.error.slice(0, 200)})` : ''}`);
  return JSON.stringify({
    idle: s.idle,
    running: s.running,
    queued: s.queued,
    nonConvergent: s.nonConvergent,
    notDone,
  });
}
