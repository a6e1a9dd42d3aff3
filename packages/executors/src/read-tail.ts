import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** The last `maxBytes` of a file as UTF-8 ('' when it does not exist yet). */
export async function readTail(path: string, maxBytes: number): Promise<string> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, 'r');
    const { size } = await fh.stat();
    const length = Math.min(size, maxBytes);
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, size - length);
    return buf.toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  } finally {
    await fh?.close();
  }
}

/**
 * Up to `maxBytes` of a file from `offset`, with its size; undefined when it does not exist.
 * O_NONBLOCK: a FIFO put where a log should be must not hang the reader.
 */
export async function readFrom(
  path: string,
  offset: number,
  maxBytes: number,
): Promise<{ data: Buffer; size: number } | undefined> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    const length = Math.max(0, Math.min(st.size - offset, maxBytes));
    const buf = Buffer.alloc(length);
    const { bytesRead } = length > 0 ? await fh.read(buf, 0, length, offset) : { bytesRead: 0 };
    return { data: buf.subarray(0, bytesRead), size: st.size };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  } finally {
    await fh?.close();
  }
}
