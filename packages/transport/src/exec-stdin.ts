import type { ClientChannel } from 'ssh2';

/**
 * Writes `source` to a command's stdin chunk by chunk, then ends it. The next chunk is pulled
 * only once ssh2 has taken the last one whole (its write callback: the bytes are copied into
 * packets as the channel's window opens), so at most one chunk waits in the channel and the
 * source owns a chunk again once its yield returns. When the channel closes or fails first
 * (ssh2 never calls back a write on a closed channel), it stops and closes the source
 * (return()): the command's own end says what happened. Rejects only with the source's error.
 */
export async function streamStdin(
  stream: ClientChannel,
  source: AsyncIterable<Buffer>,
): Promise<void> {
  let gone = false;
  const closed = new Promise<void>((resolve) =>
    stream.once('close', () => {
      gone = true;
      resolve();
    }),
  );
  const written = (chunk: Buffer) =>
    new Promise<void>((resolve) =>
      stream.write(chunk, (err) => {
        if (err) gone = true;
        resolve();
      }),
    );
  for await (const chunk of source) {
    if (gone) return;
    await Promise.race([written(chunk), closed]);
    if (gone) return;
  }
  stream.end();
}
