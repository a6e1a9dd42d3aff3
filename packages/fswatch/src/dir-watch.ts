import { type FSWatcher, watch } from 'node:fs';
import { WatchLimitError } from './errors.js';
import type { Logger } from './types.js';

export type WatchOutcome = 'watched' | 'polled' | 'gone';

/**
 * One non-recursive fs.watch (one inotify watch) per directory. Chokidar v5 and Node 20's
 * recursive fs.watch both add a watch per *file* as well, which exhausts
 * fs.inotify.max_user_watches on large trees; a directory watch already reports every
 * change to the files in it.
 */
export class DirWatchers {
  private readonly watchers = new Map<string, FSWatcher>();
  /** Directories that could not get a watch and are polled instead. */
  readonly polled = new Set<string>();
  private warnedLimit = false;

  constructor(
    private readonly rootAbs: string,
    private readonly maxWatches: number,
    private readonly onEvent: (dir: string, name: string | null) => void,
    private readonly onError: (dir: string, err: Error) => void,
    private readonly logger: Logger,
  ) {}

  get count(): number {
    return this.watchers.size;
  }

  /** Watched by inotify (not polled): a change in it produces an event. */
  isWatched(dir: string): boolean {
    return this.watchers.has(dir);
  }

  has(dir: string): boolean {
    return this.watchers.has(dir) || this.polled.has(dir);
  }

  /** Watches `dir` (relative, '' for the root) before it is read, so nothing slips between. */
  watch(dir: string): WatchOutcome {
    if (this.watchers.has(dir)) return 'watched';
    if (this.watchers.size >= this.maxWatches) return this.poll(dir, 'budget');
    const abs = dir === '' ? this.rootAbs : `${this.rootAbs}/${dir}`;
    let w: FSWatcher;
    try {
      w = watch(abs, { persistent: true }, (_type, name) => {
        this.onEvent(dir, typeof name === 'string' ? name : name === null ? null : String(name));
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EMFILE') return this.poll(dir, code, err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return 'gone';
      // EACCES and the like: polling would fail the same way, so report and skip.
      this.logger.warn({ err, dir }, 'cannot watch directory; changes in it are not seen');
      return 'gone';
    }
    w.on('error', (err) => {
      this.close(dir);
      this.onError(dir, err);
    });
    this.polled.delete(dir);
    this.watchers.set(dir, w);
    return 'watched';
  }

  /** Stops watching `dir` and everything below it. */
  unwatchSubtree(dir: string): void {
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const d of [...this.watchers.keys()]) {
      if (d === dir || d.startsWith(prefix)) this.close(d);
    }
    for (const d of [...this.polled]) {
      if (d === dir || d.startsWith(prefix)) this.polled.delete(d);
    }
  }

  closeAll(): void {
    for (const d of [...this.watchers.keys()]) this.close(d);
    this.polled.clear();
  }

  private close(dir: string): void {
    const w = this.watchers.get(dir);
    if (!w) return;
    this.watchers.delete(dir);
    w.close();
  }

  private poll(dir: string, reason: 'ENOSPC' | 'EMFILE' | 'budget', cause?: unknown): WatchOutcome {
    if (!this.polled.has(dir)) {
      this.polled.add(dir);
      const err = new WatchLimitError(dir, reason, { cause });
      // Said once loudly, then per directory at debug level: a big tree would flood the log.
      if (!this.warnedLimit) {
        this.warnedLimit = true;
        this.logger.error({ err, code: err.code, sysctl: err.sysctl, dir }, err.message);
      } else {
        this.logger.debug({ dir, code: err.code }, 'directory polled instead of watched');
      }
    }
    return 'polled';
  }
}
