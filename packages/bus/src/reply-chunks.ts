import { randomBytes } from 'node:crypto';
import { CpError } from '@computepods/protocol';

/** How long an answer's parts are kept after they were last read. */
const KEEP_MS = 60_000;
/** Answers kept at once (each may be tens of MB at 100k artefacts): the oldest goes first. */
const MAX_KEPT = 4;

/** The parts asked for are no longer kept (read too late, or pushed out by newer answers). */
export class ReplyChunkGoneError extends CpError {
  constructor() {
    super(
      'CP_NOT_FOUND',
      `that answer's parts are no longer kept (each is kept ${KEEP_MS / 1000} s after its last read): ask again`,
    );
  }
}

/**
 * An answer's JSON text, from its pieces (json-pieces.ts), in parts that each fit, JSON-encoded
 * in a reply, in `budgetBytes`; no part is a slice of one whole string (tens of MB at 100k
 * artefacts), so only the parts are ever held. One part when the text fits
 * whole in `budgetBytes` (not JSON-encoded: it goes in the reply as JSON), none for no text.
 */
export function partsOf(pieces: Iterable<string>, budgetBytes: number): string[] {
  // A JSON string of a part costs at most ~2 bytes a char for ASCII text (quotes, backslashes
  // escaped); a part that still does not fit (other scripts) is cut smaller.
  const step = Math.max(1, Math.floor(budgetBytes / 2));
  const parts: string[] = [];
  let pending = '';
  const cut = (final: boolean) => {
    while (pending.length >= step || (final && pending.length > 0)) {
      let n = Math.min(step, pending.length);
      while (n > 1 && Buffer.byteLength(JSON.stringify(pending.slice(0, n))) > budgetBytes)
        n = Math.floor(n / 2);
      parts.push(pending.slice(0, n));
      pending = pending.slice(n);
    }
  };
  for (const piece of pieces) {
    pending += piece;
    // Not cut while it may still fit whole (one message, as a small answer always was).
    if (pending.length > budgetBytes) cut(false);
  }
  if (parts.length === 0 && Buffer.byteLength(pending) <= budgetBytes)
    return pending ? [pending] : [];
  cut(true);
  return parts;
}

/**
 * The answers of one process that were too big for one NATS message, as parts of their JSON text
 * (protocol's ChunkedResult, partsOf). An answer identical to one kept shares its parts: the
 * same graph asked for again and again is held once, not once per answer.
 */
export class ReplyChunks {
  /** Names this process's chunk subject: a standby or replica keeps its own answers. */
  readonly instance = randomBytes(8).toString('hex');
  readonly #kept = new Map<string, { parts: readonly string[]; expires: number }>();

  /** Keeps an answer's parts: its id and how many. */
  keep(parts: readonly string[]): { id: string; parts: number } {
    this.#expire();
    const same = [...this.#kept.values()].find(
      (k) => k.parts.length === parts.length && k.parts.every((p, i) => p === parts[i]),
    );
    const id = randomBytes(12).toString('hex');
    this.#kept.set(id, { parts: same?.parts ?? parts, expires: performance.now() + KEEP_MS });
    while (this.#kept.size > MAX_KEPT) {
      const oldest = this.#kept.keys().next().value;
      if (oldest === undefined) break;
      this.#kept.delete(oldest);
    }
    return { id, parts: parts.length };
  }

  part(id: string, part: number): string {
    this.#expire();
    const kept = this.#kept.get(id);
    const text = kept?.parts[part];
    if (!kept || text === undefined) throw new ReplyChunkGoneError();
    kept.expires = performance.now() + KEEP_MS;
    return text;
  }

  #expire(): void {
    const now = performance.now();
    for (const [id, kept] of this.#kept) if (kept.expires < now) this.#kept.delete(id);
  }
}
