/**
 * The environment-variable tables of the READMEs, written from the programs' declarations
 * (defineEnv): `pnpm env-docs` rewrites each table between its markers; test/src/env-docs.test.ts
 * fails when a README's table differs from what its declarations give.
 *
 *   <!-- env-docs chef: written by `pnpm env-docs` from the declarations; do not edit -->
 *   | variable | default | meaning |
 *   ...
 *   <!-- /env-docs chef -->
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busEnv } from '../packages/bus/src/config.js';
import { type EnvSpec, envTable } from '../packages/protocol/src/env.js';
import { chefEnv } from '../services/chef/src/config.js';
import { fsWatcherEnv } from '../services/fswatcher/src/config.js';
import { majorDomoEnv } from '../services/majordomo/src/config.js';
import { pilotWorkerEnv, runnerEnv } from '../services/runner/src/config.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Each documented program: the README its table is in, the table's name, its declarations. */
export const ENV_DOCS: readonly { readme: string; name: string; spec: EnvSpec }[] = [
  { readme: 'packages/bus/README.md', name: 'bus', spec: busEnv },
  { readme: 'services/chef/README.md', name: 'chef', spec: chefEnv },
  { readme: 'services/fswatcher/README.md', name: 'fswatcher', spec: fsWatcherEnv },
  { readme: 'services/majordomo/README.md', name: 'majordomo', spec: majorDomoEnv },
  { readme: 'services/runner/README.md', name: 'runner', spec: runnerEnv },
  { readme: 'services/runner/README.md', name: 'pilot-worker', spec: pilotWorkerEnv },
];

const section = (name: string) =>
  new RegExp(`(<!-- env-docs ${name}:[^\\n]*-->\\n)[\\s\\S]*?(\\n<!-- /env-docs ${name} -->)`);

/** The table between `name`'s markers in `text`, or undefined without markers. */
export function tableIn(text: string, name: string): string | undefined {
  const m = section(name).exec(text);
  return m ? m[0].slice(m[1]?.length ?? 0, m[0].length - (m[2]?.length ?? 0)) : undefined;
}

/** `text` with `name`'s table rewritten from `spec`; throws when the markers are missing. */
export function withTable(text: string, name: string, spec: EnvSpec): string {
  if (tableIn(text, name) === undefined)
    throw new Error(
      `no <!-- env-docs ${name}: ... --> ... <!-- /env-docs ${name} --> markers; add them where the table goes`,
    );
  return text.replace(section(name), (_all, open: string, close: string) =>
    [open, envTable(spec), close].join(''),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const { readme, name, spec } of ENV_DOCS) {
    const file = join(ROOT, readme);
    const before = readFileSync(file, 'utf8');
    const after = withTable(before, name, spec);
    if (after !== before) writeFileSync(file, after);
    console.log(`${readme} (${name}): ${after === before ? 'unchanged' : 'written'}`);
  }
}
