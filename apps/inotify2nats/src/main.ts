import { homedir } from 'node:os';
import { createLogger, startService } from '@computepods/bus';
import { buildProgram } from './cli.js';
import { startDaemon } from './daemon.js';
import { resolveSettings } from './settings.js';

const program = buildProgram();
program.parse(process.argv);
const boot = createLogger('inotify2nats');
try {
  const settings = resolveSettings({
    cli: program.opts(),
    env: process.env,
    cwd: process.cwd(),
    home: homedir(),
  });
  const logger = boot.child({ project: settings.project, pod: settings.pod });
  logger.level = settings.logLevel;
  // A SIGTERM or Ctrl-C while it waits for NATS or the pod stops it cleanly (exit 0); a start
  // that fails says why in one line (exit 1); once watching, a signal drains it.
  startService(logger, ({ signal }) => startDaemon(settings, { logger, signal }));
} catch (err) {
  const e = err as Error & { code?: string };
  boot.fatal({ code: e.code, err: e.message }, e.message);
  process.exitCode = 2;
}
