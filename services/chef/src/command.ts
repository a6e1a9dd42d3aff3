import { shellQuote } from '@computepods/transport';
import { hasControlChars } from './control-chars.js';
import { BuildRefusedError, CommandTemplateError } from './errors.js';

export interface CommandContext {
  readonly stem: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

/**
 * A workspace path as a command argument. Quoting keeps `$(rm -rf ~).c` one literal word, but a
 * word starting with `-` is still an option to the program: a file named `-fplugin=./x.so.c`
 * would load a compiler plugin. `./` in front makes it a file again, and is the same file (the
 * command runs in the workspace); paths with control characters are refused.
 */
export function commandPath(path: string): string {
  if (hasControlChars(path))
    throw new BuildRefusedError(
      'CP_CHEF_UNSAFE_PATH',
      `path ${JSON.stringify(path.slice(0, 300))} holds control characters; refused, nothing was run`,
    );
  return path.split('/').some((s) => s.startsWith('-')) ? `./${path}` : path;
}

/**
 * Fills a rule's command template. Every substituted value is shell-quoted, so a file named
 * `$(rm -rf ~).txt` arrives as a literal name, and every path goes through commandPath.
 * Placeholders: {stem}, {in} (all inputs), {out} (all outputs), {in0}, {in1}..., {out0},
 * {out1}...; `{{` and `}}` are literal braces. {stem} is a fragment (`out/{stem}.toc`), not a
 * path, so it is not prefixed: a rule passing it alone to a program writes `-- {stem}`.
 */
export function fillCommand(template: string, ctx: CommandContext): string {
  if (hasControlChars(ctx.stem))
    throw new BuildRefusedError(
      'CP_CHEF_UNSAFE_STEM',
      `stem ${JSON.stringify(ctx.stem.slice(0, 200))} holds control characters; refused, nothing was run`,
    );
  const quoted = (p: string) => shellQuote(commandPath(p));
  return template.replace(
    /\{\{|\}\}|\{([a-z]+)(\d*)\}/g,
    (whole, name: string | undefined, index: string) => {
      if (whole === '{{') return '{';
      if (whole === '}}') return '}';
      const list = name === 'in' ? ctx.inputs : name === 'out' ? ctx.outputs : undefined;
      if (name === 'stem' && index === '') return shellQuote(ctx.stem);
      if (list && index === '') return list.map(quoted).join(' ');
      if (list) {
        const value = list[Number(index)];
        if (value === undefined)
          throw new CommandTemplateError(whole, `the rule has only ${list.length} ${name}puts`);
        return quoted(value);
      }
      throw new CommandTemplateError(whole, 'unknown; use {stem}, {in}, {out}, {inN} or {outN}');
    },
  );
}
