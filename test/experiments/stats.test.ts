import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { createRng, deriveRng } from '../../src/core/rng.js';
import { bootstrapMean, drawHierarchicalWeights, percentileInterval, pooledRatio, probesToReach } from '../../experiments/stats.js';
import { ALL_TAGS, summariseExperiment } from '../../experiments/summarise.js';
import { fakeCell, tinySpec } from './helpers.js';

/** Standard normal draws (Box-Muller) from a seeded stream. */
function normals(seed: string, n: number, mean: number, sd: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => {
    const u = Math.max(rng.next(), 1e-12);
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  });
}

describe('bootstrap intervals', () => {
  test('the 95% interval of a mean of normal samples covers the true mean at about the nominal rate', () => {
    let covered = 0;
    const trials = 200;
    for (let t = 0; t < trials; t++) {
      const sample = normals(`trial-${t}`, 40, 10, 3);
      const e = bootstrapMean(sample, { replicates: 400, confidence: 0.95, seed: `b-${t}` });
      if (e.low! <= 10 && 10 <= e.high!) covered++;
    }
    // Percentile bootstrap at n=40 under-covers slightly; 200 trials give a binomial sd of ~1.5%.
    expect(covered / trials).toBeGreaterThan(0.88);
    expect(covered / trials).toBeLessThan(0.995);
  });

  test.prop([
    fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 2, maxLength: 60 }),
    fc.string({ minLength: 1, maxLength: 8 }),
  ])('is deterministic in its seed and brackets the sample mean loosely', (sample, seed) => {
    const a = bootstrapMean(sample, { replicates: 60, confidence: 0.9, seed });
    const b = bootstrapMean(sample, { replicates: 60, confidence: 0.9, seed });
    expect(a).toEqual(b);
    const min = Math.min(...sample);
    const max = Math.max(...sample);
    expect(a.low!).toBeGreaterThanOrEqual(min - 1e-9);
    expect(a.high!).toBeLessThanOrEqual(max + 1e-9);
    expect(a.low!).toBeLessThanOrEqual(a.high!);
  });

  test('wider confidence gives a wider interval', () => {
    const sample = normals('w', 80, 0, 1);
    const narrow = bootstrapMean(sample, { replicates: 500, confidence: 0.5, seed: 's' });
    const wide = bootstrapMean(sample, { replicates: 500, confidence: 0.99, seed: 's' });
    expect(wide.high! - wide.low!).toBeGreaterThan(narrow.high! - narrow.low!);
  });

  test.prop([fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 20 })])(
    "hierarchical weights draw one seed per seed slot and all of a drawn seed's hosts each time",
    (sizes, replicates) => {
      const draws = drawHierarchicalWeights(sizes, replicates, deriveRng('w', sizes.length));
      expect(draws).toHaveLength(replicates);
      for (const w of draws) {
        let seedDraws = 0;
        w.forEach((arr, s) => {
          if (arr === null) return;
          expect(arr).toHaveLength(sizes[s]!);
          const sum = arr.reduce((a, b) => a + b, 0);
          expect(sum % sizes[s]!).toBe(0);
          seedDraws += sum / sizes[s]!;
        });
        expect(seedDraws).toBe(sizes.length);
      }
    },
  );

  test('pooledRatio on the original data is the plain ratio of sums', () => {
    expect(pooledRatio([[1, 2], [3]], [[2, 2], [4]], [null, null])).toBeCloseTo(6 / 8);
  });

  test('percentile interval of a constant is that constant', () => {
    expect(percentileInterval([2, 2, 2, 2], 0.95)).toEqual({ low: 2, high: 2 });
    expect(percentileInterval([Number.NaN], 0.95)).toBeNull();
  });
});

describe('probes to reach a coverage target', () => {
  test('interpolates linearly between the budgets around the target', () => {
    const points = [
      { probes: 10, coverage: 0.5 },
      { probes: 20, coverage: 0.8 },
      { probes: 40, coverage: 1.0 },
    ];
    expect(probesToReach(points, 0.9)).toBeCloseTo(30);
    expect(probesToReach(points, 0.4)).toBe(10);
    expect(probesToReach(points.slice(0, 2), 0.9)).toBeNaN();
  });
});

describe('paired differences against the baseline', () => {
  const spec = tinySpec('/nonexistent.ndjson', { budgets: [5, 20], seeds: [1, 2], bootstrap: { replicates: 300, seed: 'paired' } });
  // Host i has 2 + (i % 5) services; the baseline finds half of each host's, top-k all of them,
  // random a quarter. So top-k minus baseline is exactly +50 points on every resample.
  const hosts = (seed: number, share: number) =>
    Array.from({ length: 30 }, (_v, i) => {
      const total = 4 * (1 + ((i * 7 + seed) % 5));
      return { ip: `198.18.${seed}.${i + 1}`, tags: [i % 2 === 0 ? 'web' : 'db'], total, found: total * share, probes: 20 };
    });
  const results = spec.seeds.flatMap((seed) =>
    spec.budgets.flatMap((budget) => [
      fakeCell(spec, 'tiny', 'natlas-fixed', budget, seed, hosts(Number(seed), 0.5)),
      fakeCell(spec, 'tiny', 'top-k', budget, seed, hosts(Number(seed), 1)),
      fakeCell(spec, 'tiny', 'random', budget, seed, hosts(Number(seed), 0.25)),
    ]),
  );
  const summary = summariseExperiment(spec, results);
  const row = (strategy: string, tag = ALL_TAGS, budget = 5) =>
    summary.rows.find((r) => r.strategy === strategy && r.tag === tag && r.budget === budget)!;

  test('differences equal the hand-computed values, with a degenerate interval when the gap is the same on every host', () => {
    expect(row('top-k').coverage.value).toBeCloseTo(1);
    expect(row('natlas-fixed').coverage.value).toBeCloseTo(0.5);
    expect(row('top-k').coverageDiff!.value).toBeCloseTo(0.5);
    expect(row('top-k').coverageDiff!.low).toBeCloseTo(0.5);
    expect(row('top-k').coverageDiff!.high).toBeCloseTo(0.5);
    expect(row('random').coverageDiff!.value).toBeCloseTo(-0.25);
    expect(row('random', 'web').coverageDiff!.low).toBeCloseTo(-0.25);
    expect(row('natlas-fixed').coverageDiff).toBeNull();
  });

  test('precision and regret differences are paired too', () => {
    const tk = row('top-k');
    const base = row('natlas-fixed');
    expect(tk.precisionDiff!.value).toBeCloseTo(tk.precision.value! - base.precision.value!);
    expect(tk.missedPerHostDiff!.value).toBeCloseTo(tk.missedPerHost.value! - base.missedPerHost.value!);
    expect(tk.missedPerHost.value).toBeCloseTo(0);
    // Unpaired, the baseline's own precision varies across resamples; the paired gap does not shrink to it.
    expect(base.precision.high! - base.precision.low!).toBeGreaterThan(0);
  });

  test('per-tag rows exist for every tag and the summary is deterministic', () => {
    expect(summary.tags['tiny']).toEqual([ALL_TAGS, 'db', 'web']);
    expect(row('top-k', 'db').hosts).toBe(15);
    expect(JSON.stringify(summariseExperiment(spec, results))).toBe(JSON.stringify(summary));
  });

  test('probes to 90% is reported where coverage reaches it and absent where it does not', () => {
    const tk = summary.probesToTarget.find((p) => p.strategy === 'top-k' && p.tag === ALL_TAGS)!;
    const rnd = summary.probesToTarget.find((p) => p.strategy === 'random' && p.tag === ALL_TAGS)!;
    expect(tk.probes.value).toBeCloseTo(20 / 3);
    expect(rnd.probes.value).toBeNull();
    expect(rnd.reachedShare).toBe(0);
  });
});
