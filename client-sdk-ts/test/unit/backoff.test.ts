import { describe, expect, it } from 'vitest';
import { backoffDelay, resolveBackoff } from '../../src/backoff.js';
import { closePolicy } from '../../src/close-codes.js';

describe('backoffDelay', () => {
  const opts = { minMs: 100, maxMs: 5000 };

  it('stays within [minMs, maxMs] for any attempt and any random value', () => {
    for (let attempt = 0; attempt < 80; attempt++) {
      for (const r of [0, 0.25, 0.5, 0.999, 1, Math.random()]) {
        const d = backoffDelay(attempt, opts, () => r);
        expect(d).toBeGreaterThanOrEqual(100);
        expect(d).toBeLessThanOrEqual(5000);
      }
    }
  });

  it('doubles its ceiling per attempt until maxMs', () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, opts, () => 1));
    expect(ceilings).toEqual([200, 400, 800, 1600, 3200, 5000, 5000]);
    const floors = [0, 3, 10].map((a) => backoffDelay(a, opts, () => 0));
    expect(floors).toEqual([100, 100, 100]);
  });

  it('spreads delays over the whole range (full jitter)', () => {
    const samples = Array.from({ length: 2000 }, () => backoffDelay(4, opts));
    const min = Math.min(...samples);
    const max = Math.max(...samples);
    expect(min).toBeLessThan(100 + 0.05 * 3100);
    expect(max).toBeGreaterThan(3200 - 0.05 * 3100);
    expect(new Set(samples).size).toBeGreaterThan(500);
  });

  it('never lets maxMs fall below minMs', () => {
    expect(resolveBackoff({ minMs: 300, maxMs: 100 })).toEqual({ minMs: 300, maxMs: 300 });
    expect(backoffDelay(5, { minMs: 300, maxMs: 100 }, () => 1)).toBe(300);
  });
});

describe('closePolicy', () => {
  it('follows the contract classes', () => {
    for (const code of [4000, 4001, 4003, 4009, 4099]) expect(closePolicy(code)).toBe('terminal');
    for (const code of [4100, 4101, 4102, 4103, 4104, 4199]) expect(closePolicy(code)).toBe('backoff');
    for (const code of [4200, 4201, 4299]) expect(closePolicy(code)).toBe('now');
    for (const code of [1000, 1001, 1006, 1011, 3008, 4300]) expect(closePolicy(code)).toBe('backoff');
  });
});
