import { type BigIntStats, closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Files up to this size are read in the event loop's own thread (withSmallFile). */
export const SMALL_FILE_MAX = 64 * 1024;

/**
 * Opens `full` without blocking and, when it is a regular file of at most SMALL_FILE_MAX bytes,
 * gives its descriptor and stat to `use`; undefined when it is not one or cannot be opened (the
 * caller's asynchronous way then says why). Synchronous calls of a few microseconds each on a
 * local disk, where each call through libuv's thread pool costs tens of microseconds of CPU in
 * hand-offs between threads: a chef checks, stats, hashes and reads a handful of small files
 * per compile (pnpm bench cbuild, issue #15; transport's small-read.ts does the same for
 * uploads). A FIFO or device is never waited on: opened with O_NONBLOCK, never read.
 */
export function withSmallFile<T>(
  full: string,
  use: (fd: number, st: BigIntStats) => T,
): T | undefined {
  let fd: number;
  try {
    fd = openSync(full, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.size > BigInt(SMALL_FILE_MAX)) return undefined;
    return use(fd, st);
  } finally {
    closeSync(fd);
  }
}

/**
 * The bytes of an open small file, or undefined when they are not the `st` it was opened with:
 * it read longer or shorter (one byte more than the stat is asked for) or its size, mtime or
 * ctime moved meanwhile.
 */
export function readWhole(fd: number, st: BigIntStats): Buffer | undefined {
  const buf = Buffer.allocUnsafe(Number(st.size) + 1);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, got);
    if (n === 0) break;
    got += n;
  }
  const after = fstatSync(fd, { bigint: true });
  const same =
    BigInt(got) === st.size &&
    after.size === st.size &&
    after.mtimeNs === st.mtimeNs &&
    after.ctimeNs === st.ctimeNs;
  return same ? buf.subarray(0, got) : undefined;
}
