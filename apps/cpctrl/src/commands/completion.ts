import type { Command } from 'commander';
import { CliError } from '../output.js';

/** Every command path and its options, for the shell to complete from. */
function tree(cmd: Command, prefix: string[] = []): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const words = [
    ...cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]),
    ...cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x)),
  ];
  out.set(prefix.join(' '), words);
  for (const sub of cmd.commands)
    for (const [k, v] of tree(sub, [...prefix, sub.name()])) out.set(k, v);
  return out;
}

export function completionCommand(program: Command): void {
  program
    .command('completion')
    .argument('[shell]', 'bash or zsh', 'bash')
    .description('print a shell completion script: eval "$(cpctrl completion bash)"')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh')
        throw new CliError('CP_BAD_REQUEST', `completion: ${JSON.stringify(shell)}: bash or zsh`);
      const cases = [...tree(program)]
        .map(([path, words]) => `    "${path}") words="${words.join(' ')}" ;;`)
        .join('\n');
      const script = `# cpctrl completion (${shell})
_cpctrl() {
  local cur path="" w
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) path="\${path:+$path }$w" ;; esac
  done
  local words=""
  case "$path" in
${cases}
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
${shell === 'zsh' ? 'autoload -U +X bashcompinit && bashcompinit\n' : ''}complete -F _cpctrl cpctrl
`;
      process.stdout.write(script);
    });
}
