import type { Bus } from '@computepods/bus';
import type { FileWatcher, ReportedWrite } from '@computepods/fswatch';
import { type ArtefactRecord, subjects } from '@computepods/protocol';

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
  const sub = bus.listen(subjects.artefactState(bus.project), {
    accept: ['artefact.states'],
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
function writtenHere(rec: ArtefactRecord, pod: string): ReportedWrite | undefined {
  const { sha256, size, written } = rec;
  if (rec.status !== 'up_to_date' || sha256 === null || size === null || written?.pod !== pod)
    return undefined;
  if (!rec.pods.includes(pod)) return undefined;
  return { sha256, size, mtimeNs: BigInt(written.mtimeNs) };
}
