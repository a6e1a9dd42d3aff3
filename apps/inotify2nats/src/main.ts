import { homedir } from 'node:os';
import { createLogger, runUntilSignal } from '@computepods/bus';
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
  startDaemon(settings, { logger }).then(
    (daemon) => runUntilSignal(logger, () => daemon.stop()),
    (err: Error & { code?: string }) => {
      logger.fatal({ code: err.code, err: err.message }, `cannot start: ${err.message}`);
      process.exit(1);
    },
  );
} catch (err) {
  const e = err as Error & { code?: string };
  boot.fatal({ code: e.code, err: e.message }, e.message);
  process.exitCode = 2;
}
