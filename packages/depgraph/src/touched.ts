import type { Task } from './task.js';

/**
 * What changed since a caller last asked (DependencyManager.takeTouched): tasks whose state
 * changed (dirty, running, failed, not converging, added or removed), components that came into
 * or left the work region, and paths whose hash changed. An artefact's state (explain.ts
 * artefactState) is a function of exactly these, so a caller that mirrors the states of 100,000s
 * of artefacts looks again at these paths only, not at all of them after every change. `all`
 * after the components were numbered again (a recompute, a load): everything may have changed.
 */
export class Touched {
  all = true;
  readonly tasks = new Set<Task>();
  readonly comps = new Set<number>();
  readonly paths = new Set<number>();

  task(t: Task): void {
    if (!this.all) this.tasks.add(t);
  }

  comp(c: number): void {
    if (!this.all) this.comps.add(c);
  }

  path(p: number): void {
    if (!this.all) this.paths.add(p);
  }

  everything(): void {
    this.all = true;
    this.tasks.clear();
    this.comps.clear();
    this.paths.clear();
  }

  reset(): void {
    this.all = false;
    this.tasks.clear();
    this.comps.clear();
    this.paths.clear();
  }
}

/** The work region (component numbers), reporting each component that comes or goes. */
export class TrackedRegion extends Set<number> {
  constructor(readonly touched: Touched) {
    super();
  }

  override add(c: number): this {
    if (!this.has(c)) this.touched.comp(c);
    return super.add(c);
  }

  override delete(c: number): boolean {
    const had = super.delete(c);
    if (had) this.touched.comp(c);
    return had;
  }

  override clear(): void {
    this.touched.everything();
    super.clear();
  }
}
