import { describe, expect, it } from 'vitest';
import {
  defineEnv,
  envFlag,
  envList,
  envName,
  envString,
  envTable,
  envText,
  InvalidEnvError,
  loadEnv,
} from './env.js';
import { envIntType, TIMER_MS } from './env-int.js';

const spec = defineEnv({
  CP_NAME: { schema: envName(), default: 'demo', doc: 'the name' },
  CP_WAIT_MS: { schema: envIntType(TIMER_MS), default: '20', doc: 'how long | at most' },
  CP_ON: { schema: envFlag(), doc: 'on or off' },
  CP_LIST: { schema: envList(), shown: 'none', doc: 'items' },
  CP_TOKEN: { schema: envText(), secret: true, doc: 'a secret' },
});

describe('loadEnv', () => {
  it('takes each declared value, the default when unset or empty', () => {
    expect(loadEnv(spec, { CP_NAME: 'x', CP_WAIT_MS: ' ', CP_ON: '1', CP_LIST: 'a, ,b' })).toEqual({
      CP_NAME: 'x',
      CP_WAIT_MS: 20,
      CP_ON: true,
      CP_LIST: ['a', 'b'],
      CP_TOKEN: undefined,
    });
    expect(loadEnv(spec, {}).CP_ON).toBe(false);
  });

  it('refuses bad values in one error naming each variable, what it must be and what it got', () => {
    const bad = () => loadEnv(spec, { CP_NAME: 'Bad Name', CP_WAIT_MS: '1.5', CP_ON: 'yes' });
    expect(bad).toThrow(InvalidEnvError);
    expect(bad).toThrow(
      /^CP_NAME must be 1-63 characters.*; got "Bad Name"; CP_WAIT_MS must be a whole number of ms, from 1 to 2147483647; got "1.5"; CP_ON must be 1, true, 0 or false; got "yes"$/,
    );
    try {
      bad();
    } catch (err) {
      expect((err as InvalidEnvError).variables).toEqual(['CP_NAME', 'CP_WAIT_MS', 'CP_ON']);
    }
  });

  it('says a variable that must be given is not', () => {
    const needed = defineEnv({ CP_ROOT: { schema: envString(), doc: 'where' } });
    expect(() => loadEnv(needed, { CP_ROOT: '' })).toThrow(/^CP_ROOT must be set$/);
  });

  it('never echoes a secret variable', () => {
    const secret = defineEnv({
      CP_TOKEN: {
        schema: envText().refine((v) => !v || v.length >= 16, 'must be 16 characters or more'),
        secret: true,
        doc: '',
      },
    });
    expect(() => loadEnv(secret, { CP_TOKEN: 'hunter2' })).toThrow(
      /^CP_TOKEN must be 16 characters or more$/,
    );
  });
});

describe('envTable', () => {
  it('lists every variable with its default (or what stands for it) and meaning', () => {
    expect(envTable(spec)).toBe(
      [
        '| variable | default | meaning |',
        '| --- | --- | --- |',
        '| `CP_NAME` | `demo` | the name |',
        '| `CP_WAIT_MS` | `20` | how long \\| at most |',
        '| `CP_ON` | – | on or off |',
        '| `CP_LIST` | none | items |',
        '| `CP_TOKEN` | – | a secret |',
      ].join('\n'),
    );
  });
});
