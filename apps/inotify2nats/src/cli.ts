import { VERSION } from '@computepods/bus';
import { Command, Option } from 'commander';
import { CONFIG_ENV, CONFIG_FLAG, FIELDS, type FieldName, REQUIRED } from './settings.js';

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/**
 * The command line, made from the settings table. Values are left as given (no defaults, no
 * environment): resolveSettings applies flag > environment > config file > default.
 */
export function buildProgram(): Command {
  const program = new Command('inotify2nats')
    .description(
      "Watch a directory on this machine and keep a ComputePods pod in step with it: each saved file is copied into the pod's workspace over SSH (SFTP, SHA-256 verified, atomic rename), then announced on NATS as files.changed, so pods never need your disk. Files matching --log are streamed live on cp.<project>.logs.<pod> instead (tail -f).",
    )
    .version(VERSION, '-V, --version', 'print the version')
    .addOption(
      new Option(CONFIG_FLAG, `YAML or JSON file with any setting below [env ${CONFIG_ENV}]`),
    )
    .showHelpAfterError('(add --help for usage)')
    .allowExcessArguments(false);
  for (const [name, spec] of Object.entries(FIELDS) as [FieldName, (typeof FIELDS)[FieldName]][]) {
    const required = REQUIRED.includes(name) ? ' (required)' : '';
    const opt = new Option(spec.flag, `${spec.help}${required} [env ${spec.env}]`);
    if (spec.kind === 'list') opt.argParser(collect);
    program.addOption(opt);
  }
  program.addHelpText(
    'after',
    `
Precedence: a flag wins over its environment variable, which wins over the config file.
Relative paths in a config file are relative to that file. Logs are JSON lines on stderr
(pretty on a terminal); each batch's lines carry its correlation id (cid).

Example:
  inotify2nats --project demo --pod laptop --root ~/paper \\
    --ssh cp@pod.example.org:2222 --key ~/.ssh/cp_ed25519 --known-hosts ~/.ssh/known_hosts \\
    --remote-root workspace --nats nats://nats.example.org:4222 --log '*.log'

Config file (--config inotify2nats.yaml):
  project: demo
  pod: laptop
  root: ~/paper
  ssh: cp@pod.example.org:2222
  key: ~/.ssh/cp_ed25519
  remoteRoot: workspace
  log: ['*.log', '*.out']

Guarantees: a change is announced only after its bytes are verified in the pod; a pod or NATS
that is down delays a batch (retried with backoff), never loses it; stamps in --state-dir make a
restart over unchanged files announce nothing. Symlinks are never followed, and a path that
would leave --root or --remote-root is refused with an error naming it.`,
  );
  return program;
}
