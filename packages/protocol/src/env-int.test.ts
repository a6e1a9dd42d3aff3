import { describe, expect, it } from 'vitest';
import { envInt } from './env-int.js';

describe('envInt', () => {
  it('takes the value when set, the fallback when unset or empty', () => {
    expect(envInt({ N: '42' }, 'N', 7)).toBe(42);
    expect(envInt({}, 'N', 7)).toBe(7);
    expect(envInt({ N: '' }, 'N', 7)).toBe(7);
    expect(envInt({ N: '0' }, 'N', 7, { min: 0 })).toBe(0);
  });

  it('names the variable and what it must be for anything else', () => {
    for (const bad of ['-1', '1.5', '1e3', ' 5', 'soon', '0x10', '0'])
      expect(() => envInt({ N: bad }, 'N', 7, { unit: 'ms' })).toThrow(
        `N must be a whole number of ms, 1 or more; got ${JSON.stringify(bad)}`,
      );
    expect(() => envInt({ N: '2147483648' }, 'N', 7, { max: 2 ** 31 - 1 })).toThrow(
      /N must be a whole number, from 1 to 2147483647; got "2147483648"/,
    );
  });
});
