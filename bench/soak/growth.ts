// How the soak bench judges "flat": pure functions over the samples, kept apart from the run.
import { readdirSync, readFileSync } from 'node:fs';

export interface Sample {
  /** Seconds since the edits began. */
  readonly t: number;
  readonly proc: string;
  readonly pid: number;
  readonly rssKb: number;
  readonly fds: number;
}

/** VmRSS (kB) and the number of open file descriptors of a live process, from /proc. */
export function probe(pid: number): { rssKb: number; fds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return { rssKb: rss ? Number(rss[1]) : Number.NaN, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined; // gone (crashed or stopped): the gap shows in the samples
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Least-squares slope of y over x (per unit of x); NaN with fewer than two points. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

export interface Windows {
  /**
   * Samples before this (s) are warm-up: the first 20 % of the run or 5 min, whichever is
   * shorter, but at least the stores' settle time (at most half the run).
   */
  readonly warmupS: number;
  /** "Start": [warmupS, warmupS + windowS); "end": the last windowS of the run. 10 % of the run. */
  readonly windowS: number;
  readonly durationS: number;
}

export function windowsFor(durationS: number, settleS = 0): Windows {
  // Warm-up also covers `settleS`, the time the stores take to reach their steady state (the
  // bench's record retention: before it, every record written is still kept), at most half
  // the run: growth measured before that is the stores filling, not a leak.
  const warmupS = Math.min(Math.max(Math.min(0.2 * durationS, 300), settleS), 0.5 * durationS);
  return { warmupS, windowS: 0.1 * durationS, durationS };
}

export interface Growth {
  readonly proc: string;
  readonly samples: number;
  readonly rssStartKb: number;
  readonly rssEndKb: number;
  readonly rssGrowthPct: number;
  /** Trend after warm-up, kB per minute (least squares): a slow leak shows here first. */
  readonly rssSlopeKbPerMin: number;
  /** The same over the second half of the run only: a leak keeps it up, a cache that filled does not. */
  readonly rssLateSlopeKbPerMin: number;
  readonly fdsStart: number;
  readonly fdsEnd: number;
  readonly fdsGrowth: number;
  readonly fdsGrowthPct: number;
  /** RSS and fds each grew at most `limitPct` from the start window to the end window. */
  readonly goalMet: boolean;
}

/**
 * Growth of one process: the median of the end window against the median of the first window
 * after warm-up, for RSS and for open fds. Medians, so one sample taken mid-GC does not decide.
 */
export function growthOf(
  proc: string,
  samples: readonly Sample[],
  w: Windows,
  limitPct = 10,
): Growth {
  const mine = samples.filter((s) => s.proc === proc);
  const start = mine.filter((s) => s.t >= w.warmupS && s.t < w.warmupS + w.windowS);
  const end = mine.filter((s) => s.t >= w.durationS - w.windowS);
  const post = mine.filter((s) => s.t >= w.warmupS);
  const late = mine.filter((s) => s.t >= w.durationS / 2);
  const rssStartKb = median(start.map((s) => s.rssKb));
  const rssEndKb = median(end.map((s) => s.rssKb));
  const fdsStart = median(start.map((s) => s.fds));
  const fdsEnd = median(end.map((s) => s.fds));
  const rssGrowthPct = ((rssEndKb - rssStartKb) / rssStartKb) * 100;
  const fdsGrowthPct = ((fdsEnd - fdsStart) / fdsStart) * 100;
  return {
    proc,
    samples: mine.length,
    rssStartKb,
    rssEndKb,
    rssGrowthPct,
    rssSlopeKbPerMin: slope(post.map((s) => [s.t / 60, s.rssKb] as const)),
    rssLateSlopeKbPerMin: slope(late.map((s) => [s.t / 60, s.rssKb] as const)),
    fdsStart,
    fdsEnd,
    fdsGrowth: fdsEnd - fdsStart,
    fdsGrowthPct,
    // NaN (no samples in a window: the process died) compares false: not met.
    goalMet: rssGrowthPct <= limitPct && fdsGrowthPct <= limitPct,
  };
}

/**
 * The last full GC (V8 --trace-gc "Mark-Compact" line) in a process's output: when it ran (ms
 * since the process started) and the heap's used size after it (KiB). What survives a full GC
 * is what the process retains; RSS can grow past it while V8 or the allocator keep freed pages.
 */
export function lastFullGc(output: string): { atMs: number; afterKb: number } | undefined {
  const at = output.lastIndexOf('Mark-Compact');
  if (at < 0) return undefined;
  const lineStart = output.lastIndexOf('\n', at) + 1;
  const lineEnd = output.indexOf('\n', at);
  const line = output.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
  const m = /\s(\d+) ms: Mark-Compact(?: \(reduce\))? [\d.]+ \([\d.]+\) -> ([\d.]+) \(/.exec(line);
  return m ? { atMs: Number(m[1]), afterKb: Math.round(Number(m[2]) * 1024) } : undefined;
}

export interface HeapTrend {
  readonly samples: number;
  readonly startKb: number;
  readonly endKb: number;
  readonly growthPct: number;
  /** KiB per minute over the second half of the run (least squares). */
  readonly lateSlopeKbPerMin: number;
}

/** The heap after full GCs over the run, judged like RSS: medians of the same two windows. */
export function heapTrend(points: readonly { t: number; kb: number }[], w: Windows): HeapTrend {
  const start = points.filter((p) => p.t >= w.warmupS && p.t < w.warmupS + w.windowS);
  const end = points.filter((p) => p.t >= w.durationS - w.windowS);
  const startKb = median(start.map((p) => p.kb));
  const endKb = median(end.map((p) => p.kb));
  return {
    samples: points.length,
    startKb,
    endKb,
    growthPct: ((endKb - startKb) / startKb) * 100,
    lateSlopeKbPerMin: slope(
      points.filter((p) => p.t >= w.durationS / 2).map((p) => [p.t / 60, p.kb] as const),
    ),
  };
}

/**
 * nats-server's Go heap as of its last GC, in two parts (KiB):
 * - `blockCacheKb`: its filestore's block cache. The message blocks it loaded to read
 *   (`getMsgBlockBuf`, for consumers, KV gets and max-age expiry) and the write-through buffer
 *   of each stream's last block (`(*msgBlock).writeMsgRecord`). Each is one buffer of up to the
 *   stream's block size (8 MiB for a limits stream), held while the block is read or written and
 *   dropped seconds later, and it grows with its block until the block is full: the cache is
 *   bounded by the blocks in use, and reaches its steady size only once each busy stream has
 *   filled a block and expired one.
 * - `otherKb`: everything else (subscriptions, clients, consumers' state, indexes): what would
 *   grow with a leak.
 * From the text heap profile (`/debug/pprof/heap?debug=1`), whose counts are sampled and not
 * scaled: each record is scaled by its sampling probability (Go samples an allocation of s bytes
 * with 1 - e^(-s/rate); the header's `heap/N` is twice the rate). That is close to 1 for block
 * buffers; small objects are scaled by thousands, so `otherKb` is noisy sample to sample (judge
 * it by medians). Undefined when the text is not a heap profile.
 */
export function natsHeapParts(
  profile: string,
): { blockCacheKb: number; otherKb: number } | undefined {
  const head = /^heap profile: \d+: \d+ \[\d+: \d+\] @ heap\/(\d+)$/m.exec(profile);
  if (!head) return undefined;
  const rate = Number(head[1]) / 2;
  let block = 0;
  let other = 0;
  for (const record of profile.split('\n\n')) {
    const m = /^(\d+): (\d+) \[\d+: \d+\] @.*\n#\t0x[0-9a-f]+\t(\S+)/m.exec(record);
    const [count, size] = [Number(m?.[1]), Number(m?.[2])];
    if (!m || !count) continue;
    const scaled = size / (1 - Math.exp(-size / count / rate));
    // Allocated by those two functions themselves, and at least the smallest block (32 kB).
    const isBlock =
      /\.getMsgBlockBuf\+|\(\*msgBlock\)\.writeMsgRecord\+/.test(m[3] ?? '') &&
      size / count >= 32_000;
    if (isBlock) block += scaled;
    else other += scaled;
  }
  return { blockCacheKb: Math.round(block / 1024), otherKb: Math.round(other / 1024) };
}
