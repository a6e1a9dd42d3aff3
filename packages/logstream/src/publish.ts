import type { Bus } from '@computepods/bus';
import type { LogChunk as WatchedChunk } from '@computepods/fswatch';
import { LOG_CHUNK_MAX_BYTES, subjects } from '@computepods/protocol';
import { LogUnconfirmedError } from './errors.js';

export interface PublishLogOptions {
  /** How long to wait for the server to have the chunk before the caller retries it. Default 5000. */
  readonly flushTimeoutMs?: number;
}

/**
 * Publishes bytes appended to a followed file on `cp.<project>.logs.<pod>` (core NATS: live
 * following, not kept). Large reads are cut into pieces that fit any server's max_payload; the
 * truncated/rotated flags ride on the first piece. Resolves once the server has them, so the
 * watcher commits the file offset only then; a retried chunk may arrive twice, and
 * `followLogs` drops the repeat by its offset.
 */
export async function publishLogChunk(
  bus: Bus,
  pod: string,
  chunk: WatchedChunk,
  options: PublishLogOptions = {},
): Promise<void> {
  const subject = subjects.logs(bus.project, pod);
  const payload = bus.nc.info?.max_payload ?? 1024 * 1024;
  // base64 grows by 4/3; keep room for the envelope.
  const piece = Math.max(
    1024,
    Math.min(LOG_CHUNK_MAX_BYTES, Math.floor(((payload - 8192) * 3) / 4)),
  );
  const data = Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength);
  let at = 0;
  do {
    const part = data.subarray(at, at + piece);
    bus.emit('log.chunk', subject, {
      pod,
      path: chunk.path,
      offset: chunk.offset + at,
      data: part.toString('base64'),
      truncated: at === 0 && chunk.truncated === true,
      rotated: at === 0 && chunk.rotated === true,
    });
    at += part.length;
  } while (at < data.length);
  const timeoutMs = options.flushTimeoutMs ?? 5_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      bus.nc.flush(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new LogUnconfirmedError(chunk.path, timeoutMs)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
