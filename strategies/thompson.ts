import {
  type BanditParams,
  type BanditState,
  banditParameters,
  createBanditStrategy,
  mergeBanditStates,
  restoreDiscovery,
  restorePrefixStats,
  restoreStats,
} from './bandit-base.js';
import { parseParameters } from './options.js';
import { upperBetaBound, upperGammaBound } from './stats/beta-bound.js';
import type { PortStats, PosteriorTable } from './stats/port-stats.js';
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
  /** Candidates with a lower posterior mean are not sampled: they fill the rest of the room by mean. */
  readonly coldThreshold: number;
  /** Sample a host's /24 (/64) under its tags (true) or by its tags alone. */
  readonly byPrefix: boolean;
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
      "Cap on the share of a host's probes (after must-have ones) that ports outside the candidates may take: Thompson sampling over tens of thousands of weak priors would otherwise spend most of the budget exploring. With sliceYield the cap is scaled by the slices' measured yield factor (outside ports are discovery too).",
  },
  {
    name: 'coldThreshold',
    type: 'number',
    default: 1e-4,
    min: 0,
    max: 1,
    description:
      'Candidates whose posterior mean open probability is below this are cold: they are not Thompson-sampled (their draws are near-zero noise, and a large scope has hundreds per host) but fill whatever room the sampled ports leave, by decreasing posterior mean; 0 samples every candidate.',
  },
  {
    name: 'byPrefix',
    type: 'boolean',
    default: true,
    description:
      "Sample each host's network prefix (/24, /64) under its tags: a port found open in the prefix draws from Beta(k m_tag + S_p, k (1 - m_tag) + F_p), every other port's tag draw is shrunk by k / (k + the prefix's trials of it) (a subnet's own ports spread to its other hosts, its evidence vetoes ports its tag believes in); false = the tags' posteriors alone.",
  },
  ...banditParameters(300),
];

/** The index of `x` in an ascending list, or -1. */
function sortedIndex(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === x) return mid;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function sortedHas(sorted: readonly number[], x: number): boolean {
  return sortedIndex(sorted, x) >= 0;
}

// A candidate whose draw exceeds its bound has probability <= 2e-6 (ln(1/delta) = 13.8 per tail).
const BOUND_LOG_INV_DELTA = Math.log(1e6);

interface SamplingOrder {
  /** The coldThreshold the order was built for. */
  readonly threshold: number;
  /** Indices of the candidates to sample (posterior mean >= threshold), by decreasing upper bound. */
  readonly order: Int32Array;
  /** Indices of the cold candidates (mean < threshold), by decreasing mean, then index. */
  readonly cold: Int32Array;
  /** Per cold candidate (same positions as `cold`): 1 / alpha and -ln beta, for rankCold's key. */
  readonly coldInvAlpha: Float64Array;
  readonly coldShift: Float64Array;
  readonly upper: Float64Array;
  /** For alpha < 1, an upper bound of Gamma(alpha + 1); for all, a lower bound of Gamma(beta). */
  readonly gammaUp: Float64Array;
  readonly betaLow: Float64Array;
  /** ln(betaLow / gammaUp): the cold-candidate test in log space, one logarithm per candidate. */
  readonly logLowOverUp: Float64Array;
}

const orders = new WeakMap<PosteriorTable, SamplingOrder>();

/**
 * Candidates to sample in decreasing order of their posterior's upper bound, and cold candidates
 * by decreasing mean (cached with the table).
 */
function samplingOrder(t: PosteriorTable, threshold: number): SamplingOrder {
  let o = orders.get(t);
  if (!o || o.threshold !== threshold) {
    const upper = new Float64Array(t.ports.length);
    for (let i = 0; i < upper.length; i++) upper[i] = upperBetaBound(t.alpha[i]!, t.beta[i]!, BOUND_LOG_INV_DELTA);
    const all = Int32Array.from(upper.keys());
    const order = all.filter((i) => t.mean[i]! >= threshold).sort((a, b) => upper[b]! - upper[a]! || a - b);
    const cold = all.filter((i) => !(t.mean[i]! >= threshold)).sort((a, b) => t.mean[b]! - t.mean[a]! || a - b);
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
    const coldInvAlpha = Float64Array.from(cold, (i) => 1 / t.alpha[i]!);
    const coldShift = Float64Array.from(cold, (i) => -Math.log(t.beta[i]!));
    o = { threshold, order, cold, coldInvAlpha, coldShift, upper, gammaUp, betaLow, logLowOverUp };
    orders.set(t, o);
  }
  return o;
}

/**
 * Typed arrays that sampleTop reuses across calls (fresh ones per call were a fifth of its time
 * on a /16 replay), grown as needed. `val` outlives the call when the buffer is an output.
 */
class DrawBuffer {
  idx = new Int32Array(128);
  val = new Float64Array(128);

  grow(n: number): void {
    const size = Math.max(n, this.idx.length * 2);
    this.idx = new Int32Array(size);
    this.val = new Float64Array(size);
  }
}

/** sampleTop's heap (not live after it returns) and its two outputs, which rank reads together. */
const heap = new DrawBuffer();
const tagDraws = new DrawBuffer();
const prefixDraws = new DrawBuffer();

/**
 * Of the candidates whose posterior mean is at least `threshold`, the `k` with the highest
 * posterior draws, best first, and the k-th draw (the bar; -1 when fewer than k were sampled),
 * sampling in decreasing order of their upper bound and stopping when no remaining candidate can
 * plausibly beat the bar. A min-heap of size k holds the best draws so far. The draws are
 * written to `out` (its `val` is the result's `values`, valid until the next call with `out`);
 * candidates marked in `skip` are passed over as if `take` refused them.
 */
function sampleTop(
  t: PosteriorTable,
  k: number,
  threshold: number,
  take: (port: number) => boolean,
  rng: Parameters<typeof sampleBeta>[2],
  out: DrawBuffer,
  floor = -1,
  shrink?: Float64Array,
  skip?: Uint8Array,
): { chosen: number[]; values: Float64Array; bar: number } {
  const { order, upper, betaLow, logLowOverUp } = samplingOrder(t, threshold);
  if (heap.idx.length < k) heap.grow(k);
  if (out.idx.length < k) out.grow(k);
  const heapIdx = heap.idx;
  const heapVal = heap.val;
  let size = 0;
  // ln(bar / (1 - bar)), recomputed only when the bar (the heap's minimum) changes.
  let barLogOdds = Number.NaN;
  let barSeen = -1;
  for (let r = 0; r < order.length; r++) {
    const i = order[r]!;
    // The bar a draw has to beat: the heap's minimum once full, and at least `floor` (a bar
    // set by draws made elsewhere; -1 = none).
    const full = size === k || floor > 0;
    const bar = size === k ? Math.max(heapVal[0]!, floor) : floor;
    if (full && (upper[i]! <= bar || bar >= 1)) break;
    if ((skip !== undefined && skip[i] === 1) || !take(t.ports[i]!)) continue;
    // A candidate's draw counts times its shrink factor (<= 1; a prefix's failures), so it has
    // to beat bar / factor.
    const f = shrink === undefined ? 1 : shrink[i]!;
    const barI = f === 1 ? bar : bar / f;
    if (full && barI >= 1) continue;
    const a = t.alpha[i]!;
    let d: number;
    if (full && a < 1) {
      // Draw Beta(a, b) as Ga / (Ga + Gb) with Ga = G(a+1) * U^(1/a), U first: when even the
      // bounds of G(a+1) and Gb cannot lift this draw over the bar, skip the two gamma draws.
      // Most candidates of a large scope are cold ports (alpha < 1), so this is most of the work.
      // The bound G(a+1) <= gammaUp makes the draw at most v gammaUp / (v gammaUp + betaLow),
      // which is <= bar iff v <= bar betaLow / ((1 - bar) gammaUp), i.e. ln U <= a (ln odds(bar) +
      // ln(betaLow / gammaUp)): one logarithm instead of a power for the candidates skipped.
      if (barSeen !== barI) {
        barSeen = barI;
        barLogOdds = Math.log(barSeen / (1 - barSeen));
      }
      const lnU = Math.log(rng.next());
      if (lnU <= a * (barLogOdds + logLowOverUp[i]!)) continue;
      const v = Math.exp(lnU / a);
      const ga = sampleGamma(a + 1, rng) * v;
      // Second look, with Ga drawn: skip Gb when even its lower bound cannot lift the draw.
      if (ga / (ga + betaLow[i]!) <= barI) continue;
      const gb = sampleGamma(t.beta[i]!, rng);
      d = ga + gb > 0 ? ga / (ga + gb) : 0;
    } else if (full && a < 10) {
      const ga = sampleGamma(a, rng);
      if (ga / (ga + betaLow[i]!) <= barI) continue;
      const gb = sampleGamma(t.beta[i]!, rng);
      d = ga + gb > 0 ? ga / (ga + gb) : 0;
    } else d = sampleBeta(a, t.beta[i]!, rng);
    d *= f;
    if (d <= floor) continue;
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
  const outIdx = out.idx;
  const outVal = out.val;
  for (let n = size; n > 0;) {
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
  return { chosen, values: outVal, bar };
}

/**
 * The `need` cold candidates (mean below coldThreshold) to fill the room with (as ports), by an
 * approximate posterior draw that costs one uniform instead of two gamma draws. A Beta(a, b) draw
 * is Ga U^(1/a) / (Ga U^(1/a) + Gb) with Ga ~ Gamma(a + 1), Gb ~ Gamma(b); for a cold candidate
 * (a << 1, b >= the prior's pseudo-hosts) its log is ln U / a + ln Ga - ln Gb up to a vanishing
 * term, and ln U / a (spread 1/a) dwarfs the gamma terms (spread about 1 and 1/sqrt(b)), so the
 * key ln U / a - ln b ranks cold candidates nearly as their draws would, keeping the per-host
 * variety of exploration among them. A min-heap of size `need` holds the best keys.
 */
function rankCold(
  t: PosteriorTable,
  o: SamplingOrder,
  need: number,
  take: (port: number) => boolean,
  rng: Parameters<typeof sampleBeta>[2],
): ColdHeap {
  const { cold, coldInvAlpha, coldShift } = o;
  const heapIdx = new Int32Array(need);
  const heapVal = new Float64Array(need);
  let size = 0;
  for (let r = 0; r < cold.length; r++) {
    const i = cold[r]!;
    const port = t.ports[i]!;
    if (!take(port)) continue;
    const key = Math.log(rng.next()) * coldInvAlpha[r]! + coldShift[r]!;
    if (size < need) {
      let c = size++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (heapVal[p]! <= key) break;
        heapVal[c] = heapVal[p]!;
        heapIdx[c] = heapIdx[p]!;
        c = p;
      }
      heapVal[c] = key;
      heapIdx[c] = port;
    } else if (key > heapVal[0]!) {
      let c = 0;
      for (;;) {
        const l = 2 * c + 1;
        if (l >= size) break;
        const m = l + 1 < size && heapVal[l + 1]! < heapVal[l]! ? l + 1 : l;
        if (heapVal[m]! >= key) break;
        heapVal[c] = heapVal[m]!;
        heapIdx[c] = heapIdx[m]!;
        c = m;
      }
      heapVal[c] = key;
      heapIdx[c] = port;
    }
  }
  return { ports: heapIdx, keys: heapVal, size };
}

/** A min-heap of cold candidates' ports by key (rankCold's result). */
interface ColdHeap {
  readonly ports: Int32Array;
  readonly keys: Float64Array;
  size: number;
}

/** Drop the heap's minimum (the worst cold candidate kept). */
function popColdMin(h: ColdHeap): void {
  const n = --h.size;
  const d = h.keys[n]!;
  const di = h.ports[n]!;
  let c = 0;
  for (;;) {
    const l = 2 * c + 1;
    if (l >= n) break;
    const m = l + 1 < n && h.keys[l + 1]! < h.keys[l]! ? l + 1 : l;
    if (h.keys[m]! >= d) break;
    h.keys[c] = h.keys[m]!;
    h.ports[c] = h.ports[m]!;
    c = m;
  }
  h.keys[c] = d;
  h.ports[c] = di;
}

/**
 * A prefix's (/24, /64) evidence under its tags, for one statistics version. A port found open
 * in the prefix draws from Beta(k m_tag + S_p, k (1 - m_tag) + F_p) (the tag's posterior mean as
 * the prefix's prior, k = tagStrength), sampled like the tag's candidates (sampleTop). Every other
 * port keeps its tag draw, shrunk by the prefix's trials of it: times k / (k + n_p), the factor
 * that takes a Beta mean with no success from k pseudo-trials to k + n_p (a port without an
 * entry has the prefix's sweeps as its trials: `scale`, common to all; `shrink` holds each tag
 * candidate's factor relative to it). Sampling only the ports the prefix found keeps the cost
 * to a few draws per host; its failures veto through the shrink.
 */
interface PrefixEntries {
  readonly table: PosteriorTable;
  /** Per tag candidate (tag table index): 1 where the prefix found the port (sampled as its own). */
  readonly has: Uint8Array;
  readonly scale: number;
  readonly shrink: Float64Array;
}

function prefixEntries(
  stats: PortStats,
  prefixStats: PortStats,
  tagTable: PosteriorTable,
  tags: readonly string[],
  prefix: string,
  k: number,
): PrefixEntries {
  const sweeps = prefixStats.sweeps(prefix);
  const shrink = new Float64Array(tagTable.ports.length).fill(1);
  const has = new Uint8Array(tagTable.ports.length);
  const ports: number[] = [];
  const alpha: number[] = [];
  const beta: number[] = [];
  const mean: number[] = [];
  for (const port of prefixStats.entries(prefix)) {
    const { successes, trials } = prefixStats.counts(prefix, port);
    if (successes <= 0) {
      const at = sortedIndex(tagTable.ports, port);
      if (at >= 0) shrink[at] = (k + sweeps) / (k + Math.max(trials, sweeps));
      continue;
    }
    const at = sortedIndex(tagTable.ports, port);
    if (at >= 0) has[at] = 1;
    const m = stats.mean(tags, port);
    const a = k * m + successes;
    const b = k * (1 - m) + Math.max(0, trials - successes);
    ports.push(port);
    alpha.push(a);
    beta.push(b);
    mean.push(a / (a + b));
  }
  return {
    table: { ports, alpha: Float64Array.from(alpha), beta: Float64Array.from(beta), mean: Float64Array.from(mean) },
    has,
    scale: k / (k + sweeps),
    shrink,
  };
}

/**
 * Merge a prefix's entry draws into the tag's top draws (scaled by the prefix's sweeps): the
 * `room` best of both, best first, and the room-th value (-1 when fewer). Entries are sampled
 * only where they can beat the tag draws' room-th value.
 */
function mergePrefixDraws(
  tag: { readonly chosen: readonly number[]; readonly values: Float64Array },
  e: PrefixEntries,
  room: number,
  take: (port: number) => boolean,
  rng: Parameters<typeof sampleBeta>[2],
): { chosen: number[]; bar: number } {
  const n = tag.chosen.length;
  const floor = n >= room && room > 0 ? tag.values[room - 1]! * e.scale : -1;
  const own = sampleTop(e.table, room, 0, take, rng, prefixDraws, floor);
  const chosen: number[] = [];
  let last = -1;
  for (let a = 0, b = 0; chosen.length < room && (a < n || b < own.chosen.length);) {
    const va = a < n ? tag.values[a]! * e.scale : -Infinity;
    const vb = b < own.chosen.length ? own.values[b]! : -Infinity;
    if (vb > va || (vb === va && own.chosen[b]! < tag.chosen[a]!)) {
      chosen.push(own.chosen[b++]!);
      last = vb;
    } else {
      chosen.push(tag.chosen[a++]!);
      last = va;
    }
  }
  return { chosen, bar: chosen.length >= room ? last : -1 };
}

/**
 * Thompson sampling over ports (combinatorial, semi-bandit): for each host, draw an open
 * probability for every candidate port from its Beta posterior (per scope tag, with the
 * hierarchical prior tag -> scope -> nmap frequency) and probe the ports with the highest draws.
 * Exploration is implicit: an uncertain port sometimes draws high. Candidates (ports seen open +
 * nmap's top `candidatePool`) whose posterior mean reaches `coldThreshold` are sampled one by
 * one, skipping those whose posterior cannot plausibly beat the host's bar; cold candidates
 * (below the threshold) are not sampled but fill any room left by decreasing posterior mean; the
 * rest of the universe is sampled by prior class, which costs a few incomplete-beta evaluations
 * per host.
 */
export const thompsonStrategy: StrategyDefinition<ThompsonParams, BanditState> = {
  name: 'thompson',
  summary:
    'Contextual Thompson sampling: per-tag Beta-Bernoulli posteriors with a scope and nmap prior; top-k by sampled open probability.',
  parameters,
  parseParams: (raw) => parseParameters<ThompsonParams>('thompson', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const discovery = restoreDiscovery(options, params, env.catalog, state?.discovery);
    const tail = params.exploreTail ? PriorTail.of(env.catalog, params.candidatePool) : null;
    const prefixStats = params.byPrefix ? restorePrefixStats(env.catalog, params, state) : undefined;
    let version = -1;
    const byPrefix = new Map<string, PrefixEntries>();
    const entriesOf = (tagTable: PosteriorTable, tags: readonly string[], prefix: string): PrefixEntries | null => {
      if (prefixStats === undefined || (prefixStats.entries(prefix).length === 0 && prefixStats.sweeps(prefix) === 0)) return null;
      const v = stats.version * 1e9 + prefixStats.version;
      if (v !== version || byPrefix.size > 4096) {
        byPrefix.clear();
        version = v;
      }
      const key = `${prefix}\u0001${tags.join('\u0000')}`;
      let hit = byPrefix.get(key);
      if (hit === undefined) byPrefix.set(key, (hit = prefixEntries(stats, prefixStats, tagTable, tags, prefix, params.tagStrength)));
      return hit;
    };
    return createBanditStrategy({
      name: 'thompson',
      options,
      env,
      params,
      ...(state !== undefined ? { state } : {}),
      stats,
      discovery,
      ...(prefixStats ? { prefixStats } : {}),
      rank(round, rng, picker) {
        const t = stats.table(round.tags, params.candidatePool);
        const room = picker.room;
        const threshold = params.coldThreshold;
        const entries = entriesOf(t, round.tags, round.prefix);
        const take = (p: number) => picker.canTake(p);
        const top = sampleTop(t, room, threshold, take, rng, tagDraws, -1, entries?.shrink, entries?.has);
        const { chosen, bar: sampledBar } = entries === null ? top : mergePrefixDraws(top, entries, room, take, rng);
        const sampling = samplingOrder(t, threshold);
        // Cold candidates take the room the sampled ones leave; their keys approximate the log
        // of their draws, so when they fill it the worst kept key stands for the room-th draw.
        const need = room - chosen.length;
        const cold = need > 0 && sampling.cold.length > 0 ? rankCold(t, sampling, need, (q) => picker.canTake(q), rng) : null;
        const bar = cold === null ? sampledBar : cold.size === need ? Math.exp(cold.keys[0]!) : -1;
        let explorers: number[] = [];
        if (tail && bar >= 0 && room > 0) {
          // The room-th best candidate draw is the bar an outside port's draw has to beat.
          // Outside ports are discovery too: their share follows the slices' measured yield
          // (sliceYield), so a scope where discovery finds only one-offs keeps its probes ranked.
          const cap = Math.ceil(params.tailShare * discovery.sliceFactor(round.epoch) * room);
          explorers = tail.draw(bar, params.tailStrength, params.priorFloor, cap, rng, (p) => picker.canTake(p) && !sortedHas(t.ports, p));
        }
        const keep = room - explorers.length;
        for (let i = 0; i < keep && i < chosen.length; i++) picker.add(chosen[i]!);
        if (cold) {
          // Explorers displace the worst cold candidates first.
          while (cold.size > picker.room - explorers.length && cold.size > 0) popColdMin(cold);
          for (let j = 0; j < cold.size; j++) picker.add(cold.ports[j]!);
        }
        picker.addAll(explorers);
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: [
        'Exploration is implicit in the posterior draws (candidates one by one, other ports by prior class): the learned share explores uncertain ports.',
        params.byPrefix
          ? "Contextual: a host's /24 (/64) sampled under its tags (its open ports from its own posterior, other ports' tag draws shrunk by its trials)."
          : 'Contextual: sampled from the tags alone (byPrefix off).',
      ],
    });
  },
  merge: mergeBanditStates,
};
