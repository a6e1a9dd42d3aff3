import type { Bus } from '@computepods/bus';
import { z } from 'zod';

/** Messages after a batch read at most to find later events of its paths (laterFileEvents). */
export const MAX_LATER_SCANNED = 10_000;

/** Stored messages read at once. */
const WINDOW = 64;

/** What is read of each later message: the paths its events name (a move's both sides). */
const Named = z.object({
  body: z.object({
    events: z.array(z.object({ path: z.string(), from: z.string().optional() })),
  }),
});

/**
 * For a file batch delivered again (FILE ORDER: file-order.ts): which of `paths`
 * a batch stored after it in the files stream names, with the latest such batch's sequence.
 * Asked only for paths MajorDomo has no sequence for: a path deleted before a restart, whose
 * delete's sequence was kept in memory only. A later batch in the stream was applied already or
 * is still to come, in order; either way it, not the batch delivered again, says what the file
 * is. Reads at most `limit` messages after `after`; `complete` is false when it stopped there.
 * Messages that are not file batches (a fuzzer's, say) are passed over. A failed read throws
 * (NATS away): the batch is then not acknowledged and comes again.
 */
export async function laterFileEvents(
  bus: Bus,
  stream: string,
  after: number,
  paths: ReadonlySet<string>,
  limit = MAX_LATER_SCANNED,
): Promise<{ later: Map<string, number>; complete: boolean }> {
  const later = new Map<string, number>();
  const last = (await bus.jsm.streams.info(stream)).state.last_seq;
  const end = Math.min(last, after + limit);
  for (let from = after + 1; from <= end; from += WINDOW) {
    const seqs = Array.from({ length: Math.min(WINDOW, end - from + 1) }, (_, i) => from + i);
    const read = await Promise.all(seqs.map((seq) => storedAt(bus, stream, seq)));
    for (const [i, data] of read.entries()) {
      if (data === undefined) continue;
      const seq = seqs[i] as number;
      for (const ev of data.body.events)
        for (const p of [ev.path, ev.from]) if (p !== undefined && paths.has(p)) later.set(p, seq);
    }
  }
  return { later, complete: end === last };
}

async function storedAt(
  bus: Bus,
  stream: string,
  seq: number,
): Promise<z.infer<typeof Named> | undefined> {
  // None: removed by the stream's limits (or never stored at that sequence).
  const m = await bus.jsm.streams.getMessage(stream, { seq });
  if (!m) return undefined;
  try {
    const parsed = Named.safeParse(JSON.parse(m.string()));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
