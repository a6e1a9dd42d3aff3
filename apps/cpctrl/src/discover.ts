import { type Bus, gatherReplies } from '@computepods/bus';
import { z } from 'zod';

const StatsReply = z.object({
  name: z.string(),
  id: z.string(),
  version: z.string(),
  metadata: z.record(z.string(), z.string()).nullish(),
  started: z.string().optional(),
  endpoints: z
    .array(
      z.object({
        name: z.string(),
        num_requests: z.number(),
        num_errors: z.number(),
        last_error: z.string().optional(),
      }),
    )
    .nullish(),
});
export type ServiceSeen = z.infer<typeof StatsReply>;

/**
 * Every service answering $SRV.STATS within `waitMs` (the NATS micro-service protocol), for one
 * project or all. Replies that do not follow the protocol are skipped, not fatal.
 */
export async function discoverServices(
  nc: Bus['nc'],
  project?: string,
  waitMs = 400,
): Promise<ServiceSeen[]> {
  const stats = await gatherReplies(nc, '$SRV.STATS', StatsReply, {
    strategy: 'timer',
    maxWait: waitMs,
  });
  const seen = stats.filter((s) => !project || s.metadata?.project === project);
  return seen.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}
