import { type Bus, listenView } from '@computepods/bus';
import type { FileWatcher, ReportedWrite } from '@computepods/fswatch';
import { ArtefactRecord, subjects } from '@computepods/protocol';
import { z } from 'zod';

/**
 * What the watcher reads of each announced record, validated as ArtefactRecord validates it; the
 * rest (its time, build, cutoff, projections, error) goes unchecked and unread: every compile's
 * outputs are announced to every pod's fswatcher, and checking whole records (their ISO times and
 * hashes) was about a quarter of its CPU in pnpm bench cbuild (issue #15).
 */
const Seen = ArtefactRecord.pick({
  path: true,
  status: true,
  sha256: true,
  size: true,
  producer: true,
  auxiliary: true,
  pods: true,
  written: true,
});
type Seen = z.infer<typeof Seen>;
const SeenStates = z.object({ records: z.array(Seen).min(1) });

/** States in which an artefact's producer is about to write it, or writing it. */
const BEING_BUILT: ReadonlySet<ArtefactRecord['status']> = new Set(['queued', 'building']);

/**
 * Follows MajorDomo's artefact records (the artefact-state subject, a turn's changes a message) for the watcher: an output
 * queued or being built is expected, and once MajorDomo records the bytes its build wrote on
 * this pod (its chef's report, in KV before it is announced) the watcher's look at them needs no
 * event: MajorDomo has them. Why MajorDomo's record and not the chef's result: a result MajorDomo
 * does not take (a build no longer wanted, a stale pass) leaves other bytes in its record, and
 * those bytes must still be announced. A lost or late record only costs the wait (reportWaitMs):
 * the look is then announced as before.
 */
export function followReports(bus: Bus, pod: string, watcher: FileWatcher): () => void {
  const sub = listenView(bus, subjects.artefactState(bus.project), {
    type: 'artefact.states',
    view: SeenStates,
    handler: (msg) => {
      for (const rec of msg.body.records) {
        if (BEING_BUILT.has(rec.status) && rec.producer && !rec.auxiliary)
          watcher.expectWrite(rec.path);
        else watcher.reportWrite(rec.path, writtenHere(rec, pod));
      }
    },
  });
  return () => sub.unsubscribe();
}

/** The bytes MajorDomo records as written on `pod` by their build, or undefined for any other state. */
function writtenHere(rec: Seen, pod: string): ReportedWrite | undefined {
  const { sha256, size, written } = rec;
  if (rec.status !== 'up_to_date' || sha256 === null || size === null || written?.pod !== pod)
    return undefined;
  if (!rec.pods.includes(pod)) return undefined;
  return { sha256, size, mtimeNs: BigInt(written.mtimeNs) };
}
