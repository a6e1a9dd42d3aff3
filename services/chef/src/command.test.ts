import { describe, expect, it } from 'vitest';
import { commandPath, fillCommand } from './command.js';
import { CommandTemplateError } from './errors.js';

describe('command paths', () => {
  it('prefixes ./ to a path a program would read as an option', () => {
    expect(commandPath('-fplugin=./x.so.c')).toBe('./-fplugin=./x.so.c');
    expect(commandPath('src/-x.c')).toBe('./src/-x.c');
    expect(commandPath('src/a-b.c')).toBe('src/a-b.c');
  });

  it('fills every path as one quoted word, a file and never an option', () => {
    const cmd = fillCommand('cc -c -o {out0} {in0} && cat {in} > {out1}', {
      stem: '-fplugin=./x.so',
      inputs: ['-fplugin=./x.so.c', "it's $(rm -rf ~).h"],
      outputs: ['-fplugin=./x.so.o', 'ok.txt'],
    });
    expect(cmd).toBe(
      "cc -c -o './-fplugin=./x.so.o' './-fplugin=./x.so.c' && cat './-fplugin=./x.so.c' 'it'\\''s $(rm -rf ~).h' > 'ok.txt'",
    );
  });

  it('refuses paths and stems holding control characters', () => {
    expect(() => commandPath('a\nb')).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_UNSAFE_PATH' }),
    );
    expect(() => fillCommand('cat {in}', { stem: 's', inputs: ['x\ry'], outputs: [] })).toThrow(
      /control characters/,
    );
    expect(() => fillCommand('echo {stem}', { stem: 'a\u001bb', inputs: [], outputs: [] })).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_UNSAFE_STEM' }),
    );
  });

  it('refuses a placeholder it cannot fill, naming it, as a fault of the definition', () => {
    const ctx = { stem: 's', inputs: ['a.c'], outputs: ['a.o'] };
    for (const [template, detail] of [
      ['cc {in1}', /\{in1\}: the rule has only 1 inputs/],
      ['cc {src}', /\{src\}: unknown/],
    ] as const) {
      expect(() => fillCommand(template, ctx)).toThrow(CommandTemplateError);
      expect(() => fillCommand(template, ctx)).toThrow(detail);
      expect(() => fillCommand(template, ctx)).toThrow(
        expect.objectContaining({ code: 'CP_CHEF_DEFINITION', retryable: false }),
      );
    }
  });
});
