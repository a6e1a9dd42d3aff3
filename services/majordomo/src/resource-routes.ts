import { type Bus, gatherReplies } from '@computepods/bus';
import {
  buckets,
  profileId,
  ResolvedQueue,
  resourceId,
  shownProfile,
  shownResource,
  streams,
  subjects,
} from '@computepods/protocol';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { readMatching } from './kv-mirror.js';

/** One of the project's queues as GET /api/queues shows it: where its tasks run, how many wait. */
export const QueueDepth = z.object({
  queue: z.string(),
  resource: z.string(),
  profile: z.string().optional(),
  /** Tasks of this project running at once on the queue (its bound). */
  concurrency: z.number().int(),
  /** Tasks on the queue no runner has taken yet. */
  waiting: z.number().int(),
  /** Tasks a runner has pulled and not yet recorded as its own (running ones are in /api/tasks). */
  pulled: z.number().int(),
  /** Pull requests the queue's runners have open now: none means no runner is listening. */
  pullRequests: z.number().int(),
  /** When a runner last pulled a task from the queue (null: never, or not known). */
  lastPulled: z.string().nullable(),
  /** False when no runner has ever attached to the queue (nothing will run its tasks). */
  served: z.boolean(),
  /** Runner processes (pilot workers among them) taking the queue's tasks now. */
  runners: z.number().int(),
});
export type QueueDepth = z.infer<typeof QueueDepth>;

const viewer = { role: 'viewer' } as const;

/** How long the runners' answers are waited for after the last one came (or for the first). */
const RUNNER_STALL_MS = 50;
const RUNNER_WAIT_MS = 300;

const RunnerInfo = z.object({
  id: z.string(),
  endpoints: z.array(z.object({ name: z.string() })).default([]),
});

/**
 * The runners listening now, counted per queue: every runner process (a pilot worker too)
 * answers the NATS micro-service INFO with its consumers as endpoints (`runner-<queue>`).
 * The project's own NATS account holds only its own services. Answers that are not such an
 * INFO are skipped.
 */
async function runnersByQueue(bus: Bus): Promise<Map<string, number>> {
  const count = new Map<string, number>();
  const seen = new Set<string>();
  const infos = await gatherReplies(bus.nc, '$SRV.INFO.runner', RunnerInfo, {
    strategy: 'stall',
    stall: RUNNER_STALL_MS,
    maxWait: RUNNER_WAIT_MS,
  });
  for (const info of infos) {
    if (seen.has(info.id)) continue;
    seen.add(info.id);
    for (const e of info.endpoints)
      if (e.name.startsWith('runner-')) {
        const queue = e.name.slice('runner-'.length);
        count.set(queue, (count.get(queue) ?? 0) + 1);
      }
  }
  return count;
}

/** The server's `last_active` (an RFC 3339 time; nats-server before 2.10 leaves it out). */
function isoTime(v: unknown): string | null {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v).toISOString() : null;
}

/**
 * The project's view of where its work runs: the resources and profiles its queues are bound to
 * (`queue.<name>` copies in cp_<p>_config; the lab-wide registry is not the project's to read,
 * and secrets are redacted by shownResource/shownProfile), and each queue's depth and whether a runner listens, read from the
 * tasks stream and the queue's runner consumer (`runner-<queue>`, shared by its runners).
 */
export async function registerResourceRoutes(
  app: FastifyInstance,
  { bus, project }: { bus: Bus; project: string },
): Promise<void> {
  const configKv = await bus.kv(buckets.config(project), z.unknown(), { history: 5 });
  // Only the `queue.*` keys are read: the bucket may hold thousands of others (fuzzed).
  const boundQueues = async () =>
    [...(await readMatching(configKv, 'queue.>'))].flatMap(([, v]) => {
      const q = ResolvedQueue.safeParse(v.value);
      return q.success ? [q.data] : [];
    });
  const routes = app.withTypeProvider<ZodTypeProvider>();
  routes.get(
    '/api/resources',
    { config: viewer, schema: { description: "Resources the project's queues are bound to" } },
    async () => [
      ...new Map(
        (await boundQueues()).map((q) => [resourceId(q.resource), shownResource(q.resource)]),
      ).values(),
    ],
  );
  routes.get(
    '/api/profiles',
    { config: viewer, schema: { description: "Profiles the project's queues run under" } },
    async () => [
      ...new Map(
        (await boundQueues()).flatMap((q) =>
          q.profile ? [[profileId(q.profile), shownProfile(q.profile)]] : [],
        ),
      ).values(),
    ],
  );
  routes.get(
    '/api/queues',
    {
      config: viewer,
      schema: {
        description:
          "The project's queues: the resource and profile each runs on, tasks waiting and pulled, and the runners taking its tasks now",
        response: { 200: z.array(QueueDepth) },
      },
    },
    async () => {
      const queues = await boundQueues();
      const stream = streams.tasks(project);
      // One stream lookup for every queue's count of stored tasks.
      const info = await bus.jsm.streams
        .info(stream, { subjects_filter: subjects.tasksAll(project) })
        .catch(() => undefined);
      const storedBy = info?.state.subjects ?? {};
      const runners = await runnersByQueue(bus);
      const out: QueueDepth[] = [];
      for (const { queue, resource, profile } of queues) {
        const consumer = await bus.jsm.consumers
          .info(stream, `runner-${queue.name}`)
          .catch(() => undefined);
        const stored = storedBy[subjects.tasks(project, queue.name)] ?? 0;
        const pulled = consumer?.num_ack_pending ?? 0;
        out.push({
          queue: queue.name,
          resource: resourceId(resource),
          ...(profile ? { profile: profileId(profile) } : {}),
          concurrency: queue.concurrency,
          // A work queue keeps a task until its runner acks it, which it does once recorded.
          waiting: Math.max(0, stored - pulled),
          pulled,
          pullRequests: consumer?.num_waiting ?? 0,
          lastPulled: isoTime(consumer?.delivered.last_active),
          served: consumer !== undefined,
          runners: runners.get(queue.name) ?? 0,
        });
      }
      return out.sort((a, b) => a.queue.localeCompare(b.queue));
    },
  );
}
