import type { Bus } from '@computepods/bus';
import { BuildResult, subjects } from '@computepods/protocol';

/**
 * Calls `onResult` with every result a chef stores from now on (a write of the builds bucket), as
 * it comes: chefs asked by MajorDomo publish no build.result (BuildRequested.resultFromRecord),
 * and every result is stored, asked that way or not. A core subscription sees each put, which
 * the bucket (one value a key) would not keep; deletes and anything not a result are skipped.
 */
export function followBuildRecords(
  bus: Bus,
  onResult: (result: BuildResult, time: string) => void,
): { unsubscribe(): void } {
  return bus.nc.subscribe(subjects.buildRecords(bus.project), {
    callback: (_e, m) => {
      if (!m.data.length) return; // a delete or purge marker
      let json: unknown;
      try {
        json = m.json();
      } catch {
        return;
      }
      const r = BuildResult.safeParse(json);
      if (r.success) onResult(r.data, new Date().toISOString());
    },
  });
}
