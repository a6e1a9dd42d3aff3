import { defineEnv, envString } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import {
  helpJson,
  helpText,
  type ProgramHelp,
  readProgramArgs,
  USAGE_ERROR,
} from './program-args.js';
import { VERSION } from './version.js';

const help: ProgramHelp = {
  name: 'demo-svc',
  summary: 'does one thing',
  env: [
    {
      title: 'demo-svc',
      spec: defineEnv({
        CP_A: { schema: envString(), default: 'a', doc: 'the first' },
        CP_B: { schema: envString(), shown: 'the host name', doc: 'the second' },
        CP_C: { schema: envString(), doc: 'the third, no default' },
      }),
    },
    { title: 'shared', spec: defineEnv({ NATS_URL: { schema: envString(), doc: 'servers' } }) },
  ],
  readme: 'services/demo/README.md',
};

describe('a service command line', () => {
  it('runs with no arguments', () => {
    expect(readProgramArgs(help, [])).toEqual({ run: true });
  });

  it('answers --help and -h with every variable, its default and meaning, and exits 0', () => {
    for (const flag of ['--help', '-h']) {
      const got = readProgramArgs(help, [flag]);
      expect(got).toEqual({ run: false, code: 0, stdout: helpText(help) });
    }
    const text = helpText(help);
    expect(text).toContain(`demo-svc ${VERSION}: does one thing`);
    expect(text).toMatch(/CP_A {2}\(default: a\)\n {6}the first/);
    expect(text).toMatch(/CP_B {2}\(default: the host name\)\n {6}the second/);
    expect(text).toMatch(/CP_C\n {6}the third, no default/);
    expect(text).toContain('Environment (shared):\n  NATS_URL');
    expect(text).toContain('More: services/demo/README.md');
  });

  it('answers --help -o json with one JSON object', () => {
    const got = readProgramArgs(help, ['--help', '-o', 'json']);
    if (got.run) throw new Error('should not run');
    expect(got.code).toBe(0);
    const json = JSON.parse(got.stdout ?? '');
    expect(json).toEqual(helpJson(help));
    expect(json.env).toEqual([
      { variable: 'CP_A', group: 'demo-svc', default: 'a', meaning: 'the first' },
      { variable: 'CP_B', group: 'demo-svc', default: 'the host name', meaning: 'the second' },
      { variable: 'CP_C', group: 'demo-svc', default: null, meaning: 'the third, no default' },
      { variable: 'NATS_URL', group: 'shared', default: null, meaning: 'servers' },
    ]);
  });

  it('answers --version and -V, as text or JSON', () => {
    expect(readProgramArgs(help, ['--version'])).toEqual({
      run: false,
      code: 0,
      stdout: `demo-svc ${VERSION}\n`,
    });
    expect(readProgramArgs(help, ['-V', '-o', 'json'])).toEqual({
      run: false,
      code: 0,
      stdout: `${JSON.stringify({ program: 'demo-svc', version: VERSION })}\n`,
    });
  });

  it('refuses anything else with exit 64, naming what was wrong and where the settings are', () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /Unknown option '--bogus'/],
      [['start'], /Unexpected argument 'start'/],
      [['--help', '-o', 'yaml'], /-o must be text or json, got "yaml"/],
      [['-o', 'json'], /-o goes with --help or --version/],
    ];
    for (const [argv, why] of cases) {
      const got = readProgramArgs(help, argv);
      if (got.run) throw new Error(`${argv.join(' ')} should not run`);
      expect(got.code).toBe(USAGE_ERROR);
      expect(got.stdout).toBeUndefined();
      expect(got.stderr).toMatch(why);
      expect(got.stderr).toContain(
        'the environment configures it (demo-svc --help lists the variables)',
      );
    }
  });
});
