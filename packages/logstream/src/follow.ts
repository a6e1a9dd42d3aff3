import type { Bus } from '@computepods/bus';
import { checkName, checkProject, type LogChunk } from '@computepods/protocol';

/** One piece of a followed file, decoded, with what the follower could tell about gaps. */
export interface FollowedChunk extends Omit<LogChunk, 'data'> {
  readonly data: Buffer;
  /**
   * Bytes of this file published before this chunk that this follower never saw (it was
   * disconnected); 0 when the stream is whole since the follower first heard of the file.
   */
  readonly missed: number;
}

export interface FollowOptions {
  /** Only this pod's logs (default every pod of the project). */
  readonly pod?: string;
  /** Only this project-relative path. */
  readonly path?: string;
}

export interface LogFollower {
  stop(): Promise<void>;
}

/**
 * Follows log files streamed by inotify2nats and the fswatcher service (`tail -f` over NATS):
 * calls onChunk in arrival order with each new piece, dropping repeats (a chunk re-sent after
 * a lost confirmation) and noting gaps. A truncated or rotated file starts again at offset 0.
 *
 *   const f = followLogs(bus, 'demo', (c) => process.stdout.write(c.data), { path: 'build.log' });
 *   await f.stop();
 */
export function followLogs(
  bus: Bus,
  project: string,
  onChunk: (chunk: FollowedChunk) => void,
  options: FollowOptions = {},
): LogFollower {
  const pod = options.pod === undefined ? '*' : checkName('pod name', options.pod);
  // subjects.logs() names one pod's subject; a follower of every pod needs the wildcard.
  const subject = `cp.${checkProject(project)}.logs.${pod}`;
  const next = new Map<string, number>();
  const sub = bus.listen(subject, {
    accept: ['log.chunk'],
    project,
    invalidMsg: 'ignored log chunk: invalid, dead-lettered',
    handler: ({ body: chunk }) => {
      if (options.path !== undefined && chunk.path !== options.path) return;
      let data = Buffer.from(chunk.data, 'base64');
      const key = `${chunk.pod}\0${chunk.path}`;
      const expected = next.get(key);
      let offset = chunk.offset;
      let missed = 0;
      if (expected !== undefined && !chunk.truncated && !chunk.rotated) {
        if (offset + data.length <= expected && data.length > 0) return;
        if (offset < expected) {
          data = data.subarray(expected - offset);
          offset = expected;
        } else missed = offset - expected;
      }
      next.set(key, offset + data.length);
      onChunk({ ...chunk, offset, data, missed });
    },
  });
  return {
    async stop() {
      sub.unsubscribe();
    },
  };
}
