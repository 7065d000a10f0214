import { describe, expect, it } from 'vitest';
import { createTraceContextFactory, formatTraceparent, parseTraceparent, parseTracestate, propagationHeaders, TRACESTATE_MAX } from './trace-context.js';

/**
 * W3C Trace Context: the header grammar of the Recommendation (Level 1) and the random-trace-id
 * flag of Level 2, with the cases of the spec and of its test suite (w3c/trace-context test/).
 */
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const valid = (flags = '01') => `00-${TRACE_ID}-${PARENT_ID}-${flags}`;

describe('traceparent', () => {
  it('parses version 00 with its sampled and random flags', () => {
    expect(parseTraceparent(valid('00'))).toEqual({ traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, randomTraceId: false });
    expect(parseTraceparent(valid('01'))).toEqual({ traceId: TRACE_ID, parentId: PARENT_ID, sampled: true, randomTraceId: false });
    expect(parseTraceparent(valid('02'))).toEqual({ traceId: TRACE_ID, parentId: PARENT_ID, sampled: false, randomTraceId: true });
    expect(parseTraceparent(valid('03'))).toEqual({ traceId: TRACE_ID, parentId: PARENT_ID, sampled: true, randomTraceId: true });
    // a bit field: unknown bits do not hide the known ones
    expect(parseTraceparent(valid('ff'))).toMatchObject({ sampled: true, randomTraceId: true });
    expect(parseTraceparent(valid('fc'))).toMatchObject({ sampled: false, randomTraceId: false });
  });

  it('ignores spaces and tabs around the value (RFC 9110 optional whitespace)', () => {
    for (const header of [` ${valid()}`, `\t${valid()}`, `${valid()} `, `${valid()}\t`, `\t ${valid()} \t`]) {
      expect(parseTraceparent(header), JSON.stringify(header)).toMatchObject({ traceId: TRACE_ID });
    }
  });

  it('reads a higher version by its first four fields, when the flags end the value or are followed by a dash', () => {
    expect(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01`)).toMatchObject({ traceId: TRACE_ID, parentId: PARENT_ID, sampled: true });
    expect(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-03-what-the-future-holds`)).toMatchObject({ sampled: true, randomTraceId: true });
    expect(parseTraceparent(`01-${TRACE_ID}-${PARENT_ID}-00-`)).toMatchObject({ traceId: TRACE_ID });
  });

  it.each([
    ['version ff', `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ['version ff with more fields', `ff-${TRACE_ID}-${PARENT_ID}-01-x`],
    ['an uppercase version', `0A-${TRACE_ID}-${PARENT_ID}-01`],
    ['a non-hex version', `.0-${TRACE_ID}-${PARENT_ID}-01`],
    ['a three-digit version', `000-${TRACE_ID}-${PARENT_ID}-01`],
    ['a one-digit version', `0-${TRACE_ID}-${PARENT_ID}-01`],
    ['version 00 with an extra field', `00-${TRACE_ID}-${PARENT_ID}-01-extra`],
    ['version 00 one character too long', `${valid()}0`],
    ['a future version with characters after the flags', `cc-${TRACE_ID}-${PARENT_ID}-01x`],
    ['a future version shorter than 55 characters', `cc-${TRACE_ID}-${PARENT_ID}-1`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
    ['an all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['an uppercase trace id', `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ['an uppercase parent id', `00-${TRACE_ID}-${PARENT_ID.toUpperCase()}-01`],
    ['uppercase flags', `00-${TRACE_ID}-${PARENT_ID}-0A`],
    ['a non-hex trace id', `00-${TRACE_ID.slice(0, 31)}.-${PARENT_ID}-01`],
    ['a non-hex parent id', `00-${TRACE_ID}-${PARENT_ID.slice(0, 15)}.-01`],
    ['non-hex flags', `00-${TRACE_ID}-${PARENT_ID}-.1`],
    ['a short trace id', `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
    ['a long trace id', `00-${TRACE_ID}0-${PARENT_ID}-01`],
    ['a short parent id', `00-${TRACE_ID}-${PARENT_ID.slice(1)}-01`],
    ['a long parent id', `00-${TRACE_ID}-${PARENT_ID}0-01`],
    ['short flags', `00-${TRACE_ID}-${PARENT_ID}-1`],
    ['long flags', `00-${TRACE_ID}-${PARENT_ID}-011`],
    ['other separators', `00_${TRACE_ID}_${PARENT_ID}_01`],
    ['two fields joined', `${valid()}, ${valid()}`],
    ['whitespace inside', `00- ${TRACE_ID}-${PARENT_ID}-01`],
    ['a newline around it', `${valid()}\n`],
    ['nothing', ''],
  ])('refuses %s', (_label, header) => {
    expect(parseTraceparent(header)).toBeNull();
  });

  it('formats version 00 with the sampled and random flags only', () => {
    const context = { traceId: TRACE_ID, spanId: PARENT_ID };
    expect(formatTraceparent({ ...context, sampled: false, randomTraceId: false })).toBe(valid('00'));
    expect(formatTraceparent({ ...context, sampled: true, randomTraceId: false })).toBe(valid('01'));
    expect(formatTraceparent({ ...context, sampled: false, randomTraceId: true })).toBe(valid('02'));
    expect(formatTraceparent({ ...context, sampled: true, randomTraceId: true })).toBe(valid('03'));
  });
});

describe('tracestate', () => {
  it('accepts the spec examples and passes them on unchanged', () => {
    expect(parseTracestate('rojo=00f067aa0ba902b7')).toBe('rojo=00f067aa0ba902b7');
    expect(parseTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE')).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
  });

  it('accepts every allowed key and value character', () => {
    const key = 'abcdefghijklmnopqrstuvwxyz0123456789_-*/';
    const tenantKey = `${key}@a-z0-9_-*/`;
    const value = Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i))
      .filter((c) => c !== ',' && c !== '=')
      .join('');
    expect(parseTracestate(`${key}=${value}`)).toBe(`${key}=${value}`);
    expect(parseTracestate(`${tenantKey}=${value}`)).toBe(`${tenantKey}=${value}`);
  });

  it('accepts multi-tenant keys tenant@system within their lengths (tenant 1-241, system 1-14)', () => {
    for (const key of ['fw529a3039@dt', '0tenant@vendor', `${'t'.repeat(241)}@${'v'.repeat(14)}`, 't@v', `1@${'v'.repeat(14)}`]) {
      expect(parseTracestate(`${key}=1,foo=2`), key).toBe(`${key}=1,foo=2`);
    }
  });

  it.each([
    ['a tenant of 242 characters', `${'t'.repeat(242)}@v`],
    ['a system of 15 characters', `t@${'v'.repeat(15)}`],
    ['a system starting with a digit', 'tenant@1vendor'],
    ['an empty tenant', '@vendor'],
    ['an empty system', 'tenant@'],
    ['two at signs', 'foo@@bar'],
    ['three parts', 'foo@bar@baz'],
    ['an uppercase letter', 'Foo'],
    ['a simple key starting with a digit', '1foo'],
    ['a dot', 'foo.bar'],
    ['a 257-character key', 'z'.repeat(257)],
    ['a space before =', 'foo '],
  ])('refuses %s in a key, and with it the whole tracestate', (_label, key) => {
    expect(parseTracestate(`${key}=1,bar=2`)).toBeNull();
  });

  it('accepts a simple key of 256 characters and a value of 256', () => {
    expect(parseTracestate(`${'z'.repeat(256)}=1`)).toBe(`${'z'.repeat(256)}=1`);
    expect(parseTracestate(`foo=${'v'.repeat(256)}`)).toBe(`foo=${'v'.repeat(256)}`);
  });

  it.each([
    ['an empty value', 'foo=,bar=3'],
    ['a second =', 'foo=bar=baz'],
    ['a value of 257 characters', `foo=${'v'.repeat(257)}`],
    ['a tab inside a value', 'foo=a\tb'],
    ['a non-ASCII character', 'foo=café'],
    ['a control character', 'foo=a\u0007'],
    ['a member without =', 'foo,bar=2'],
    ['a member that is only =', '=,bar=2'],
  ])('refuses %s, and with it the whole tracestate', (_label, header) => {
    expect(parseTracestate(header)).toBeNull();
  });

  it('keeps a value\'s leading spaces and drops the optional whitespace around members', () => {
    expect(parseTracestate('foo= 1')).toBe('foo= 1');
    expect(parseTracestate('foo=1 \t , \t bar=2, \t baz=3')).toBe('foo=1,bar=2,baz=3');
    expect(parseTracestate('foo=1\t \t,\t \tbar=2,\t \tbaz=3')).toBe('foo=1,bar=2,baz=3');
    expect(parseTracestate('\t foo=1 \t')).toBe('foo=1');
    expect(parseTracestate('foo=1 ')).toBe('foo=1');
  });

  it('skips empty and whitespace-only members; nothing left is no tracestate', () => {
    expect(parseTracestate('foo=1,,bar=2')).toBe('foo=1,bar=2');
    expect(parseTracestate(', \t ,foo=1, ,')).toBe('foo=1');
    expect(parseTracestate('')).toBeNull();
    expect(parseTracestate(' , \t, ')).toBeNull();
    expect(parseTracestate(undefined)).toBeNull();
  });

  it('combines several fields in order (RFC 9110 §5.3)', () => {
    expect(parseTracestate(['foo=1,bar=2', 'rojo=1,congo=2', 'baz=3'])).toBe('foo=1,bar=2,rojo=1,congo=2,baz=3');
    expect(parseTracestate(['foo=1', ''])).toBe('foo=1');
    expect(parseTracestate(['', 'foo=1'])).toBe('foo=1');
  });

  it('discards the whole tracestate when a key appears twice, in one field or across fields', () => {
    expect(parseTracestate('foo=1,foo=1')).toBeNull();
    expect(parseTracestate('foo=1,foo=2')).toBeNull();
    expect(parseTracestate(['foo=1', 'foo=2'])).toBeNull();
    expect(parseTracestate('t@v=1,t@w=2')).toBe('t@v=1,t@w=2');
  });

  it('accepts 32 members and discards 33 whole', () => {
    const members = (n: number) => Array.from({ length: n }, (_, i) => `bar${String(i + 1).padStart(2, '0')}=${i}`);
    expect(parseTracestate(members(32).join(','))).toBe(members(32).join(','));
    expect(parseTracestate(members(33).join(','))).toBeNull();
    // empty members do not count
    expect(parseTracestate(members(32).join(',,'))).toBe(members(32).join(','));
  });

  it('cuts a tracestate over 512 characters by whole members: those over 128 characters first, then from the right', () => {
    const long = (key: string) => `${key}=${'L'.repeat(200)}`; // 205 characters
    const short = (i: number) => `s${String(i).padStart(2, '0')}=${'x'.repeat(56)}`; // 60 characters
    const header = [short(1), long('big1'), short(2), short(3), long('big2'), short(4), short(5)].join(',');
    expect(header.length).toBe(716);
    // big2 goes first (the right-most long member, not the last one), and then it fits: 510.
    expect(parseTracestate(header)).toBe([short(1), long('big1'), short(2), short(3), short(4), short(5)].join(','));
    // with a third long member, both right-most long ones go
    const three = [long('big0'), ...[1, 2, 3].map(short), long('big1'), long('big2'), short(4)].join(',');
    expect(parseTracestate(three)).toBe([long('big0'), ...[1, 2, 3].map(short), short(4)].join(','));

    const shorts = Array.from({ length: 10 }, (_, i) => short(i)); // 609 characters
    const cut = parseTracestate(shorts.join(','))!;
    expect(cut).toBe(shorts.slice(0, 8).join(','));
    expect(cut.length).toBeLessThanOrEqual(TRACESTATE_MAX);

    const exactly = [short(1), short(2), short(3), short(4), short(5), short(6), short(7), `${'k'.repeat(80)}=${'v'.repeat(4)}`].join(',');
    expect(exactly.length).toBe(TRACESTATE_MAX);
    expect(parseTracestate(exactly)).toBe(exactly);
  });
});

describe('the trace context of a request', () => {
  const contexts = createTraceContextFactory(1);

  it('continues the caller\'s trace with its tracestate and random flag', () => {
    const context = contexts.fromHeaders(valid('02'), 'congo=t61rcWkgMzE , rojo=1');
    expect(context).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID, sampled: false, randomTraceId: true, traceState: 'congo=t61rcWkgMzE,rojo=1' });
    const child = contexts.child(context);
    expect(propagationHeaders(child)).toEqual({ traceparent: `00-${TRACE_ID}-${child.spanId}-02`, tracestate: 'congo=t61rcWkgMzE,rojo=1' });
  });

  it('does not read tracestate when traceparent is invalid (a new trace has none)', () => {
    const context = contexts.fromHeaders(`ff-${TRACE_ID}-${PARENT_ID}-01`, 'congo=1');
    expect(context).toMatchObject({ parentSpanId: null, traceState: null, randomTraceId: true });
    expect(context.traceId).not.toBe(TRACE_ID);
  });

  it('keeps the traceparent when only the tracestate is invalid', () => {
    expect(contexts.fromHeaders(valid('01'), 'foo=1,foo=2')).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID, traceState: null });
  });
});
