import { z } from 'zod';

/** What a service publishes on `cp.<p>.dlq.<service>` instead of processing a bad message. */
export const DeadLetter = z.object({
  service: z.string(),
  subject: z.string(),
  reason: z.string(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).default([]),
  /** The original bytes as UTF-8, cut at 64 KiB. */
  data: z.string(),
  deliveries: z.number().int().nonnegative().default(1),
});
export type DeadLetter = z.infer<typeof DeadLetter>;
