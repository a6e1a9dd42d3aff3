import { createLogger, type Versioned } from '@computepods/bus';
import { RulesDeclared } from '@computepods/protocol';
import { describe, expect, it, vi } from 'vitest';
import { planText } from './declaration.js';
import { plannedWith, validDeclarations } from './restore-state.js';

const logger = createLogger('restore-declarations-test');

/** A declaration as a chef stores it: the JSON of the schema's value. */
function stored(chef: string, rules: readonly Record<string, unknown>[]) {
  return JSON.parse(JSON.stringify(RulesDeclared.parse({ chef, pod: 'pod-a', rules }))) as unknown;
}

const srv = (id: string) => ({ name: 'chef', id });
const cc = [{ id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'], command: 'cc' }];
const ld = [{ id: 'ld', inputs: ['obj/{stem}.o'], outputs: ['bin/{stem}'], command: 'ld' }];

describe('validDeclarations', () => {
  it('gives what the rules bucket parsed with zod gives, with or without a snapshot', () => {
    const bucket = new Map<string, Versioned<unknown>>([
      ['c', { value: stored('c', cc), revision: 3 }],
      ['l', { value: stored('l', ld), revision: 5 }],
    ]);
    const parsed = new Map(
      [...bucket].map(([chef, { value, revision }]) => [
        chef,
        { value: RulesDeclared.parse(value), revision },
      ]),
    );
    const planned = plannedWith(parsed, []).declarations;
    expect(validDeclarations(bucket, undefined, logger)).toEqual(parsed);
    expect(validDeclarations(bucket, planned, logger)).toEqual(parsed);
    expect(plannedWith(validDeclarations(bucket, planned, logger), [])).toEqual(
      plannedWith(parsed, []),
    );
  });

  it('takes the rules of a declaration the snapshot was planned with as they stand, and parses any other', () => {
    // Missing its defaults (types, optionalInputs...): the schema fills them in when it parses.
    const raw = { chef: 'c', pod: 'pod-a', rules: cc };
    const bucket = new Map<string, Versioned<unknown>>([['c', { value: raw, revision: 1 }]]);
    const parsed = validDeclarations(bucket, undefined, logger).get('c')?.value;
    expect(parsed).toEqual(RulesDeclared.parse(raw));
    expect(parsed?.rules).not.toEqual(raw.rules);
    // Planned with exactly these rules: not parsed again (the snapshot's head vouches for them);
    // the rest (pod, types, srv) is.
    const same = validDeclarations(bucket, { c: planText(raw) }, logger).get('c')?.value;
    expect(same?.rules).toBe(raw.rules);
    expect(same).toEqual({ chef: 'c', pod: 'pod-a', types: [], rules: raw.rules });
    // Planned with others: parsed.
    const other = validDeclarations(
      bucket,
      { c: planText(RulesDeclared.parse(stored('c', ld))) },
      logger,
    );
    expect(other.get('c')?.value).toEqual(RulesDeclared.parse(raw));
  });

  it('takes the declaration of a restarted chef (another $SRV id, pod, types) without parsing its rules', () => {
    const before = RulesDeclared.parse({ ...(stored('c', cc) as object), srv: srv('one') });
    const planned = plannedWith(new Map([['c', { value: before, revision: 1 }]]), []);
    const after = {
      ...before,
      pod: 'pod-b',
      types: [{ name: 'c', extensions: ['c'] }],
      srv: srv('two'),
    };
    const bucket = new Map<string, Versioned<unknown>>([['c', { value: after, revision: 2 }]]);
    const out = validDeclarations(bucket, planned.declarations, logger).get('c')?.value;
    expect(out).toEqual(after);
    expect(out?.rules).toBe(after.rules);
    expect(plannedWith(new Map([['c', { value: after, revision: 2 }]]), [])).toEqual(planned);
    // Its other fields are still checked: an invalid $SRV id leaves it out, saying so.
    const warn = vi.spyOn(logger, 'warn');
    const bad = new Map<string, Versioned<unknown>>([
      ['c', { value: { ...after, srv: { name: 'chef', id: 'no spaces' } }, revision: 3 }],
    ]);
    expect(validDeclarations(bad, planned.declarations, logger).size).toBe(0);
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ key: 'c', bucket: 'rules' }),
      'invalid KV value ignored',
    );
    warn.mockRestore();
  });

  it('leaves out an invalid declaration the snapshot does not name, saying so', () => {
    const warn = vi.spyOn(logger, 'warn');
    const bucket = new Map<string, Versioned<unknown>>([
      ['bad', { value: { chef: 'bad', rules: 'none' }, revision: 2 }],
      ['c', { value: stored('c', cc), revision: 3 }],
    ]);
    const planned = { c: planText(RulesDeclared.parse(stored('c', cc))), bad: '{}' };
    const out = validDeclarations(bucket, planned, logger);
    expect([...out.keys()]).toEqual(['c']);
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ key: 'bad', bucket: 'rules' }),
      'invalid KV value ignored',
    );
    warn.mockRestore();
  });
});
