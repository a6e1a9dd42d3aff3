import { type Logger, pino } from 'pino';
import { busSettings } from './config.js';

export type { Logger } from 'pino';

/**
 * JSON logs on stderr (stdout stays free for a command's own output, e.g. `-o json`), pretty
 * when stderr is a terminal. Every line carries the service; child loggers add `cid`.
 */
export function createLogger(service: string, base: Record<string, unknown> = {}): Logger {
  const { logLevel: level, json } = busSettings();
  const pretty = process.stderr.isTTY && !json;
  if (pretty) {
    return pino({
      level,
      base: { service, ...base },
      transport: {
        target: 'pino-pretty',
        options: {
          destination: 2,
          colorize: true,
          ignore: 'pid,hostname',
          translateTime: 'HH:MM:ss.l',
        },
      },
    });
  }
  return pino({ level, base: { service, ...base } }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that writes nothing (tests, mostly): no transport, no file descriptor. */
export function quietLogger(service: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level: 'silent', base: { service, ...base } });
}
