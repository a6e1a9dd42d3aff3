import { JsonText } from '@computepods/bus';
import type { DependencyManager } from '@computepods/depgraph';

/** How long the graph's JSON is kept after its last read, while the graph does not change. */
const KEEP_MS = 60_000;

/**
 * The graph as JSON (depgraph's toJSONPieces), made once per graph version and kept while it is
 * asked for: REST streams its pieces and the NATS API's answer in parts shares them, so the same
 * graph asked again and again (the UI, cpctrl, a bench) costs no new text. At 100k artefacts each
 * answer made anew was ~29 MB of text and its objects, left to V8's next full collection (issue
 * #13). Dropped KEEP_MS after its last read, and when the graph changes (at the next read).
 */
export class GraphText {
  #kept: { version: number; text: JsonText } | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dm: DependencyManager,
    private readonly keepMs = KEEP_MS,
  ) {}

  /** The graph's JSON now (read whole at once: one state of the graph). */
  get(): JsonText {
    const version = this.dm.version;
    let kept = this.#kept;
    if (kept?.version !== version) {
      // The old text goes before the new is made: never two held at once.
      this.#kept = undefined;
      kept = { version, text: new JsonText(this.dm.toJSONPieces()) };
      this.#kept = kept;
    }
    if (this.#timer) this.#timer.refresh();
    else {
      this.#timer = setTimeout(() => {
        this.#kept = undefined;
        this.#timer = undefined;
      }, this.keepMs);
      this.#timer.unref();
    }
    return kept.text;
  }

  /** Whether a text is kept now (tests). */
  get held(): boolean {
    return this.#kept !== undefined;
  }
}
