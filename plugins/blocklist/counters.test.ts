import { describe, expect, it } from 'vitest';
import { createSecurityCounters } from './hooks.js';
import type { ActiveRule } from './matcher.js';
import type { RollupRow } from './service.js';

const rule = (id: number): ActiveRule => ({ id, type: 'ip', action: 'block', value: `192.0.2.${id}`, severity: 'medium', origin: 'manual', policyId: 7, policyName: 'p', mode: 'enforce', expiresAt: Infinity });

function counters(maxKeys = 1000) {
  const rows: RollupRow[] = [];
  const lines: Array<{ event: string; data: Record<string, unknown> }> = [];
  const c = createSecurityCounters({ log: (event, _message, data) => lines.push({ event, data }), write: (r) => rows.push(...r), maxKeys });
  return { c, rows, lines };
}

describe('security event counters', () => {
  it('turns many events into one row per rule, address and minute, and one log line per rule', () => {
    const { c, rows, lines } = counters();
    for (let i = 0; i < 10_000; i++) c.record('blocked', rule(1), i % 2 ? '198.51.100.1' : '198.51.100.2');
    c.record('rate_limited', null, '198.51.100.3');
    expect(c.drain()).toBeLessThanOrEqual(6); // a minute boundary may split each key in two
    expect(rows.filter((r) => r.kind === 'blocked').reduce((n, r) => n + r.count, 0)).toBe(10_000);
    expect(rows.find((r) => r.kind === 'rate_limited')).toMatchObject({ ruleId: null, address: '198.51.100.3', count: 1 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ event: 'blocklist.blocked', data: { ruleId: 1, count: 10_000, addresses: 2 } });
    expect(c.drain()).toBe(0);
  });

  it('keeps counting past its key budget without attributing addresses, and caps log lines per interval', () => {
    const { c, rows, lines } = counters(100);
    for (let i = 0; i < 5000; i++) c.record('blocked', rule(1 + (i % 200)), `2001:db8::${i.toString(16)}`);
    c.drain();
    expect(rows.length).toBeLessThanOrEqual(2 * (100 + 200));
    expect(rows.reduce((n, r) => n + r.count, 0)).toBe(5000);
    expect(rows.some((r) => r.address === null)).toBe(true);
    expect(lines.filter((l) => l.event === 'blocklist.blocked')).toHaveLength(50);
    expect(lines.find((l) => l.event === 'blocklist.matched')).toMatchObject({ data: { rules: 150 } });
  });
});
