import { createLogger } from '@computepods/bus';
import { DependencyManager } from '@computepods/depgraph';
import type { RulesDeclared } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { compiledAlready, usableDeclaration } from './declaration.js';

type Rule = RulesDeclared['rules'][number];

// A restore checks each planned declaration's rules; those the restored graph holds compiled
// from the same patterns are not compiled again, and every other one still is.
describe('usableDeclaration at a restore', () => {
  const logger = createLogger('declaration-test');
  const cc = { id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] };
  const dm = new DependencyManager();
  dm.addRule({ ...cc, meta: { chef: 'c' } });

  it('vouches for a rule only when the graph holds its id with the same patterns', () => {
    expect(compiledAlready(dm, cc)).toBe(true);
    expect(compiledAlready(dm, { ...cc, optionalInputs: [] })).toBe(true);
    expect(compiledAlready(dm, { ...cc, outputs: ['obj/{stem}.obj'] })).toBe(false);
    expect(compiledAlready(dm, { ...cc, inputs: ['src/{stem}.c', 'a.h'] })).toBe(false);
    expect(compiledAlready(dm, { ...cc, optionalInputs: ['a.h'] })).toBe(false);
    expect(compiledAlready(dm, { ...cc, id: 'other' })).toBe(false);
  });

  it('still leaves out a rule the graph would refuse when the graph holds its id otherwise', () => {
    // The id the graph knows, with a placeholder its first input does not bind.
    const bad = { ...cc, outputs: ['obj/{name}.o'] } as Rule;
    const good = { id: 'ld', inputs: ['obj/a.o'], outputs: ['bin/a'] } as Rule;
    const decl = { chef: 'c', rules: [bad, good] } as Pick<RulesDeclared, 'chef' | 'rules'>;
    const usable = usableDeclaration('c', decl, logger, (r) => compiledAlready(dm, r));
    expect(usable?.decl?.rules.map((r) => r.id)).toEqual(['ld']);
  });
});
