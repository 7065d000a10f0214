import { describe, expect, it } from 'vitest';
import { ownValue } from '../../src/own-property.js';
import { describeFetchError } from '../../plugins/deployments/smoke-runner.js';

describe('ownValue: lookup tables answer their own keys only', () => {
  const table: Record<string, string> = { ECONNREFUSED: 'connection refused' };
  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'])('%s is not in a table that does not define it', (key) => {
    expect(ownValue(table, key)).toBeUndefined();
  });
  it('finds what the table defines, including an own __proto__ entry', () => {
    expect(ownValue(table, 'ECONNREFUSED')).toBe('connection refused');
    expect(ownValue(Object.fromEntries([['__proto__', 'own']]), '__proto__')).toBe('own');
  });
  it('a network error code the table does not know is reported as such', () => {
    expect(describeFetchError({ code: 'ECONNREFUSED' })).toBe('connection refused');
    expect(describeFetchError({ code: 'E_UNKNOWN' })).toBe('request failed (E_UNKNOWN)');
  });
});
