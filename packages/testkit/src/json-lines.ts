import { Writable } from 'node:stream';

/** One parsed log line: pino's fields, `msg` always there. */
export type LogLine = Record<string, unknown> & { msg: string };

/**
 * A stream that parses each JSON line written to it into `lines` (a new array, or the one given): give it to a logger (pino's
 * destination) to check what a service logged, in order.
 *
 *   const log = jsonLines();
 *   const bus = await Bus.connect({ ..., logger: pino({ level: 'info' }, log.stream) });
 *   expect(log.lines.find((l) => l.msg === 'ready')).toBeDefined();
 */
export function jsonLines<T extends Record<string, unknown> = LogLine>(
  lines: T[] = [],
): { readonly stream: Writable; readonly lines: T[] } {
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as T);
      cb();
    },
  });
  return { stream, lines };
}
