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
 * The answers of one process that were too big for one NATS message, as parts of their JSON text
 * (protocol's ChunkedResult): each part fits, JSON-encoded in its reply, in `budgetBytes`.
 */
export class ReplyChunks {
  /** Names this process's chunk subject: a standby or replica keeps its own answers. */
  readonly instance = randomBytes(8).toString('hex');
  readonly #kept = new Map<string, { parts: string[]; expires: number }>();

  /** Keeps `text` in parts: its id and how many. */
  store(text: string, budgetBytes: number): { id: string; parts: number } {
    this.#expire();
    const parts: string[] = [];
    // A JSON string of a part costs at most ~2 bytes a char for ASCII text (quotes, backslashes
    // escaped); a part that still does not fit (other scripts) is cut smaller.
    const step = Math.max(1, Math.floor(budgetBytes / 2));
    for (let at = 0; at < text.length; ) {
      let n = Math.min(step, text.length - at);
      while (n > 1 && Buffer.byteLength(JSON.stringify(text.slice(at, at + n))) > budgetBytes)
        n = Math.floor(n / 2);
      parts.push(text.slice(at, at + n));
      at += n;
    }
    const id = randomBytes(12).toString('hex');
    this.#kept.set(id, { parts, expires: Date.now() + KEEP_MS });
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
    kept.expires = Date.now() + KEEP_MS;
    return text;
  }

  #expire(): void {
    const now = Date.now();
    for (const [id, kept] of this.#kept) if (kept.expires < now) this.#kept.delete(id);
  }
}
