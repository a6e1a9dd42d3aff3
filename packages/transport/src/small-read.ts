import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ChangedWhileReadError } from './errors.js';

/** Files up to this size are read whole by readSmallFile. */
export const SMALL_READ_MAX = 64 * 1024;

/**
 * The whole of a local regular file of at most SMALL_READ_MAX bytes, read with synchronous
 * calls; undefined for a bigger file or one that is not regular (a FIFO, a device: opened
 * without blocking, never read here). Four system calls of microseconds each on a local disk,
 * where the thread pool's round trips cost tens: inotify2nats puts thousands of small files in
 * a burst, and on 10,000 x 4 KiB those round trips were a third of the put's CPU. A file whose
 * size, mtime or ctime moved while it was read, or that reads longer or shorter than its stat,
 * is ChangedWhileReadError.
 */
export function readSmallFile(path: string): Buffer | undefined {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const before = fstatSync(fd);
    if (!before.isFile() || before.size > SMALL_READ_MAX) return undefined;
    // One byte more than the stat says: a file that grew reads longer.
    const buf = Buffer.allocUnsafe(before.size + 1);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    const after = fstatSync(fd);
    if (
      got !== before.size ||
      after.size !== before.size ||
      after.mtimeMs !== before.mtimeMs ||
      after.ctimeMs !== before.ctimeMs
    )
      throw new ChangedWhileReadError(path);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
