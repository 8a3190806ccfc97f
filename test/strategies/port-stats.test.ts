import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { createRng } from '../../src/core/rng.js';
import { PortStats, betaMean, emptyPortStatsState, mergePortStatsStates, portStatsDefaults } from '../../strategies/stats/port-stats.js';
import { sampleBeta } from '../../strategies/stats/sample-beta.js';
import type { HostResult } from '../../strategies/types.js';

const catalog = loadNmapServices();

function result(over: Partial<HostResult> & Pick<HostResult, 'probed' | 'open'>): HostResult {
  return { ip: '198.18.0.1', tags: [], prefix: '198.18.0.0/24', epoch: 0, previousOpen: [], sweep: false, ...over };
}

describe('PortStats', () => {
  test('mean is exactly betaMean(posterior) (the allocation-free path keeps every bit)', () => {
    const port = fc.constantFrom(22, 80, 443, 3389, 8443, 31337, 50000);
    const tag = fc.constantFrom('a', 'b', 'c', 'never-seen');
    const hostResult = fc.record({
      tags: fc.array(tag, { maxLength: 3 }),
      probed: fc.uniqueArray(port, { maxLength: 7 }),
      openShare: fc.double({ min: 0, max: 1, noNaN: true }),
      epoch: fc.integer({ min: 0, max: 4 }),
      sweep: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(hostResult, { maxLength: 40 }),
        fc.array(tag, { maxLength: 3 }),
        fc.double({ min: 0.5, max: 1, noNaN: true }),
        (results, tags, discount) => {
          const stats = new PortStats(catalog, { ...portStatsDefaults, discount });
          for (const r of [...results].sort((x, y) => x.epoch - y.epoch)) {
            const open = r.probed.slice(0, Math.round(r.openShare * r.probed.length));
            stats.observe(result({ tags: r.tags, probed: r.probed, open, epoch: r.epoch, sweep: r.sweep }));
          }
          for (const p of [22, 80, 443, 3389, 8443, 31337, 50000, 1]) {
            expect(Object.is(stats.mean(tags, p), betaMean(stats.posterior(tags, p)))).toBe(true);
          }
        },
      ),
    );
  });

  test('a port never observed has the nmap prior as its scope estimate', () => {
    const stats = new PortStats(catalog);
    expect(stats.mean([], 80)).toBeCloseTo(catalog.frequency(80), 10);
    expect(stats.mean([], 31337)).toBeCloseTo(Math.max(catalog.frequency(31337), portStatsDefaults.priorFloor), 10);
  });

  test('a tag with no data ranks ports like the whole scope', () => {
    const stats = new PortStats(catalog);
    for (let i = 0; i < 30; i++) stats.observe(result({ tags: ['web'], probed: [80, 443, 8443, 22], open: [8443, 22] }));
    const ports = stats.candidates(['new-tag'], 50);
    const byScope = [...ports].sort((a, b) => stats.mean([], b) - stats.mean([], a) || a - b);
    const byNewTag = [...ports].sort((a, b) => stats.mean(['new-tag'], b) - stats.mean(['new-tag'], a) || a - b);
    expect(byNewTag).toEqual(byScope);
    expect(stats.mean(['new-tag'], 8443)).toBeCloseTo(stats.mean([], 8443), 12);
    expect(byScope.slice(0, 2).sort()).toEqual([22, 8443]);
  });

  test('a tag departs from the scope when its own data disagrees', () => {
    const stats = new PortStats(catalog);
    for (let i = 0; i < 40; i++) stats.observe(result({ tags: ['a'], probed: [22, 2222], open: [22] }));
    for (let i = 0; i < 20; i++) stats.observe(result({ tags: ['b'], probed: [22, 2222], open: [2222] }));
    expect(stats.mean(['b'], 2222)).toBeGreaterThan(stats.mean(['b'], 22));
    expect(stats.mean(['a'], 22)).toBeGreaterThan(stats.mean(['a'], 2222));
    expect(stats.mean([], 22)).toBeGreaterThan(stats.mean([], 2222));
  });

  test('discounting unlearns a service that closed, and faster than without discounting', () => {
    const run = (discount: number) => {
      const stats = new PortStats(catalog, { ...portStatsDefaults, discount });
      for (let e = 0; e < 5; e++) for (let i = 0; i < 20; i++) stats.observe(result({ epoch: e, probed: [9999, 22], open: [9999, 22] }));
      for (let e = 5; e < 10; e++) for (let i = 0; i < 20; i++) stats.observe(result({ epoch: e, probed: [9999, 22], open: [22] }));
      return stats.mean([], 9999);
    };
    const discounted = run(0.6);
    const forever = run(1);
    expect(discounted).toBeLessThan(0.1);
    expect(forever).toBeGreaterThan(0.4);
  });

  test('a sweep counts one trial for every port without storing them all', () => {
    const stats = new PortStats(catalog);
    stats.observe(result({ probed: [], open: [4444], sweep: true }));
    expect(stats.counts(null, 4444)).toEqual({ successes: 1, trials: 1 });
    expect(stats.counts(null, 5555)).toEqual({ successes: 0, trials: 1 });
    expect(stats.toJSON().scope.ports).toHaveLength(1);
  });

  test('candidates are the ports seen open plus the prior top ports, not the whole universe', () => {
    const stats = new PortStats(catalog);
    stats.observe(result({ tags: ['t'], probed: [31337, 1, 2], open: [31337] }));
    const c = stats.candidates(['t'], 100);
    expect(c).toContain(31337);
    expect(c).toContain(80);
    expect(c.length).toBeLessThanOrEqual(101);
  });

  test('the state survives JSON serialisation exactly', () => {
    const stats = new PortStats(catalog);
    for (let e = 0; e < 3; e++)
      stats.observe(result({ epoch: e, tags: ['x', 'y'], probed: [22, 80, 8080], open: e === 1 ? [80] : [22, 8080] }));
    const json = JSON.parse(JSON.stringify(stats.toJSON()));
    const restored = new PortStats(catalog, portStatsDefaults, json);
    expect(restored.toJSON()).toEqual(stats.toJSON());
    stats.observe(result({ epoch: 4, tags: ['x'], probed: [22, 443], open: [443] }));
    restored.observe(result({ epoch: 4, tags: ['x'], probed: [22, 443], open: [443] }));
    expect(restored.toJSON()).toEqual(stats.toJSON());
    expect(restored.mean(['x'], 443)).toBe(stats.mean(['x'], 443));
  });

  test('merging states learned on disjoint results equals learning on all of them', () => {
    // Three hosts per group and epoch, so that no failure-only entry falls under the pruning
    // threshold (one discounted probe), which would make the two sides forget different things.
    const rs = [0, 1, 2, 3].flatMap((e) =>
      [0, 1, 2].flatMap(() => [
        result({ epoch: e, tags: ['a'], probed: [22, 80, 443], open: [22] }),
        result({ epoch: e, tags: ['b'], probed: [22, 80, 2222], open: [2222, 80] }),
      ]),
    );
    const all = new PortStats(catalog);
    const left = new PortStats(catalog);
    const right = new PortStats(catalog);
    rs.forEach((r, i) => {
      all.observe(r);
      (i % 2 === 0 ? left : right).observe(r);
    });
    const ab = mergePortStatsStates(left.toJSON(), right.toJSON());
    const ba = mergePortStatsStates(right.toJSON(), left.toJSON());
    expect(ab).toEqual(ba);
    const merged = new PortStats(catalog, portStatsDefaults, ab);
    for (const port of [22, 80, 443, 2222]) {
      expect(merged.mean(['a'], port)).toBeCloseTo(all.mean(['a'], port), 9);
      expect(merged.mean(['b'], port)).toBeCloseTo(all.mean(['b'], port), 9);
    }
    expect(mergePortStatsStates(ab, emptyPortStatsState())).toEqual(ab);
  });

  test('a state that is not port statistics is rejected with a coded error', () => {
    expect(() => new PortStats(catalog, portStatsDefaults, { version: 2 } as never)).toThrow(
      expect.objectContaining({ code: 'PB_ERR_STRATEGY_STATE' }),
    );
  });
});

describe('sampleBeta', () => {
  test('draws have the Beta mean, for small and large parameters', () => {
    const rng = createRng('beta');
    for (const [a, b] of [
      [0.5, 3],
      [2, 2],
      [300, 700],
      [0.001, 10],
    ] as const) {
      let sum = 0;
      const n = 4000;
      // Draws outside [0, 1], asserted once (an expect per draw cost more than the draws).
      const outside: number[] = [];
      for (let i = 0; i < n; i++) {
        const x = sampleBeta(a, b, rng);
        if (!(x >= 0 && x <= 1)) outside.push(x);
        sum += x;
      }
      expect(outside, `Beta(${a}, ${b}) draws outside [0, 1]`).toEqual([]);
      expect(sum / n).toBeCloseTo(betaMean({ alpha: a, beta: b }), 1);
    }
  });
});
