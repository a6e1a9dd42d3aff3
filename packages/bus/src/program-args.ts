import { parseArgs } from 'node:util';
import type { EnvSpec } from '@computepods/protocol';
import { busEnv } from './config.js';
import { VERSION } from './version.js';

/**
 * What a service says of itself on `--help`: the services take no arguments (the environment
 * configures them, one declaration per variable: defineEnv), so their help is the variables they
 * read, with defaults and meanings, from the same declarations the READMEs' tables come from.
 */
export interface ProgramHelp {
  /** The program's name as typed: `majordomo`. */
  readonly name: string;
  /** One line: what it does. */
  readonly summary: string;
  /** Its variables by group, its own first: `{ title: 'majordomo', spec: majorDomoEnv }`. */
  readonly env: readonly { readonly title: string; readonly spec: EnvSpec }[];
  /** Where to read more, from the repository's root: `services/majordomo/README.md`. */
  readonly readme: string;
}

/**
 * The help of the service `name` (services/NAME): its own variables `own`, then the NATS and log
 * ones every service reads (busEnv), and its README.
 */
export function serviceHelp(name: string, summary: string, own: EnvSpec): ProgramHelp {
  return {
    name,
    summary,
    env: [
      { title: name, spec: own },
      { title: 'NATS and logs, every service', spec: busEnv },
    ],
    readme: `services/${name}/README.md`,
  };
}

/** What the arguments ask: run the program, or print `stdout` / `stderr` and exit with `code`. */
export type ProgramArgs =
  | { readonly run: true }
  | {
      readonly run: false;
      readonly code: number;
      readonly stdout?: string;
      readonly stderr?: string;
    };

/** Exit status of a command line the program cannot use (sysexits' EX_USAGE). */
export const USAGE_ERROR = 64;

/** The help as JSON (`--help -o json`): every variable with its group, default and meaning. */
export function helpJson(help: ProgramHelp) {
  return {
    program: help.name,
    version: VERSION,
    summary: help.summary,
    usage: [help.name, `${help.name} --help [-o json]`, `${help.name} --version [-o json]`],
    env: help.env.flatMap(({ title, spec }) =>
      Object.entries(spec).map(([variable, v]) => ({
        variable,
        group: title,
        default: v.shown ?? v.default ?? null,
        meaning: v.doc,
      })),
    ),
    readme: help.readme,
  };
}

/** The help as text: usage, then each group's variables (name, default, meaning indented). */
export function helpText(help: ProgramHelp): string {
  const pad = ' '.repeat(help.name.length);
  const lines = [
    `${help.name} ${VERSION}: ${help.summary}`,
    '',
    `Usage: ${help.name}                      start it; the environment below configures it`,
    `       ${help.name} --help [-o json]     this help (or as JSON)`,
    `       ${help.name} --version [-o json]  its version`,
    `       ${pad} (no other arguments: every setting is a variable)`,
  ];
  for (const { title, spec } of help.env) {
    lines.push('', `Environment (${title}):`);
    for (const [variable, v] of Object.entries(spec)) {
      const dflt = v.shown ?? v.default;
      lines.push(
        `  ${variable}${dflt === undefined ? '' : `  (default: ${dflt})`}`,
        `      ${v.doc}`,
      );
    }
  }
  lines.push('', `More: ${help.readme}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Reads a service's command line (`argv` without node and the script): nothing means run;
 * `--help`/`-h` and `--version`/`-V` answer (as JSON with `-o json`); anything else is refused
 * with what to do instead, never ignored.
 */
export function readProgramArgs(help: ProgramHelp, argv: readonly string[]): ProgramArgs {
  if (argv.length === 0) return { run: true };
  let values: { help?: boolean; version?: boolean; output?: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        output: { type: 'string', short: 'o' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return refuse(help, (err as Error).message);
  }
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json')
    return refuse(help, `-o must be text or json, got ${JSON.stringify(output)}`);
  const json = output === 'json';
  if (values.help) {
    const text = json ? `${JSON.stringify(helpJson(help))}\n` : helpText(help);
    return { run: false, code: 0, stdout: text };
  }
  if (values.version) {
    const text = json
      ? JSON.stringify({ program: help.name, version: VERSION })
      : `${help.name} ${VERSION}`;
    return { run: false, code: 0, stdout: `${text}\n` };
  }
  return refuse(help, '-o goes with --help or --version');
}

function refuse(help: ProgramHelp, why: string): ProgramArgs {
  return {
    run: false,
    code: USAGE_ERROR,
    stderr: `${help.name}: ${why}. It takes no arguments: the environment configures it (${help.name} --help lists the variables).\n`,
  };
}

/**
 * Answers `--help`, `--version` or a bad command line (written out, the exit status set) and
 * returns false; true when the program should run. Nothing is left pending: the process exits
 * once the answer is written.
 */
export function runsProgram(help: ProgramHelp, argv = process.argv.slice(2)): boolean {
  const args = readProgramArgs(help, argv);
  if (args.run) return true;
  if (args.stdout) process.stdout.write(args.stdout);
  if (args.stderr) process.stderr.write(args.stderr);
  process.exitCode = args.code;
  return false;
}
