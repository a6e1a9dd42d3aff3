import type { Logger } from './logger.js';

/**
 * Runs a service until SIGTERM/SIGINT, then calls stop() (drain) and exits 0. A second signal,
 * or a stop that takes longer than graceMs, exits at once. Unexpected errors are logged as one
 * JSON line and exit 1, so a supervisor restarts the process (nothing acked is lost).
 */
export function runUntilSignal(logger: Logger, stop: () => Promise<void>, graceMs = 10_000): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    logger.info({ signal }, 'stopping: draining in-flight work');
    const timer = setTimeout(() => {
      logger.warn({ graceMs }, 'drain took too long; exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    stop().then(
      () => {
        logger.info('stopped cleanly');
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
}

/**
 * What every service's start function returns. stop() ends the service's own work (consumers,
 * watchers, timers); it does not close the bus it was given: the bus is its creator's (main.ts).
 */
export interface Service {
  stop(): Promise<void>;
}

/** `service`, whose stop() then closes `bus`: what main.ts, which connected the bus, runs. */
export function thenClose(service: Service, bus: { close(): Promise<void> }): Service {
  return {
    async stop() {
      try {
        await service.stop();
      } finally {
        await bus.close();
      }
    },
  };
}

/** Starts a service's main, logging a clean one-line error instead of a stack-trace crash. */
export function startService(logger: Logger, main: () => Promise<Service>): void {
  main().then(
    (service) => runUntilSignal(logger, () => service.stop()),
    (err: Error & { code?: string }) => {
      logger.fatal({ code: err.code, err: err.message }, `cannot start: ${err.message}`);
      process.exit(1);
    },
  );
}
