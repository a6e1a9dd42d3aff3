import { VERSION } from '@computepods/bus';
import { Command, Option } from 'commander';
import { artefactCommand } from './commands/artefact.js';
import { buildCommand } from './commands/build.js';
import { completionCommand } from './commands/completion.js';
import { credsCommand } from './commands/creds.js';
import { buildsCommand, graphCommand } from './commands/graph.js';
import { logsCommand } from './commands/logs.js';
import { projectCommand } from './commands/project.js';
import { queueCommand } from './commands/queue.js';
import { resourceCommands } from './commands/resource.js';
import { statusCommand } from './commands/status.js';
import { taskCommand } from './commands/task.js';
import { tokenCommand } from './commands/token.js';
import { reportError } from './output.js';

const program = new Command('cpctrl')
  .description('ComputePods control: see and drive the builds of a project')
  .version(VERSION, '-V, --version', 'print the version')
  .addOption(
    new Option('-o, --output <format>', 'output format')
      .choices(['text', 'json'])
      .default('text')
      .env('CPCTRL_OUTPUT'),
  )
  .addOption(
    new Option('-p, --project <name>', 'project (default: the current one)').env('CP_PROJECT'),
  )
  .addOption(new Option('--nats <url>', 'NATS server URL(s)').env('NATS_URL'))
  .addOption(
    new Option(
      '--creds <file>',
      "NATS credentials (default: the config file's for the project, else the admin's from the auth dir `up` made)",
    ).env('NATS_CREDS'),
  )
  .showHelpAfterError('(add --help for usage)')
  .addHelpText(
    'after',
    `
Settings: a flag wins over its environment variable, which wins over the config file
(\${XDG_CONFIG_HOME:-~/.config}/computepods/cpctrl.json, written by \`cpctrl project use\`).
Credentials: --creds / NATS_CREDS, else the config file's "credentials" for the project, else
the project admin's in the auth dir (CP_AUTH_DIR, or .state/auth that \`up\` made here).

Examples:
  cpctrl status
  cpctrl build out/hello.upper --watch
  cpctrl artefact why out/hello.upper
  cpctrl graph --dot | dot -Tsvg > graph.svg
  cpctrl task list --state running
  cpctrl logs -f TASK
  cpctrl logs TASK --stream stderr --from 1024 -o json
  cpctrl -o json status | jq '.artefacts[] | select(.status != "up_to_date")'`,
  );

statusCommand(program);
artefactCommand(program);
buildCommand(program);
buildsCommand(program);
graphCommand(program);
taskCommand(program);
logsCommand(program);
projectCommand(program);
queueCommand(program);
resourceCommands(program);
tokenCommand(program);
credsCommand(program);
completionCommand(program);

const json =
  process.argv.includes('json') &&
  process.argv.some((a) => a === '-o' || a === '--output' || a === '-ojson');
program
  .parseAsync(process.argv)
  .catch((err) => reportError(err, json || process.env.CPCTRL_OUTPUT === 'json'));
