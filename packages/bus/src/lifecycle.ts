import type { Logger } from './logger.js';
import { type ProgramHelp, runsProgram } from './program-args.js';
import { tuneV8 } from './v8-tuning.js';

/**
 * Runs a service until SIGTERM/SIGINT, then calls stop() (drain) and exits 0. A second signal,
 * or a stop that takes longer than graceMs, exits at once. Unexpected errors are logged as one
 * JSON line and exit 1, so a supervisor restarts the process (nothing acked is lost).
 */
export function runUntilSignal(logger: Logger, stop: () => Promise<void>, graceMs = 10_000): void {
  exitOnFatal(logger);
  onStopSignal(logger, graceMs, (signal) => {
    logger.info({ signal }, 'stopping: draining in-flight work');
    exitAfter(logger, stop(), 'stopped cleanly');
  });
}

/**
 * Calls `stop` on the first SIGTERM/SIGINT; a second one exits 130 at once, and a stop still
 * running after graceMs exits 1.
 */
function onStopSignal(
  logger: Logger,
  graceMs: number,
  stop: (signal: NodeJS.Signals) => void,
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    const timer = setTimeout(() => {
      logger.warn({ graceMs }, 'stopping took too long; exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Exits 0 once `stopped` resolves (logging `done`), 1 if it fails. */
function exitAfter(logger: Logger, stopped: Promise<void>, done: string): void {
  stopped.then(
    () => {
      logger.info(done);
      process.exit(0);
    },
    (err) => {
      logger.error({ err }, 'error while stopping');
      process.exit(1);
    },
  );
}

function exitOnFatal(logger: Logger): void {
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

/** What a service's main is given while it starts (see startService). */
export interface Starting {
  /**
   * Aborted by a SIGTERM/SIGINT that comes before the start has ended: give it to what waits
   * (Bus.connect, a lease), and check it between long steps (`signal.throwIfAborted()`).
   */
  readonly signal: AbortSignal;
  /** `resource`, closed (the last opened first) if the start fails or is stopped. */
  opened<T extends { close(): Promise<void> }>(resource: T): T;
}

/**
 * Starts a service's main with V8 tuned (CP_V8_INTERRUPT_BUDGET, v8-tuning.ts) and its signal
 * handling installed first. A SIGTERM/SIGINT while it
 * starts (a systemd restart, Ctrl-C on `up`) aborts the start: what main had opened is closed,
 * or the service it had just started is stopped, "stopped while starting" is logged and the
 * process exits 0. Once started, a signal drains it (runUntilSignal). A start that fails for
 * another reason logs one clean line, not a stack trace, and exits 1. Given `help`, the command
 * line is read first (runsProgram): `--help` lists the variables that configure the service.
 */
export function startService(
  logger: Logger,
  main: (starting: Starting) => Promise<Service>,
  options: { readonly help?: ProgramHelp; readonly graceMs?: number } = {},
): void {
  // `--help`, `--version` or a command line it cannot use: answered, nothing started.
  if (options.help && !runsProgram(options.help)) return;
  const graceMs = options.graceMs ?? 10_000;
  exitOnFatal(logger);
  try {
    tuneV8();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, `cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  const abort = new AbortController();
  const opened: { close(): Promise<void> }[] = [];
  let service: Service | undefined;
  onStopSignal(logger, graceMs, (signal) => {
    if (service) {
      logger.info({ signal }, 'stopping: draining in-flight work');
      exitAfter(logger, service.stop(), 'stopped cleanly');
    } else {
      logger.info({ signal }, 'stopping while starting: the start is abandoned');
      abort.abort();
    }
  });
  const starting: Starting = {
    signal: abort.signal,
    opened(resource) {
      opened.push(resource);
      return resource;
    },
  };
  main(starting).then(
    (started) => {
      if (abort.signal.aborted) exitAfter(logger, started.stop(), 'stopped while starting');
      else service = started;
    },
    async (err: Error & { code?: string }) => {
      // A close that hangs (no server to drain to) must not keep a failed start alive.
      setTimeout(() => process.exit(abort.signal.aborted ? 0 : 1), graceMs).unref();
      for (const r of opened.reverse()) await r.close().catch(() => undefined);
      if (abort.signal.aborted) {
        logger.info({ cause: err.message }, 'stopped while starting');
        process.exit(0);
      }
      logger.fatal({ code: err.code, err: err.message }, `cannot start: ${err.message}`);
      process.exit(1);
    },
  );
}
