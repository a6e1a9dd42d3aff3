import { shellQuote } from '@computepods/transport';

export interface CommandContext {
  readonly stem: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

/**
 * Fills a rule's command template. Every substituted value is shell-quoted, so a file named
 * `$(rm -rf ~).txt` arrives as a literal name. Placeholders: {stem}, {in} (all inputs),
 * {out} (all outputs), {in0}, {in1}..., {out0}, {out1}...; `{{` and `}}` are literal braces.
 */
export function fillCommand(template: string, ctx: CommandContext): string {
  return template.replace(
    /\{\{|\}\}|\{([a-z]+)(\d*)\}/g,
    (whole, name: string | undefined, index: string) => {
      if (whole === '{{') return '{';
      if (whole === '}}') return '}';
      const list = name === 'in' ? ctx.inputs : name === 'out' ? ctx.outputs : undefined;
      if (name === 'stem' && index === '') return shellQuote(ctx.stem);
      if (list && index === '') return list.map(shellQuote).join(' ');
      if (list) {
        const value = list[Number(index)];
        if (value === undefined)
          throw new Error(
            `command placeholder ${whole}: the rule has only ${list.length} ${name}puts`,
          );
        return shellQuote(value);
      }
      throw new Error(
        `unknown command placeholder ${whole}: use {stem}, {in}, {out}, {inN} or {outN}`,
      );
    },
  );
}
