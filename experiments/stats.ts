import { quantileSorted } from 'simple-statistics';
import { type Rng, deriveRng } from '../src/core/index.js';

/** A point estimate with a two-sided bootstrap percentile interval; null where undefined. */
export interface Estimate {
  readonly value: number | null;
  readonly low: number | null;
  readonly high: number | null;
}

/** Weights of one bootstrap replicate: one array per seed (null = that seed was not drawn). */
export type ReplicateWeights = readonly (Float64Array | null)[];

/** Where the percentile interval sits: [alpha/2, 1 - alpha/2] of the replicate distribution. */
export function percentileInterval(values: readonly number[], confidence: number): { low: number; high: number } | null {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  const alpha = 1 - confidence;
  return { low: quantileSorted(finite, alpha / 2), high: quantileSorted(finite, 1 - alpha / 2) };
}

/**
 * Draw multiplicity weights for a two-level (hierarchical) bootstrap: seeds are resampled with
 * replacement, then hosts are resampled with replacement inside every drawn seed. `sizes[s]` is
 * the number of units (hosts) of seed s. The same draws are reused for every strategy and budget
 * of a recording, which is what makes comparisons paired (same hosts, same seeds).
 */
export function drawHierarchicalWeights(sizes: readonly number[], replicates: number, rng: Rng): ReplicateWeights[] {
  const out: ReplicateWeights[] = [];
  const seeds = sizes.length;
  for (let r = 0; r < replicates; r++) {
    const weights: (Float64Array | null)[] = new Array<Float64Array | null>(seeds).fill(null);
    for (let k = 0; k < seeds; k++) {
      const s = seeds === 1 ? 0 : rng.int(seeds);
      const n = sizes[s]!;
      const w = weights[s] ?? new Float64Array(n);
      for (let i = 0; i < n; i++) w[rng.int(n)]! += 1;
      weights[s] = w;
    }
    out.push(weights);
  }
  return out;
}

/** Sum of values[i] * w[i]; with w null every weight is 1. */
export function weightedSum(values: ArrayLike<number>, w: Float64Array | null): number {
  let sum = 0;
  if (w === null) {
    for (let i = 0; i < values.length; i++) sum += values[i]!;
  } else {
    for (let i = 0; i < values.length; i++) if (w[i] !== 0) sum += values[i]! * w[i]!;
  }
  return sum;
}

/**
 * Evaluate a statistic on the original data (every weight 1, every seed once) and on every
 * replicate; returns the estimate with its percentile interval. A statistic returns NaN where it
 * is undefined (e.g. no services present); such replicates are left out of the interval.
 */
export function bootstrapEstimate(
  stat: (weights: ReplicateWeights) => number,
  seeds: number,
  replicates: readonly ReplicateWeights[],
  confidence: number,
): Estimate {
  const point = stat(new Array<Float64Array | null>(seeds).fill(null));
  const values = replicates.map((w) => stat(w));
  const interval = percentileInterval(values, confidence);
  return {
    value: Number.isFinite(point) ? point : null,
    low: interval?.low ?? null,
    high: interval?.high ?? null,
  };
}

/**
 * The ratio sum(num)/sum(den) pooled over seeds under replicate weights; the per-seed arrays
 * are aligned with the weights. A seed with null weight in a replicate counts once when the
 * whole replicate is the original data (all null), and not at all otherwise.
 */
export function pooledRatio(num: readonly ArrayLike<number>[], den: readonly ArrayLike<number>[], weights: ReplicateWeights): number {
  const original = weights.every((w) => w === null);
  let n = 0;
  let d = 0;
  for (let s = 0; s < num.length; s++) {
    const w = weights[s] ?? null;
    if (w === null && !original) continue;
    n += weightedSum(num[s]!, w);
    d += weightedSum(den[s]!, w);
  }
  return d === 0 ? Number.NaN : n / d;
}

/** Bootstrap interval of the mean of one sample (one seed, units = observations). */
export function bootstrapMean(sample: readonly number[], options: { replicates: number; confidence: number; seed: string }): Estimate {
  const rng = deriveRng(options.seed, 'mean');
  const replicates = drawHierarchicalWeights([sample.length], options.replicates, rng);
  const ones = [new Float64Array(sample.length).fill(1)];
  return bootstrapEstimate((w) => pooledRatio([sample], ones, w), 1, replicates, options.confidence);
}

/**
 * Probes per host at which coverage first reaches `target`, linearly interpolated between the
 * measured budgets (points sorted by probes). NaN when no point reaches it.
 */
export function probesToReach(points: readonly { probes: number; coverage: number }[], target: number): number {
  let prev: { probes: number; coverage: number } | undefined;
  for (const p of points) {
    if (!Number.isFinite(p.coverage)) continue;
    if (p.coverage >= target) {
      if (prev === undefined || prev.coverage >= target) return p.probes;
      const t = (target - prev.coverage) / (p.coverage - prev.coverage);
      return prev.probes + t * (p.probes - prev.probes);
    }
    prev = p;
  }
  return Number.NaN;
}
