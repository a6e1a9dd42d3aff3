import type { Delivery } from './delivery.js';
import type { DirWatchers } from './dir-watch.js';
import type { PathMatcher } from './ignore.js';
import type { LogTailer } from './log-tail.js';
import type { WorkerPool } from './pool.js';
import { Compare, type StampCache } from './stamps.js';
import type { Logger, WatcherStats } from './types.js';
import { zip } from './zip.js';

const SCAN_CHUNK = 64;

export interface ScanContext {
  rootAbs: string;
  pool: WorkerPool;
  dirs: DirWatchers;
  matcher: PathMatcher;
  cache: StampCache;
  delivery: Delivery;
  tailer: LogTailer | undefined;
  stats: WatcherStats;
  logger: Logger;
  racyWindowNs: bigint;
  /** Resolves once the stamp cache is loaded; results are compared only after it. */
  ready: Promise<void>;
  closing: () => boolean;
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

export function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

interface Listed {
  /** Regular files now, sorted, NUL-joined. */
  files: string;
  /** Set when the stamps of the directory were compared name by name (slow path). */
  fileNames: string[] | undefined;
  /** Every stamped name was seen as a regular artefact file: nothing vanished here. */
  complete: boolean;
}

/**
 * Walks the given directories (recursively or one level), watching each before reading
 * it, and compares what it finds with the newest known stamps. Returns the paths worth a
 * closer look: changed stats (to hash), and stamped files no longer there (to delete).
 *
 * This is the initial scan, the rescan after an overflow or a watch error, the handling of
 * new and vanished directories, and the poll of directories that could not be watched. On a
 * restart over an unchanged tree it costs, per file, one lstat in a worker and, here, one
 * map lookup by name and eight 32-bit comparisons: no path string, BigInt or digest.
 */
export async function reconcile(
  ctx: ScanContext,
  requests: Array<[string, boolean]>,
): Promise<string[]> {
  const { cache, delivery, matcher } = ctx;
  // A recursive request covers every request below it, and a shallow one for the same dir.
  const rec = new Set(requests.filter(([, r]) => r).map(([d]) => d));
  const underRec = (d: string) => {
    if (d === '') return false;
    for (let a = parentOf(d); ; a = parentOf(a)) {
      if (rec.has(a)) return true;
      if (a === '') return false;
    }
  };
  const queue = requests.filter(([d, r]) => !underRec(d) && (r || !rec.has(d)));
  const listed = new Map<string, Listed>();
  const gone = new Set<string>();
  const out: string[] = [];
  const forget: string[] = [];
  const windowNs = Number(ctx.racyWindowNs);

  const compare = (d: string, name: string, w: Uint32Array, off: number, pending: boolean) => {
    if (pending) {
      const s = delivery.pendingState(join(d, name));
      if (s === null) return Compare.Unknown;
      if (s !== undefined) return cache.compareEntry(s, w, off, windowNs);
    }
    return cache.compareEntry(cache.dir(d)?.get(name), w, off, windowNs);
  };

  const scanBatch = async (batch: Array<[string, boolean]>) => {
    const toRead: Array<[string, boolean]> = [];
    for (const [d, r] of batch) {
      if (ctx.closing()) break;
      if (d !== '' && matcher.dirIgnored(d)) continue;
      if (ctx.dirs.watch(d) === 'gone') {
        gone.add(d);
        ctx.dirs.unwatchSubtree(d);
      } else toRead.push([d, r]);
    }
    if (toRead.length === 0) return;
    const res = await ctx.pool.scan(
      toRead.map(([d]) => (d === '' ? ctx.rootAbs : `${ctx.rootAbs}/${d}`)),
    );
    await ctx.ready;
    const pending = !delivery.idle;
    for (const [[d, r], s] of zip(toRead, res)) {
      if ('errno' in s) {
        if (s.errno === 'ENOENT' || s.errno === 'ENOTDIR') {
          gone.add(d);
          ctx.dirs.unwatchSubtree(d);
        } else {
          ctx.logger.warn(
            { dir: d, errno: s.errno },
            'cannot read directory; its files are left as they were',
          );
        }
        continue;
      }
      ctx.stats.scanned += s.fileCount + s.otherCount;
      const words = new Uint32Array(s.stats.buffer, s.stats.byteOffset, s.stats.length * 2);
      const pristine = cache.pristine(d);
      if (
        !pending &&
        pristine !== undefined &&
        pristine.joined === s.files &&
        matcher.allArtefacts(d, s.files)
      ) {
        // The restart fast path: the same files as stamped, in the same order.
        let changed: Set<number> | undefined;
        for (let k = 0; k < s.fileCount; k++) {
          if (cache.compareIndex(pristine.start + k, words, k * 8, windowNs) === Compare.Same) {
            continue;
          }
          changed ??= new Set();
          changed.add(k);
        }
        const names = changed && s.files.split('\0');
        names?.forEach((name, k) => {
          if (changed?.has(k)) out.push(join(d, name));
        });
        listed.set(d, { files: s.files, fileNames: names, complete: true });
      } else {
        const names = s.fileCount === 0 ? [] : s.files.split('\0');
        const stamped = cache.dir(d);
        let stampedSeen = 0;
        for (const [k, name] of names.entries()) {
          const policy = matcher.policyIn(d, name);
          if (policy === 'artefact') {
            const c = compare(d, name, words, k * 8, pending);
            if (c !== Compare.Unknown) stampedSeen++;
            if (c !== Compare.Same) out.push(join(d, name));
            continue;
          }
          if (policy === 'log') ctx.tailer?.poke(join(d, name));
          // The rules changed since it was stamped: forget it silently, it is not "deleted".
          if (stamped?.has(name)) forget.push(join(d, name));
        }
        const complete = stampedSeen === (cache.dir(d)?.size ?? 0);
        listed.set(d, { files: s.files, fileNames: names, complete });
      }
      if (s.otherCount > 0) {
        for (const [k, other] of s.others.split('\0').entries()) {
          if (s.otherKinds[k] !== 2) continue;
          const sub = join(d, other);
          if (matcher.dirIgnored(sub)) continue;
          if (r || !ctx.dirs.has(sub)) queue.push([sub, true]);
        }
      }
    }
  };

  const inflight = new Set<Promise<void>>();
  while (queue.length > 0 || inflight.size > 0) {
    // Deep enough that the workers stay busy while this thread parses the stamp file.
    while (queue.length > 0 && inflight.size < ctx.pool.size * 4) {
      const p: Promise<void> = scanBatch(queue.splice(0, SCAN_CHUNK)).finally(() =>
        inflight.delete(p),
      );
      inflight.add(p);
    }
    if (inflight.size > 0) await Promise.race(inflight);
  }
  if (ctx.closing()) return [];

  for (const p of forget) if (delivery.pendingState(p) === undefined) cache.delete(p);
  // Stamped files that were not seen: vanished, or replaced by a directory or a symlink.
  for (const [d, l] of listed) {
    if (l.complete) continue;
    const stamped = cache.dir(d);
    if (!stamped) continue;
    const files = new Set(l.fileNames ?? (l.files === '' ? [] : l.files.split('\0')));
    for (const name of stamped.keys()) if (!files.has(name)) out.push(join(d, name));
  }
  if (gone.size > 0) {
    const isGone = (d: string) => {
      for (let a = d; ; a = parentOf(a)) {
        if (gone.has(a)) return true;
        if (a === '') return false;
      }
    };
    for (const d of cache.dirNames()) {
      if (!isGone(d)) continue;
      for (const name of cache.dir(d)?.keys() ?? []) out.push(join(d, name));
    }
    for (const p of delivery.pendingPaths()) if (isGone(parentOf(p))) out.push(p);
  }
  // Not yet acknowledged new files are not in the stamp cache: look for them separately.
  for (const p of delivery.pendingPaths()) {
    if (cache.has(p)) continue;
    const l = listed.get(parentOf(p));
    if (!l) continue;
    const name = p.slice(p.lastIndexOf('/') + 1);
    if (!(l.fileNames ?? l.files.split('\0')).includes(name)) out.push(p);
  }
  return [...new Set(out)];
}
