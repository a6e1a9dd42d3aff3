import { checkProject } from '@computepods/protocol';
import type { Command } from 'commander';
import { configPath, readConfig, writeConfig } from '../config-file.js';
import { type GlobalOptions, resolveContext } from '../context.js';
import { printJson } from '../output.js';

export function projectCommand(program: Command): void {
  const project = program
    .command('project')
    .description('the current project (remembered like a kube context)');
  project
    .command('use')
    .argument('<name>', 'project name')
    .description('make NAME the current project for later commands')
    .action((name: string, _opts, cmd: Command) => {
      const { output } = cmd.optsWithGlobals<GlobalOptions>();
      writeConfig({ ...readConfig(), project: checkProject(name) });
      if (output === 'json') printJson({ project: name, config: configPath() });
      else process.stdout.write(`current project: ${name} (saved in ${configPath()})\n`);
    });
  project
    .command('current')
    .description('print the current project')
    .action((_opts, cmd: Command) => {
      const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
      if (ctx.json) printJson({ project: ctx.project, natsUrl: ctx.natsUrl });
      else process.stdout.write(`${ctx.project}\n`);
    });
}
