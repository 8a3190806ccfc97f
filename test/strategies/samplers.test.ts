import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { createRng } from '../../src/core/rng.js';
import { upperBetaBound } from '../../strategies/stats/beta-bound.js';
import { betaTail, logGamma } from '../../strategies/stats/incomplete-beta.js';
import { PriorTail } from '../../strategies/stats/prior-tail.js';
import { sampleBeta } from '../../strategies/stats/sample-beta.js';
import { samplePriorPort } from '../../strategies/stats/sample-prior.js';

const catalog = loadNmapServices();

describe('samplers and bounds behind thompson', () => {
  test('logGamma and the Beta tail match closed forms', () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 10);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 10);
    expect(betaTail(0.5, 2, 2)).toBeCloseTo(0.5, 10);
    // I_0.3(2, 3) = 0.3483 exactly (sum of binomial terms), so the tail is 0.6517.
    expect(betaTail(0.3, 2, 3)).toBeCloseTo(0.6517, 10);
    expect(betaTail(0.2, 1, 1)).toBeCloseTo(0.8, 10);
  });

  test('Beta draws stay under the upper bound', () => {
    const rng = createRng('bound');
    for (const [a, b] of [
      [0.1, 3000],
      [2, 3000],
      [0.5, 60],
      [40, 400],
    ] as const) {
      const u = upperBetaBound(a, b, Math.log(1e6));
      expect(u).toBeGreaterThan(a / (a + b));
      let over = 0;
      for (let i = 0; i < 5000; i++) if (sampleBeta(a, b, rng) > u) over++;
      expect(over).toBe(0);
    }
  });

  test('tail classes give fewer outside ports as the bar rises, and draw only accepted ones', () => {
    const tail = PriorTail.of(catalog, 300);
    expect(tail.expected(0.001, 10, 1e-5)).toBeGreaterThan(tail.expected(0.05, 10, 1e-5));
    const top = new Set(catalog.top(300));
    const drawn = tail.draw(0.001, 10, 1e-5, 8, createRng('tail'), (p) => !top.has(p) && p !== 8080);
    expect(drawn.length).toBeLessThanOrEqual(8);
    expect(new Set(drawn).size).toBe(drawn.length);
    for (const p of drawn) expect(top.has(p) || p === 8080).toBe(false);
  });

  test('prior draws follow nmap frequencies', () => {
    const rng = createRng('prior');
    let http = 0;
    for (let i = 0; i < 4000; i++) if (samplePriorPort(catalog, rng) === 80) http++;
    expect(http / 4000).toBeCloseTo(catalog.frequency(80) / catalog.totalFrequency, 1);
  });
});
