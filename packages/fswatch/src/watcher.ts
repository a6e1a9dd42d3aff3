import { existsSync, readFileSync } from 'node:fs';
import { lstat, readFile, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { DueItem } from './debounce.js';
import { Debouncer } from './debounce.js';
import { Delivery } from './delivery.js';
import { DirWatchers } from './dir-watch.js';
import {
  HashError,
  StampFileError,
  WatchConfigError,
  WatcherClosedError,
  WatchRootError,
} from './errors.js';
import { PathMatcher } from './ignore.js';
import { LogTailer } from './log-tail.js';
import { lookAt } from './look-here.js';
import type { CheckItem, CheckResult, RawStat, WorkerPool } from './pool.js';
import { sharedPool } from './pool.js';
import { type RacyDue, RacyVerifier } from './racy.js';
import { type ReportedWrite, WriteReports } from './reports.js';
import { join, parentOf, reconcile, type ScanContext } from './scan.js';
import { SentJournal } from './sent-journal.js';
import type { Stamp } from './stamps.js';
import { isRacy, StampCache, sameStat } from './stamps.js';
import type { FileEvent, FileWatcherOptions, Logger, WatcherStats } from './types.js';
import { zip } from './zip.js';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const CHECK_CHUNK = 64;

function globEscape(p: string): string {
  return p.replace(/[\\*?[\]!#]/g, (c) => `\\${c}`);
}

function rawOf(s: Stamp): RawStat {
  return [s.mtimeNs, s.ctimeNs, BigInt(s.size), s.ino];
}

/** inotify drops events silently once this many are queued; above half of it we rescan. */
function overflowThreshold(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim());
    if (n > 0) return Math.floor(n / 2);
  } catch {
    // Not Linux, or /proc hidden: use the kernel default.
  }
  return 8192;
}

/**
 * Watches a tree and reports content changes: see the package README for the guarantees.
 * One instance per root and stamp file.
 */
export class FileWatcher {
  private readonly rootAbs: string;
  private readonly stampFile: string;
  private readonly logger: Logger;
  private readonly cache = new StampCache();
  private readonly pool: WorkerPool;
  private readonly debouncer: Debouncer;
  /** Paths found empty or gone: looked at once more after `settleMs` before that counts. */
  private readonly settler: Debouncer;
  /** Paths whose look comes from `settler`: what it finds counts. */
  private readonly secondLook = new Set<string>();
  private readonly delivery: Delivery;
  /** Files a producer here writes and the consumer records from its report: not announced. */
  private readonly reports: WriteReports;
  private readonly dirs: DirWatchers;
  private readonly tailer: LogTailer | undefined;
  private matcher!: PathMatcher;
  private readonly racyWindowNs: bigint;
  private readonly maxWaitMs: number;
  private readonly lockFiles: string[];
  private readonly stat: WatcherStats = {
    hashed: 0,
    hashedBytes: 0,
    scanned: 0,
    events: 0,
    batches: 0,
    retries: 0,
    dropped: 0,
    pending: 0,
    held: 0,
    parked: 0,
    watches: 0,
    polledDirs: 0,
    rescans: 0,
    logChunks: 0,
    logBytes: 0,
    stamps: 0,
    reported: 0,
  };

  private started = false;
  private closing = false;
  private closed = false;
  /** Paths being checked now; a second event for one of them waits in `recheck`. */
  private readonly inCheck = new Set<string>();
  private readonly recheck = new Set<string>();
  private activeChecks = 0;
  /** Reconcile requests: directory → recursive. Run one at a time. */
  private readonly reconcileQueue = new Map<string, boolean>();
  private reconciling: Promise<void> | undefined;
  private readonly held = new Map<string, number>();
  private lockTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> = Promise.resolve();
  private readonly racy: RacyVerifier;
  private cacheReady: Promise<void> = Promise.resolve();
  private readonly journal: SentJournal;
  /** The journal's paths from before this start (sent-journal.ts). */
  private journaled: string[] = [];
  private rawEvents = 0;
  private readonly rawOverflow = overflowThreshold();
  private readonly warnedHash = new Set<string>();

  constructor(private readonly opts: FileWatcherOptions) {
    if (typeof opts.onBatch !== 'function') {
      throw new WatchConfigError(
        'onBatch is required: pass an async function that publishes events',
      );
    }
    if (opts.policies?.some((p) => p.policy === 'log') && !opts.onLog) {
      throw new WatchConfigError(
        'a `log` policy needs onLog: pass an async function for the chunks',
      );
    }
    this.rootAbs = resolve(opts.root);
    this.stampFile = resolve(opts.stampFile);
    this.logger = opts.logger ?? silent;
    this.journal = new SentJournal(`${this.stampFile}.sent`, this.logger);
    this.pool = sharedPool();
    this.racyWindowNs = BigInt(Math.round((opts.racyWindowMs ?? 20) * 1e6));
    this.maxWaitMs = opts.maxWaitMs ?? 500;
    this.racy = new RacyVerifier(this.racyWindowNs, (items) => this.onRacyDue(items));
    this.lockFiles = (opts.vcsLockFiles ?? ['.git/index.lock']).map((f) =>
      resolve(this.rootAbs, f),
    );
    this.debouncer = new Debouncer(opts.debounceMs ?? 5, this.maxWaitMs, (items) =>
      this.onDue(items),
    );
    this.reports = new WriteReports({
      waitMs: opts.reportWaitMs ?? 2000,
      maxReports: 10_000,
      release: (items) => this.onDue(items),
    });
    this.settler = new Debouncer(opts.settleMs ?? 50, this.maxWaitMs, (items) => {
      for (const it of items) this.secondLook.add(it.path);
      this.onDue(items);
    });
    this.delivery = new Delivery({
      cache: this.cache,
      onBatch: opts.onBatch,
      batchMs: opts.batchMs ?? 100,
      maxBatchSize: opts.maxBatchSize ?? 5000,
      maxPending: opts.maxPending ?? 100_000,
      retryInitialMs: opts.retryInitialMs ?? 100,
      retryMaxMs: opts.retryMaxMs ?? 30_000,
      logger: this.logger,
      stats: this.stat,
      isSettling: () => this.settling,
      onCommit: () => this.schedulePersist(),
      journal: this.journal,
      onOverflow: (ms) => {
        setTimeout(() => this.requestReconcile('', true), Math.max(ms, 50)).unref();
      },
    });
    this.dirs = new DirWatchers(
      this.rootAbs,
      opts.maxWatches ?? Number.POSITIVE_INFINITY,
      (dir, name) => this.onRaw(dir, name),
      (dir, err) => {
        this.logger.warn({ err, dir }, 'directory watch failed; rescanning it');
        this.requestReconcile(dir, true);
      },
      this.logger,
    );
    if (opts.onLog) {
      this.tailer = new LogTailer({
        rootAbs: this.rootAbs,
        cache: this.cache,
        onLog: opts.onLog,
        onCommit: () => this.schedulePersist(),
        retryInitialMs: opts.retryInitialMs ?? 100,
        retryMaxMs: opts.retryMaxMs ?? 30_000,
        logger: this.logger,
        stats: this.stat,
      });
    }
  }

  /** Scans the tree against the stamp file (changes while stopped are reported), then watches. */
  async start(): Promise<void> {
    if (this.closing) throw new WatcherClosedError();
    if (this.started) return;
    this.started = true;
    this.pool.warm();
    const st = await stat(this.rootAbs).catch((err: unknown) => {
      throw new WatchRootError(this.rootAbs, { cause: err });
    });
    if (!st.isDirectory()) throw new WatchRootError(this.rootAbs);
    this.matcher = new PathMatcher({
      useDefaults: this.opts.useDefaultIgnores ?? true,
      patterns: [...(this.opts.ignore ?? []), ...this.ownFiles()],
      ignoreFileText: await this.readIgnoreFile(),
      policies: this.opts.policies ?? [],
    });
    // The stamp file loads while the workers already walk the tree: the comparison waits
    // for it, the lstat calls do not.
    this.cacheReady = this.loadStamps();
    this.requestReconcile('', true);
    await this.reconciling;
    await this.cacheReady;
    await this.announceJournaledGone();
    const poll = this.opts.pollIntervalMs ?? 1000;
    this.pollTimer = setInterval(() => {
      if (this.dirs.polled.size > 0 && !this.closing) {
        for (const d of this.dirs.polled) this.requestReconcile(d, false);
      }
    }, poll);
    this.pollTimer.unref();
    const every = this.opts.rescanIntervalMs ?? 0;
    if (every > 0) {
      this.rescanTimer = setInterval(() => this.requestReconcile('', true), every);
      this.rescanTimer.unref();
    }
  }

  /**
   * A path the journal holds from before this start that is neither in the saved stamps nor on
   * disk was announced and is gone: announced deleted (the consumer ignores a path it has not).
   * The journal's lines go once start's differences are all acknowledged and saved.
   */
  private async announceJournaledGone(): Promise<void> {
    // A clean stop leaves the journal empty (its last save covered every batch).
    if (this.journaled.length === 0) return;
    const gone = await Promise.all(
      this.journaled.map(async (p) =>
        this.cache.get(p) || this.delivery.pendingState(p) !== undefined
          ? false
          : lstat(join(this.rootAbs, p)).then(
              () => false,
              (err: NodeJS.ErrnoException) => err.code === 'ENOENT' || err.code === 'ENOTDIR',
            ),
      ),
    );
    for (const [i, p] of this.journaled.entries()) if (gone[i]) this.delivery.announceGone(p);
    this.journaled = [];
    void this.idle().then(() => this.journal.coverLoaded());
  }

  private async loadStamps(): Promise<void> {
    this.journaled = this.journal.load();
    try {
      await this.cache.load(this.stampFile);
    } catch (err) {
      // A corrupt stamp file costs one rehash of everything; an unreadable one is the
      // caller's to fix (permissions), so it is thrown.
      if (!(err instanceof StampFileError) || err.action !== 'parse') throw err;
      this.logger.warn({ err, code: err.code }, err.message);
    }
    // Stamps under directories that are ignored now (the rules changed) go silently.
    for (const d of [...this.cache.dirNames()]) {
      if (d === '' || !this.matcher.dirIgnored(d)) continue;
      for (const name of [...(this.cache.dir(d)?.keys() ?? [])]) this.cache.delete(join(d, name));
    }
  }

  /** Counters for tests, benchmarks and service stats. */
  stats(): WatcherStats {
    return {
      ...this.stat,
      pending:
        this.debouncer.size +
        this.settler.size +
        this.reports.parked +
        this.inCheck.size +
        this.delivery.pending +
        this.reconcileQueue.size,
      held: this.held.size,
      parked: this.reports.parked,
      watches: this.dirs.count,
      polledDirs: this.dirs.polled.size,
      stamps: this.cache.size,
    };
  }

  /** Resolves once nothing is pending: no debounce, check, scan, undelivered batch or log read. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      if (
        this.debouncer.size === 0 &&
        this.settler.size === 0 &&
        this.reports.parked === 0 &&
        !this.settling &&
        this.delivery.idle &&
        !(this.tailer?.busy ?? false) &&
        this.racy.size === 0
      ) {
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * A producer on this machine is writing `path` (relative to the root) and the consumer will
   * record its bytes from the producer's own report: a look at it waits for reportWrite (at most
   * reportWaitMs), so that bytes the consumer has need not be announced.
   */
  expectWrite(path: string): void {
    this.reports.expect(path);
  }

  /**
   * The consumer's record of `path`: these bytes, written here by a producer (its report), or
   * undefined for any other state. A look finding exactly them (hash, size, mtime) records their
   * stamp as acknowledged with no event; anything else is announced as usual.
   */
  reportWrite(path: string, write: ReportedWrite | undefined): void {
    this.reports.report(path, write);
  }

  /** Looks at the whole tree again against the stamps (after a suspected missed event). */
  async rescan(): Promise<void> {
    if (this.closing) throw new WatcherClosedError();
    this.requestReconcile('', true);
    while (this.reconciling) await this.reconciling;
  }

  /**
   * Stops watching, looks at what was still settling, delivers it (retrying until
   * closeTimeoutMs) and persists the stamps. Undelivered changes are found by the next start.
   */
  async close(): Promise<void> {
    if (this.closing) {
      while (!this.closed) await new Promise((r) => setTimeout(r, 10));
      return;
    }
    this.closing = true;
    const deadline = performance.now() + (this.opts.closeTimeoutMs ?? 5000);
    for (const t of [this.pollTimer, this.rescanTimer]) {
      if (t) clearInterval(t);
    }
    this.racy.close();
    this.dirs.closeAll();
    if (this.started) {
      const items = [
        ...this.debouncer.takeAll(),
        ...this.settler.takeAll(),
        ...this.reports.takeAll(),
      ];
      if (items.length > 0 && !this.lockPresent()) await this.check(items);
      while (this.reconciling) await this.reconciling;
      await this.delivery.drain(deadline);
    }
    this.debouncer.close();
    this.settler.close();
    this.delivery.close();
    if (this.lockTimer) clearInterval(this.lockTimer);
    await this.tailer?.close();
    if (this.persistTimer) clearTimeout(this.persistTimer);
    if (this.started) await this.persistNow();
    this.journal.close();
    this.closed = true;
  }

  private get scanContext(): ScanContext {
    return {
      rootAbs: this.rootAbs,
      pool: this.pool,
      dirs: this.dirs,
      matcher: this.matcher,
      cache: this.cache,
      delivery: this.delivery,
      tailer: this.tailer,
      stats: this.stat,
      logger: this.logger,
      racyWindowNs: this.racyWindowNs,
      ready: this.cacheReady,
      closing: () => this.closing,
    };
  }

  private get settling(): boolean {
    return (
      this.debouncer.size > 0 ||
      this.settler.size > 0 ||
      this.activeChecks > 0 ||
      this.reconciling !== undefined ||
      this.reconcileQueue.size > 0
    );
  }

  /** The stamp file and its temp files, when they live under the root. */
  private ownFiles(): string[] {
    const rel = relative(this.rootAbs, this.stampFile);
    if (rel.startsWith('..') || isAbsolute(rel)) return [];
    const p = globEscape(rel.split(sep).join('/'));
    return [`/${p}`, `/${p}.tmp-*`, `/${p}.sent`, `/${p}.sent.tmp`];
  }

  private async readIgnoreFile(): Promise<string | undefined> {
    if (!this.opts.ignoreFile) return undefined;
    const file = resolve(this.rootAbs, this.opts.ignoreFile);
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return undefined;
    }
  }

  private onRaw(dir: string, name: string | null): void {
    if (this.closing) return;
    this.rawEvents++;
    if (name !== null) this.racy.cancel(join(dir, name));
    if (name === null || name === '') {
      this.requestReconcile(dir, false);
      return;
    }
    const rel = join(dir, name);
    const policy = this.matcher.policy(rel);
    if (policy === 'ignore') return;
    if (policy === 'log') {
      this.tailer?.poke(rel);
      return;
    }
    // A producer's output (expectWrite) is looked at once its report comes, whatever its writes
    // until then: parked at its first event, its later events cost a Set lookup. Through the quiet
    // window, each of a compile's writes of its .o and .d re-armed a timer whose look only parked
    // it (pnpm bench cbuild, #15). The look made when it is released is an ordinary one (lock
    // check, stat, hash). A path being looked at now goes the usual way: its recheck follows.
    if (!this.inCheck.has(rel) && this.reports.park(rel)) return;
    this.debouncer.touch(rel);
  }

  private onDue(items: DueItem[]): void {
    this.process(items).catch((err: unknown) => {
      // A worker died mid-check: these paths were not looked at; the stamps can tell which.
      this.logger.error(
        { err, paths: items.length },
        'fswatch: checking changes failed; rescanning',
      );
      this.requestReconcile('', true);
    });
  }

  private async process(items: DueItem[]): Promise<void> {
    if (this.closing) return;
    this.activeChecks++;
    try {
      if (this.lockPresent()) {
        this.hold(items);
        return;
      }
      await this.check(items);
    } finally {
      this.activeChecks--;
      this.afterWork();
    }
  }

  /**
   * A VCS lock file exists. Asked before every look: existsSync is one stat in this thread
   * (about a µs); fs.promises.access cost a thread-pool hop and an ENOENT error, stack and all,
   * each time (4% of the fswatcher's CPU in pnpm bench cbuild).
   */
  private lockPresent(): boolean {
    return this.lockFiles.some((f) => existsSync(f));
  }

  /** A VCS operation is running: its intermediate states are not worth hashing or reporting. */
  private hold(items: DueItem[]): void {
    for (const it of items) if (!this.held.has(it.path)) this.held.set(it.path, it.first);
    this.delivery.setPaused(true);
    if (this.lockTimer) return;
    this.lockTimer = setInterval(() => {
      if (this.lockPresent() || !this.lockTimer) return;
      clearInterval(this.lockTimer);
      this.lockTimer = undefined;
      const released = [...this.held].map(([path, first]) => ({ path, first }));
      this.held.clear();
      this.delivery.setPaused(false);
      if (released.length > 0) this.onDue(released);
    }, 50);
  }

  /** Something finished: deliver when everything has settled, rescan after a huge burst. */
  private afterWork(): void {
    if (this.settling) return;
    if (this.rawEvents >= this.rawOverflow) {
      // inotify may have dropped events (it says so with IN_Q_OVERFLOW, which libuv swallows).
      this.logger.info(
        { events: this.rawEvents },
        'burst large enough to overflow inotify; rescanning',
      );
      this.requestReconcile('', true);
    }
    this.rawEvents = 0;
    this.delivery.kick();
  }

  /**
   * Looks at each path: stat, compare with the newest known stamp, hash if it moved or is
   * racy, and records the new state for delivery.
   */
  private async check(items: DueItem[]): Promise<void> {
    const todo: DueItem[] = [];
    for (const it of items) {
      if (this.reports.park(it.path)) continue;
      if (this.inCheck.has(it.path)) this.recheck.add(it.path);
      else {
        this.inCheck.add(it.path);
        todo.push(it);
      }
    }
    if (todo.length === 0) return;
    this.activeChecks++;
    try {
      // A few chunks in flight keep the workers busy; waiting for room in the delivery
      // queue keeps a scan of a huge changed tree within maxPending.
      const running = new Set<Promise<void>>();
      const size = Math.max(1, Math.min(CHECK_CHUNK, Math.floor(this.delivery.maxPending / 4)));
      for (let i = 0; i < todo.length; i += size) {
        const chunk = todo.slice(i, i + size);
        while (running.size >= this.pool.size * 2) await Promise.race(running);
        await this.delivery.room(chunk.length);
        const p: Promise<void> = this.checkChunk(chunk).finally(() => running.delete(p));
        running.add(p);
      }
      await Promise.all(running);
    } finally {
      for (const it of todo) {
        this.inCheck.delete(it.path);
        if (this.recheck.delete(it.path) && !this.closing) this.debouncer.touch(it.path);
      }
      this.activeChecks--;
      this.afterWork();
    }
  }

  private async checkChunk(items: DueItem[]): Promise<void> {
    const req: CheckItem[] = items.map((it) => {
      const lat = this.delivery.latest(it.path);
      return {
        path: `${this.rootAbs}/${it.path}`,
        expect: lat ? rawOf(lat) : null,
        force: lat ? isRacy(lat, this.racyWindowNs) : false,
        // A path we have never seen may be a renamed file: stat first, hash only if not.
        probe: lat === null && this.cache.size > 0,
      };
    });
    let res: CheckResult[];
    try {
      res = await lookAt(this.pool, req);
    } catch (err) {
      if (this.closing) return;
      throw err;
    }
    const rehash: DueItem[] = [];
    for (const [it, r] of zip(items, res)) {
      if (r.kind === 'probe') {
        if (!this.adoptMove(it.path, r.stat, r.verifiedNs)) rehash.push(it);
        continue;
      }
      this.apply(it, r);
    }
    if (rehash.length > 0) {
      const again = await lookAt(
        this.pool,
        rehash.map((it) => ({ path: `${this.rootAbs}/${it.path}`, expect: null, force: true })),
      );
      for (const [it, r] of zip(rehash, again)) this.apply(it, r);
    }
  }

  /**
   * A new path whose inode, size and mtime match an acknowledged file is that file renamed:
   * take its hash instead of reading the bytes again (a rename keeps mtime, changes ctime).
   */
  private adoptMove(rel: string, st: RawStat, verifiedNs: bigint): boolean {
    const from = this.cache.pathOfIno(st[3]);
    if (from === undefined || from === rel) return false;
    const old = this.cache.get(from);
    if (!old || old.mtimeNs !== st[0] || old.size !== Number(st[2])) return false;
    if (isRacy(old, this.racyWindowNs)) return false;
    this.record(rel, {
      mtimeNs: st[0],
      ctimeNs: st[1],
      size: Number(st[2]),
      ino: st[3],
      sha256: old.sha256,
      verifiedNs,
    });
    return true;
  }

  private apply(it: DueItem, r: CheckResult): void {
    const rel = it.path;
    const settled = this.secondLook.delete(rel);
    switch (r.kind) {
      case 'missing':
        if (this.dirs.has(rel)) this.requestReconcile(rel, true);
        else if (!settled && this.delivery.latest(rel) && this.settle(it)) return;
        this.delivery.set(rel, null);
        return;
      case 'dir':
        this.delivery.set(rel, null);
        if (!this.dirs.has(rel) && !this.matcher.dirIgnored(rel)) this.requestReconcile(rel, true);
        return;
      case 'other':
        this.delivery.set(rel, null);
        return;
      case 'same':
      case 'probe':
        return;
      case 'error': {
        if (!this.warnedHash.has(rel)) {
          this.warnedHash.add(rel);
          const err = new HashError(rel, r.errno);
          this.logger.warn({ err, code: err.code, path: rel }, err.message);
        }
        return;
      }
      case 'hashed':
      case 'unstable': {
        this.stat.hashed++;
        this.stat.hashedBytes += r.bytes;
        this.warnedHash.delete(rel);
        const stamp: Stamp = {
          mtimeNs: r.stat[0],
          ctimeNs: r.stat[1],
          size: Number(r.stat[2]),
          ino: r.stat[3],
          sha256: r.sha256,
          verifiedNs: r.verifiedNs,
        };
        if (r.kind === 'unstable') {
          // Written while we read it. Look again once it is quiet, unless it has been
          // written for longer than maxWaitMs: then report what we read, and the stamp
          // (verified at 0, so always racy) makes the next look hash it again.
          if (performance.now() - it.first < this.maxWaitMs && !this.closing) {
            this.debouncer.touch(rel, it.first);
            return;
          }
          stamp.verifiedNs = 0n;
          this.delivery.set(rel, stamp);
          return;
        }
        if (!settled && stamp.size === 0 && this.settle(it)) return;
        if (this.adoptReported(rel, stamp)) return;
        this.record(rel, stamp);
      }
    }
  }

  /**
   * A file that vanished or became empty is often half-way through a save: an editor's rename
   * dance, or a truncate before the write. A short quiet window may fall between the two, so
   * such a look counts only if a second one, `settleMs` later, finds the same. A write in
   * between is seen by its own event, as usual. False once the burst is older than maxWaitMs.
   */
  private settle(it: DueItem): boolean {
    if (this.closing || performance.now() - it.first >= this.maxWaitMs) return false;
    this.settler.touch(it.path, it.first);
    return true;
  }

  /**
   * The consumer recorded these very bytes from their producer's report (reportWrite): their
   * stamp is acknowledged as it stands, with no event. Not while another state of the path is
   * still to be delivered: that one's commit would overwrite the stamp.
   */
  private adoptReported(rel: string, stamp: Stamp): boolean {
    if (!this.reports.matches(rel, stamp) || this.delivery.pendingState(rel) !== undefined)
      return false;
    this.cache.set(rel, stamp);
    this.stat.reported++;
    this.schedulePersist();
    if (isRacy(stamp, this.racyWindowNs)) this.scheduleRacy(rel, stamp);
    return true;
  }

  private record(rel: string, stamp: Stamp): void {
    const lat = this.delivery.latest(rel);
    if (
      lat &&
      lat.sha256 === stamp.sha256 &&
      sameStat(lat, stamp.mtimeNs, stamp.ctimeNs, stamp.size, stamp.ino) &&
      lat.verifiedNs >= stamp.verifiedNs
    ) {
      return;
    }
    this.delivery.set(rel, stamp);
    if (isRacy(stamp, this.racyWindowNs)) this.scheduleRacy(rel, stamp);
  }

  private scheduleRacy(rel: string, s: Stamp): void {
    if (!this.closing) this.racy.schedule(rel, s);
  }

  private onRacyDue(items: RacyDue[]): void {
    if (this.closing) return;
    const rehash: DueItem[] = [];
    for (const { path, stamp } of items) {
      if (this.delivery.latest(path) !== stamp) continue;
      const quiet =
        !this.debouncer.has(path) &&
        !this.settler.has(path) &&
        !this.inCheck.has(path) &&
        !this.held.has(path);
      if (quiet && this.dirs.isWatched(parentOf(path))) {
        this.delivery.set(path, { ...stamp, verifiedNs: this.racy.verifiedAt(stamp) });
      } else {
        // Polled directories get no event for a same-tick write: only the bytes can tell.
        rehash.push({ path, first: performance.now() });
      }
    }
    if (rehash.length > 0) this.onDue(rehash);
  }

  private requestReconcile(dir: string, recursive: boolean): void {
    if (this.closing) return;
    const prev = this.reconcileQueue.get(dir);
    this.reconcileQueue.set(dir, recursive || prev === true);
    if (this.reconciling) return;
    this.reconciling = (async () => {
      try {
        while (this.reconcileQueue.size > 0) {
          const batch = [...this.reconcileQueue];
          this.reconcileQueue.clear();
          try {
            await this.reconcile(batch);
          } catch (err) {
            if (!this.closing) this.logger.error({ err }, 'fswatch: rescan failed');
          }
        }
      } finally {
        this.reconciling = undefined;
        this.afterWork();
      }
    })();
  }

  private async reconcile(requests: Array<[string, boolean]>): Promise<void> {
    if (this.started && requests.some(([d]) => d === '')) this.stat.rescans++;
    const paths = await reconcile(this.scanContext, requests);
    if (paths.length === 0 || this.closing) return;
    const now = performance.now();
    await this.check(paths.map((path) => ({ path, first: now })));
  }

  private schedulePersist(): void {
    if (this.persistTimer || this.closing) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persistNow().catch(() => {});
    }, this.opts.persistDelayMs ?? 1000);
    this.persistTimer.unref();
  }

  private persistNow(): Promise<void> {
    this.persisting = this.persisting.then(async () => {
      // The batches acknowledged before the save begins are in it: their journal lines go.
      const mark = this.journal.mark();
      try {
        if (this.cache.isDirty) await this.cache.save(this.stampFile);
        this.journal.saved(mark);
      } catch (err) {
        this.logger.error({ err, code: (err as StampFileError).code }, (err as Error).message);
        if (this.closing) throw err;
      }
    });
    return this.persisting;
  }
}

export type { FileEvent };
