import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { originForm } from '../../src/origin-form.js';

const target = (url: string) => originForm({ url } as IncomingMessage);

describe('originForm (RFC 9112 §3.2.2 absolute-form request targets)', () => {
  it('keeps an origin-form target as it is', () => {
    for (const url of ['/', '/system/logs?limit=5', '//double', '/a/../b']) expect(target(url)).toBe(url);
  });

  it('drops the scheme and authority of an absolute-form target, in any case, with any port or userinfo', () => {
    expect(target('http://evil.example/system/security/incidents')).toBe('/system/security/incidents');
    expect(target('HTTP://evil.example/system/logs?limit=5')).toBe('/system/logs?limit=5');
    expect(target('https://x:1/a')).toBe('/a');
    expect(target('http://user:pw@host:8080//a/./b')).toBe('//a/./b');
    expect(target('http://host')).toBe('/');
    expect(target('http://host?x=1')).toBe('/?x=1');
  });

  it('leaves what is not a URL to the router (asterisk-form, garbage)', () => {
    expect(target('*')).toBe('*');
    expect(target('nope')).toBe('nope');
  });
});
