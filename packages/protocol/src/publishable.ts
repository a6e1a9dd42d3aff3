import { FileEvent } from './files.js';
import { issueLine, issuesOf } from './issues.js';

/**
 * Splits a batch into the events a `files.changed` may carry and the refused ones, with why. A
 * file whose path no message may name (over MAX_PATH_BYTES, say) would otherwise make the whole
 * batch fail validation before it is sent, and the watcher retry it for ever: every other change
 * in it would never be announced. The refused are skipped, each with a log line, until they
 * change again.
 */
export function publishable<E extends { readonly path: string }>(
  events: readonly E[],
): { ok: E[]; refused: Array<{ path: string; reason: string }> } {
  const ok: E[] = [];
  const refused: Array<{ path: string; reason: string }> = [];
  for (const e of events) {
    const parsed = FileEvent.safeParse(e);
    if (parsed.success) ok.push(e);
    else
      refused.push({
        path: e.path.slice(0, 200),
        reason: issuesOf(parsed.error).map(issueLine).join('; '),
      });
  }
  return { ok, refused };
}
