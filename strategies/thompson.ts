import { type BanditParams, type BanditState, banditParameters, createBanditStrategy, mergeBanditStates, restoreStats } from './bandit-base.js';
import { parseParameters } from './options.js';
import { upperBetaBound, upperGammaBound } from './stats/beta-bound.js';
import type { PosteriorTable } from './stats/port-stats.js';
import { PriorTail } from './stats/prior-tail.js';
import { sampleBeta, sampleGamma } from './stats/sample-beta.js';
import type { ParameterSpec, StrategyDefinition } from './types.js';

export interface ThompsonParams extends BanditParams {
  /** Also sample the ports outside the candidates (from their priors, by class). */
  readonly exploreTail: boolean;
  /** Prior strength (pseudo-hosts) of the ports outside the candidates. */
  readonly tailStrength: number;
  /** Cap on the share of a host's room that outside ports may take. */
  readonly tailShare: number;
}

const parameters: ParameterSpec[] = [
  {
    name: 'exploreTail',
    type: 'boolean',
    default: true,
    description:
      "Thompson-sample the ports outside the candidates too (by prior class, strategies/stats/prior-tail.ts), so ports nmap ranks low or does not know get discovered; false = candidates only, remainder in nmap's order.",
  },
  {
    name: 'tailStrength',
    type: 'number',
    default: 10,
    min: 0.001,
    max: 1e6,
    description:
      "Prior strength, in pseudo-hosts, of the ports outside the candidates. Higher keeps tail exploration to the ports nmap's figures make plausible; lower spreads it over ports nmap does not know.",
  },
  {
    name: 'tailShare',
    type: 'number',
    default: 0.1,
    min: 0,
    max: 1,
    description:
      "Cap on the share of a host's probes (after must-have ones) that ports outside the candidates may take: Thompson sampling over tens of thousands of weak priors would otherwise spend most of the budget exploring.",
  },
  ...banditParameters(300),
];

function sortedHas(sorted: readonly number[], x: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

// A candidate whose draw exceeds its bound has probability <= 2e-6 (ln(1/delta) = 13.8 per tail).
const BOUND_LOG_INV_DELTA = Math.log(1e6);

interface SamplingOrder {
  /** Candidate indices by decreasing upper bound. */
  readonly order: Int32Array;
  readonly upper: Float64Array;
  /** For alpha < 1, an upper bound of Gamma(alpha + 1); for all, a lower bound of Gamma(beta). */
  readonly gammaUp: Float64Array;
  readonly betaLow: Float64Array;
  /** ln(betaLow / gammaUp): the cold-candidate test in log space, one logarithm per candidate. */
  readonly logLowOverUp: Float64Array;
}

const orders = new WeakMap<PosteriorTable, SamplingOrder>();

/** Candidates in decreasing order of their posterior's upper bound (cached with the table). */
function samplingOrder(t: PosteriorTable): SamplingOrder {
  let o = orders.get(t);
  if (!o) {
    const upper = new Float64Array(t.ports.length);
    for (let i = 0; i < upper.length; i++) upper[i] = upperBetaBound(t.alpha[i]!, t.beta[i]!, BOUND_LOG_INV_DELTA);
    const order = Int32Array.from(upper.keys()).sort((a, b) => upper[b]! - upper[a]! || a - b);
    const gammaUp = new Float64Array(upper.length);
    const betaLow = new Float64Array(upper.length);
    for (let i = 0; i < upper.length; i++) {
      const a = t.alpha[i]!;
      const b = t.beta[i]!;
      betaLow[i] = Math.max(0, b * (1 - Math.sqrt((2 * BOUND_LOG_INV_DELTA) / b)));
      if (a < 1) gammaUp[i] = upperGammaBound(a + 1, BOUND_LOG_INV_DELTA);
    }
    const logLowOverUp = new Float64Array(upper.length);
    for (let i = 0; i < upper.length; i++) logLowOverUp[i] = Math.log(betaLow[i]! / gammaUp[i]!);
    o = { order, upper, gammaUp, betaLow, logLowOverUp };
    orders.set(t, o);
  }
  return o;
}

/**
 * The `k` candidates with the highest posterior draws, best first, and the k-th draw (the bar),
 * sampling candidates in decreasing order of their upper bound and stopping when no remaining
 * candidate can plausibly beat the bar: on a /16 most candidates (ports open in other tags'
 * subnets) are never sampled. A min-heap of size k holds the best draws so far.
 */
function sampleTop(t: PosteriorTable, k: number, take: (port: number) => boolean, rng: Parameters<typeof sampleBeta>[2]): { chosen: number[]; bar: number } {
  const { order, upper, betaLow, logLowOverUp } = samplingOrder(t);
  const heapIdx = new Int32Array(k);
  const heapVal = new Float64Array(k);
  let size = 0;
  // ln(bar / (1 - bar)), recomputed only when the bar (the heap's minimum) changes.
  let barLogOdds = Number.NaN;
  let barSeen = -1;
  for (let r = 0; r < order.length; r++) {
    const i = order[r]!;
    if (size === k && (upper[i]! <= heapVal[0]! || heapVal[0]! >= 1)) break;
    if (!take(t.ports[i]!)) continue;
    const a = t.alpha[i]!;
    let d: number;
    if (size === k && a < 1) {
      // Draw Beta(a, b) as Ga / (Ga + Gb) with Ga = G(a+1) * U^(1/a), U first: when even the
      // bounds of G(a+1) and Gb cannot lift this draw over the bar, skip the two gamma draws.
      // Most candidates of a large scope are cold ports (alpha < 1), so this is most of the work.
      // The bound G(a+1) <= gammaUp makes the draw at most v gammaUp / (v gammaUp + betaLow),
      // which is <= bar iff v <= bar betaLow / ((1 - bar) gammaUp), i.e. ln U <= a (ln odds(bar) +
      // ln(betaLow / gammaUp)): one logarithm instead of a power for the candidates skipped.
      if (barSeen !== heapVal[0]!) {
        barSeen = heapVal[0]!;
        barLogOdds = Math.log(barSeen / (1 - barSeen));
      }
      const lnU = Math.log(rng.next());
      if (lnU <= a * (barLogOdds + logLowOverUp[i]!)) continue;
      const v = Math.exp(lnU / a);
      const ga = sampleGamma(a + 1, rng) * v;
      // Second look, with Ga drawn: skip Gb when even its lower bound cannot lift the draw.
      if (ga / (ga + betaLow[i]!) <= heapVal[0]!) continue;
      const gb = sampleGamma(t.beta[i]!, rng);
      d = ga + gb > 0 ? ga / (ga + gb) : 0;
    } else if (size === k && a < 10) {
      const ga = sampleGamma(a, rng);
      if (ga / (ga + betaLow[i]!) <= heapVal[0]!) continue;
      const gb = sampleGamma(t.beta[i]!, rng);
      d = ga + gb > 0 ? ga / (ga + gb) : 0;
    } else d = sampleBeta(a, t.beta[i]!, rng);
    if (size < k) {
      // Sift up.
      let c = size++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (heapVal[p]! <= d) break;
        heapVal[c] = heapVal[p]!;
        heapIdx[c] = heapIdx[p]!;
        c = p;
      }
      heapVal[c] = d;
      heapIdx[c] = i;
    } else if (d > heapVal[0]!) {
      // Replace the minimum and sift down.
      let c = 0;
      for (;;) {
        const l = 2 * c + 1;
        if (l >= size) break;
        const m = l + 1 < size && heapVal[l + 1]! < heapVal[l]! ? l + 1 : l;
        if (heapVal[m]! >= d) break;
        heapVal[c] = heapVal[m]!;
        heapIdx[c] = heapIdx[m]!;
        c = m;
      }
      heapVal[c] = d;
      heapIdx[c] = i;
    }
  }
  const bar = size === k ? heapVal[0]! : -1;
  // Best first by popping the min-heap into the array's tail (a comparator sort of ~100 entries
  // per host cost a fifth of the replay); equal draws (clamped 0 or 1) then go by candidate index.
  const outIdx = new Int32Array(size);
  const outVal = new Float64Array(size);
  for (let n = size; n > 0; ) {
    outVal[n - 1] = heapVal[0]!;
    outIdx[n - 1] = heapIdx[0]!;
    n--;
    const d = heapVal[n]!;
    const di = heapIdx[n]!;
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= n) break;
      const m = l + 1 < n && heapVal[l + 1]! < heapVal[l]! ? l + 1 : l;
      if (heapVal[m]! >= d) break;
      heapVal[c] = heapVal[m]!;
      heapIdx[c] = heapIdx[m]!;
      c = m;
    }
    heapVal[c] = d;
    heapIdx[c] = di;
  }
  for (let j = 1; j < size; j++) {
    // Insertion sort by index inside runs of equal draws (almost always runs of one).
    const v = outVal[j]!;
    const x = outIdx[j]!;
    let c = j;
    while (c > 0 && outVal[c - 1] === v && outIdx[c - 1]! > x) {
      outIdx[c] = outIdx[c - 1]!;
      c--;
    }
    outIdx[c] = x;
  }
  const chosen = new Array<number>(size);
  for (let j = 0; j < size; j++) chosen[j] = t.ports[outIdx[j]!]!;
  return { chosen, bar };
}

/**
 * Thompson sampling over ports (combinatorial, semi-bandit): for each host, draw an open
 * probability for every candidate port from its Beta posterior (per scope tag, with the
 * hierarchical prior tag -> scope -> nmap frequency) and probe the ports with the highest draws.
 * Exploration is implicit: an uncertain port sometimes draws high. Candidates (ports seen open +
 * nmap's top `candidatePool`) are sampled one by one, skipping those whose posterior cannot
 * plausibly beat the host's bar; the rest of the universe is sampled by prior class, which costs
 * a few incomplete-beta evaluations per host.
 */
export const thompsonStrategy: StrategyDefinition<ThompsonParams, BanditState> = {
  name: 'thompson',
  summary: 'Contextual Thompson sampling: per-tag Beta-Bernoulli posteriors with a scope and nmap prior; top-k by sampled open probability.',
  parameters,
  parseParams: (raw) => parseParameters<ThompsonParams>('thompson', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const tail = params.exploreTail ? PriorTail.of(env.catalog, params.candidatePool) : null;
    return createBanditStrategy({
      name: 'thompson',
      options,
      env,
      params,
      stats,
      rank(round, rng, picker) {
        const t = stats.table(round.tags, params.candidatePool);
        const room = picker.room;
        const { chosen, bar } = sampleTop(t, room, (p) => picker.canTake(p), rng);
        let explorers: number[] = [];
        if (tail && bar >= 0 && room > 0) {
          // The room-th best candidate draw is the bar an outside port's draw has to beat.
          const cap = Math.ceil(params.tailShare * room);
          explorers = tail.draw(bar, params.tailStrength, params.priorFloor, cap, rng, (p) => picker.canTake(p) && !sortedHas(t.ports, p));
        }
        for (let i = 0; i < room - explorers.length && i < chosen.length; i++) picker.add(chosen[i]!);
        picker.addAll(explorers);
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: ['Exploration is implicit in the posterior draws (candidates one by one, other ports by prior class): the learned share explores uncertain ports.'],
    });
  },
  merge: mergeBanditStates,
};
