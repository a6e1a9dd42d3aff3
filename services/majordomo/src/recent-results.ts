import type { BuildResult } from '@computepods/protocol';

/** How many results RecentResults keeps (the oldest stored is dropped first). */
export const RECENT_RESULTS = 2048;

/**
 * MajorDomo's result cache: the successful results whose records this MajorDomo stored, by build
 * id, the last RECENT_RESULTS of them. A build of a task built before is answered from it when its
 * outputs' records still have the hashes it produced (an edit undone), with nothing sent to a
 * chef. In memory: the builds bucket's get it replaces was a round trip before every request
 * of a task built before, and one that missed in nearly every case (each pass of a LaTeX cycle,
 * every recompile after an edit: pnpm bench e2e and cbuild, #15). A result this MajorDomo did
 * not store (an earlier process's, one dropped from here) is the chef's to answer: a chef
 * answers a request whose result it recorded without running it, when the outputs on disk are
 * still its (services/chef build.ts).
 */
export class RecentResults {
  readonly #byId = new Map<string, BuildResult>();

  constructor(private readonly limit = RECENT_RESULTS) {}

  /**
   * `result` stored, under `key` (a group step's part under the step's own build key): the newest;
   * the oldest goes when there are more than the limit.
   */
  add(result: BuildResult, key = result.buildId): void {
    this.#byId.delete(key);
    this.#byId.set(key, result);
    if (this.#byId.size <= this.limit) return;
    const oldest = this.#byId.keys().next();
    if (!oldest.done) this.#byId.delete(oldest.value);
  }

  get(buildId: string): BuildResult | undefined {
    return this.#byId.get(buildId);
  }
}
