import { describe, expect, it } from 'vitest';
import { boundHeapGrowth, heapGrowthBound } from '../../src/heap-growth.js';

describe('heap growth bound', () => {
  it('holds the lowest percentage asked for while any holder remains, then gives V8 its heuristic back', () => {
    expect(heapGrowthBound()).toBe(0);
    const a = boundHeapGrowth(100);
    expect(heapGrowthBound()).toBe(100);
    const b = boundHeapGrowth(40);
    expect(heapGrowthBound()).toBe(40);
    b();
    expect(heapGrowthBound()).toBe(100);
    b(); // released twice: no effect on the other holder
    expect(heapGrowthBound()).toBe(100);
    a();
    expect(heapGrowthBound()).toBe(0);
    const none = boundHeapGrowth(0);
    expect(heapGrowthBound()).toBe(0);
    none();
  });
});
