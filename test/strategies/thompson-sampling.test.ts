import { describe, expect, it } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { createRng } from '../../src/core/rng.js';
import { simulate } from '../../simulator/index.js';
import { generateRecording } from '../../simulator/synthetic/index.js';
import { restorePrefixStats, restoreStats, type BanditState } from '../../strategies/bandit-base.js';
import { resolveCommonOptions } from '../../strategies/options.js';
import { upperBetaBound } from '../../strategies/stats/beta-bound.js';
import { sampleBeta, sampleNormal } from '../../strategies/stats/sample-beta.js';
import { type ThompsonParams, thompsonStrategy } from '../../strategies/thompson.js';
import type { RoundContext } from '../../strategies/types.js';

// thompson's sampler skips and defers draws that cannot reach the top k (bounds, a guessed bar,
// staged gamma draws) for speed. These tests pin that it still picks the top k of independent
// Beta draws among the candidates it samples (posterior mean >= coldThreshold): inclusion
// frequencies per port match a naive reference that draws every such candidate (the tags' posteriors:
// byPrefix off; the prefix's draws are tested in prefix-ranking.test.ts). The threshold is
// set per test so that twice the budget are sampled (cold candidates only fill leftover room).

const catalog = loadNmapServices();
const TRIALS = 1500;

/** Learn a thompson state on a small generated scope, so posteriors are mixed (hot, warm, cold). */
function learned(budget: number, byPrefix = false): { params: ThompsonParams; state: BanditState; tags: readonly string[] } {
  const params = thompsonStrategy.parseParams({ exploreTail: false, byPrefix });
  const options = resolveCommonOptions({ budget });
  const strategy = thompsonStrategy.create(options, params, { catalog }, undefined);
  const recording = generateRecording({ profile: 'enterprise', hosts: 512, epochs: 3, seed: 'thompson-sampling' }, catalog);
  simulate(recording, strategy, { seed: 'learn' });
  const tags = recording.tagSets.find((t) => t.length > 0) ?? [];
  return { params, state: strategy.state(), tags };
}

function roundFor(tags: readonly string[], budget: number, prefix = '198.18.0.0/24'): RoundContext {
  return {
    ip: '198.18.0.9',
    tags,
    prefix,
    epoch: 3,
    previousOpen: [],
    previousEpoch: -1,
    probeable: PortRanges.ALL,
    round: 0,
    probed: [],
    found: [],
    remaining: budget,
  };
}

describe('thompson sampling is the top k of independent Beta draws', () => {
  for (const budget of [10, 30]) {
    it(`inclusion frequencies match a naive reference at budget ${budget}`, () => {
      const { params: learnedWith, state, tags } = learned(budget);
      const table = restoreStats(catalog, learnedWith, state).table(tags, learnedWith.candidatePool);
      expect(table.ports.length).toBeGreaterThan(2 * budget);
      // The threshold that leaves the 2 * budget candidates of highest mean to be sampled.
      const threshold = [...table.mean].sort((x, y) => y - x)[2 * budget - 1]!;
      const sampled = Array.from(table.mean.keys()).filter((i) => table.mean[i]! >= threshold);
      const n = sampled.length;
      expect(n).toBeGreaterThan(budget);
      const params: ThompsonParams = { ...learnedWith, coldThreshold: threshold };
      const strategy = thompsonStrategy.create(resolveCommonOptions({ budget }), params, { catalog }, state);
      const fast = new Map<number, number>();
      const ref = new Map<number, number>();
      const round = roundFor(tags, budget);
      const rngA = createRng('fast');
      const rngB = createRng('reference');
      const draws = new Float64Array(n);
      // Equal draws (0 when U^(1/alpha) underflows, common for cold ports) go to the candidate
      // thompson visits first: by decreasing upper bound, then by index.
      const upper = sampled.map((c) => upperBetaBound(table.alpha[c]!, table.beta[c]!, Math.log(1e6)));
      const idx = Array.from({ length: n }, (_, i) => i);
      for (let trial = 0; trial < TRIALS; trial++) {
        for (const p of strategy.select(round, rngA).ports.slice(0, budget)) fast.set(p, (fast.get(p) ?? 0) + 1);
        for (let i = 0; i < n; i++) draws[i] = sampleBeta(table.alpha[sampled[i]!]!, table.beta[sampled[i]!]!, rngB);
        idx.sort((x, y) => draws[y]! - draws[x]! || upper[y]! - upper[x]! || x - y);
        for (let j = 0; j < budget; j++) {
          const port = table.ports[sampled[idx[j]!]!]!;
          ref.set(port, (ref.get(port) ?? 0) + 1);
        }
      }
      // Every port's inclusion frequency agrees within 5 standard errors of the difference.
      let worst = 0;
      for (const port of new Set([...fast.keys(), ...ref.keys()])) {
        const f = (fast.get(port) ?? 0) / TRIALS;
        const r = (ref.get(port) ?? 0) / TRIALS;
        const p = (f + r) / 2;
        const se = Math.sqrt((2 * p * (1 - p)) / TRIALS) + 1 / TRIALS;
        worst = Math.max(worst, Math.abs(f - r) / se);
      }
      expect(worst).toBeLessThan(5);
    });
  }

  it("with a host's /24: the prefix's open ports drawn from its posterior, the others' tag draws shrunk by its trials", () => {
    const budget = 20;
    const { params: learnedWith, state, tags } = learned(budget, true);
    const stats = restoreStats(catalog, learnedWith, state);
    const table = stats.table(tags, learnedWith.candidatePool);
    const prefixes = restorePrefixStats(catalog, learnedWith, state);
    const k = learnedWith.tagStrength;
    // The /24 with the most ports found open: its own ports compete with the tag's.
    const prefix = prefixes
      .tags()
      .map((p) => ({ p, open: prefixes.entries(p).filter((port) => prefixes.counts(p, port).successes > 0).length }))
      .sort((a, b) => b.open - a.open || a.p.localeCompare(b.p))[0]!.p;
    const sweeps = prefixes.sweeps(prefix);
    const own = prefixes.entries(prefix).filter((port) => prefixes.counts(prefix, port).successes > 0);
    expect(own.length).toBeGreaterThan(3);
    const ownPosterior = own.map((port) => {
      const m = stats.mean(tags, port);
      const { successes, trials } = prefixes.counts(prefix, port);
      return { port, a: k * m + successes, b: k * (1 - m) + Math.max(0, trials - successes) };
    });
    const threshold = [...table.mean].sort((x, y) => y - x)[2 * budget - 1]!;
    const sampled = Array.from(table.mean.keys()).filter((i) => table.mean[i]! >= threshold && !own.includes(table.ports[i]!));
    // The tag draw's factor: k / (k + the prefix's trials of the port; its sweeps without an entry).
    const factor = sampled.map((i) => k / (k + Math.max(prefixes.counts(prefix, table.ports[i]!).trials, sweeps)));
    expect(factor.some((f) => f < k / (k + sweeps))).toBe(true);
    const params: ThompsonParams = { ...learnedWith, coldThreshold: threshold };
    const strategy = thompsonStrategy.create(resolveCommonOptions({ budget }), params, { catalog }, state);
    const fast = new Map<number, number>();
    const ref = new Map<number, number>();
    const rngA = createRng('fast-prefix');
    const rngB = createRng('reference-prefix');
    for (let trial = 0; trial < TRIALS; trial++) {
      for (const p of strategy.select(roundFor(tags, budget, prefix), rngA).ports.slice(0, budget)) fast.set(p, (fast.get(p) ?? 0) + 1);
      const draws = [
        ...sampled.map((i, j) => ({ port: table.ports[i]!, d: sampleBeta(table.alpha[i]!, table.beta[i]!, rngB) * factor[j]! })),
        ...ownPosterior.map(({ port, a, b }) => ({ port, d: sampleBeta(a, b, rngB) })),
      ];
      draws.sort((x, y) => y.d - x.d || x.port - y.port);
      for (const { port } of draws.slice(0, budget)) ref.set(port, (ref.get(port) ?? 0) + 1);
    }
    let worst = 0;
    for (const port of new Set([...fast.keys(), ...ref.keys()])) {
      const f = (fast.get(port) ?? 0) / TRIALS;
      const r = (ref.get(port) ?? 0) / TRIALS;
      const p = (f + r) / 2;
      worst = Math.max(worst, Math.abs(f - r) / (Math.sqrt((2 * p * (1 - p)) / TRIALS) + 1 / TRIALS));
    }
    expect(worst).toBeLessThan(5);
  });

  it('cold candidates (mean below coldThreshold) only fill the room the sampled ones leave, varying per host', () => {
    const budget = 30;
    const { params: learnedWith, state, tags } = learned(budget);
    const table = restoreStats(catalog, learnedWith, state).table(tags, learnedWith.candidatePool);
    // Leave budget / 3 candidates above the threshold: all of them must be probed on every host.
    const threshold = [...table.mean].sort((x, y) => y - x)[budget / 3 - 1]!;
    const hot = new Set(table.ports.filter((_, i) => table.mean[i]! >= threshold));
    const candidates = new Set(table.ports);
    const params: ThompsonParams = { ...learnedWith, coldThreshold: threshold };
    const strategy = thompsonStrategy.create(resolveCommonOptions({ budget }), params, { catalog }, state);
    const rng = createRng('cold');
    const seen = new Set<string>();
    for (let trial = 0; trial < 50; trial++) {
      const ports = strategy.select(roundFor(tags, budget), rng).ports;
      expect(ports.length).toBe(budget);
      for (const p of hot) expect(ports).toContain(p);
      for (const p of ports) expect(candidates.has(p)).toBe(true);
      seen.add([...ports].sort((a, b) => a - b).join(','));
    }
    // The cold fill is a randomised ranking (approximate draws), not one fixed list.
    expect(seen.size).toBeGreaterThan(1);
  });

  it('the ziggurat normal has the standard normal moments and tails', () => {
    const rng = createRng('normal');
    const N = 200_000;
    let m = 0;
    let v = 0;
    let k = 0;
    let tail = 0;
    for (let i = 0; i < N; i++) {
      const x = sampleNormal(rng);
      m += x;
      v += x * x;
      k += x ** 4;
      if (Math.abs(x) > 3) tail++;
    }
    expect(Math.abs(m / N)).toBeLessThan(0.01);
    expect(Math.abs(v / N - 1)).toBeLessThan(0.015);
    expect(Math.abs(k / N - 3)).toBeLessThan(0.08);
    // P(|X| > 3) = 0.0027.
    expect(Math.abs(tail / N - 0.0027)).toBeLessThan(0.0006);
  });
});
