import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineEnv, envTable, envText } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { ENV_DOCS, ROOT, tableIn, withTable } from '../../scripts/env-docs.js';

describe('the READMEs list the environment variables the programs declare', () => {
  it.each(ENV_DOCS.map((d) => [`${d.readme} (${d.name})`, d] as const))(
    '%s: its table is what the declarations give (run `pnpm env-docs` after changing them)',
    (_label, { readme, name, spec }) => {
      const text = readFileSync(join(ROOT, readme), 'utf8');
      expect(tableIn(text, name), `${readme} has no env-docs ${name} markers`).toBeDefined();
      expect(tableIn(text, name)).toBe(envTable(spec));
    },
  );

  it('no service, nor the bus or logstream, reads the environment outside its config.ts', () => {
    // Not configuration: the environment a child process is given.
    const passedOn = new Set(['services/chef/src/projection.ts']);
    const dirs = readdirSync(join(ROOT, 'services'))
      .map((d) => `services/${d}/src`)
      .concat('packages/bus/src', 'packages/logstream/src');
    const readers = dirs.flatMap((dir) =>
      readdirSync(join(ROOT, dir))
        // Test support (test-*.ts, as tests are) hands a child service the test's environment.
        .filter(
          (f) =>
            f.endsWith('.ts') &&
            !f.endsWith('.test.ts') &&
            !f.startsWith('test-') &&
            f !== 'config.ts',
        )
        .map((f) => `${dir}/${f}`)
        .filter(
          (f) => !passedOn.has(f) && /process\.env\b/.test(readFileSync(join(ROOT, f), 'utf8')),
        ),
    );
    expect(readers, 'declare the variable in config.ts and read it from there').toEqual([]);
  });

  it('pnpm env-docs puts a drifted table back, and says where markers are missing', () => {
    const spec = defineEnv({ CP_X: { schema: envText(), doc: 'x' } });
    const drifted = [
      'intro',
      '<!-- env-docs demo: written by `pnpm env-docs` -->',
      '| variable | default | meaning |',
      '| `CP_OLD` | 1 | gone |',
      '<!-- /env-docs demo -->',
      'outro',
    ].join('\n');
    expect(tableIn(drifted, 'demo')).not.toBe(envTable(spec));
    const written = withTable(drifted, 'demo', spec);
    expect(tableIn(written, 'demo')).toBe(envTable(spec));
    expect(written.startsWith('intro\n<!-- env-docs demo:')).toBe(true);
    expect(written.endsWith('<!-- /env-docs demo -->\noutro')).toBe(true);
    expect(() => withTable('no markers', 'demo', spec)).toThrow(/no <!-- env-docs demo/);
  });
});
