import { PortbanditError, type Rng } from '../src/core/index.js';
import { type PairCountsState, PairCounts, mergePairCounts, validatePairCounts } from './cooccurrence/pair-counts.js';
import { EMPTY_RANKING, MeanRanking, PrefixUnderTag, type Ranking, addByScore, fillRest, rankFollowUps } from './cooccurrence/ranking.js';
import {
  Discovery,
  discoveryRoom,
  type DiscoveryDefaults,
  type DiscoveryParams,
  type DiscoveryState,
  discoveryParameters,
  mergeDiscoveryStates,
  pickDiscoveryParams,
  sweepDecision,
  sweepSplit,
} from './discovery/discovery.js';
import type { SweepPlannerState, SweepYieldState } from './discovery/sweep-planner.js';
import { BANDIT_DISCOVERY } from './bandit-base.js';
import { type GuardParams, guardParameters, pickGuardParams, screenBatch } from './guards.js';
import { parseParameters } from './options.js';
import { historyCapParameter, historyOf } from './history.js';
import { PortPicker } from './port-picker.js';
import { samplePriorPort } from './stats/sample-prior.js';
import {
  type PortStatsParams,
  type PortStatsState,
  PortStats,
  emptyPortStatsState,
  mergePortStatsStates,
  pickPortStatsParams,
  portStatsParameters,
} from './stats/port-stats.js';
import type {
  BatchVerdict,
  CommonOptions,
  Decision,
  Explanation,
  HostContext,
  ParameterSpec,
  RoundContext,
  Strategy,
  StrategyDefinition,
  StrategyEnv,
} from './types.js';
import { countOf } from './describe.js';

/**
 * `cooccurrence`: learn P(port B open | port A open on the same host) from results, as GPS does,
 * and scan each host sequentially. Round 0 probes seed ports (must-have + the most popular
 * learned/prior ports, `seedShare` of the allowance); the following rounds spend the rest on the
 * ports most likely given what round 0 found, falling back to the marginal ranking when nothing
 * was found. Marginals are the shared per-tag statistics (strategies/stats); pair counts are
 * sparse (strategies/cooccurrence/pair-counts.ts).
 */

export interface CooccurrenceParams extends PortStatsParams, GuardParams, DiscoveryParams {
  /** Share of the allowance probed in round 0 (the seed ports). */
  readonly seedShare: number;
  /** Decision rounds per host-epoch: 1 = no follow-up, 2 = seed + one follow-up, ... */
  readonly rounds: number;
  /** Share of a visit's probes after must-have ones drawn from nmap's frequency prior, in the last round. */
  readonly epsilon: number;
  /** Rank a host's /24 (/64) under its tags (true) or by its tags alone. */
  readonly byPrefix: boolean;
  /** Pseudo-trials shrinking P(B | A) toward the marginal P(B). */
  readonly pairStrength: number;
  /** Host-epochs with more open ports than this teach no pairs. */
  readonly pairCap: number;
  /** Keep pair counts per scope tag as well as scope-wide. */
  readonly byTag: boolean;
  /** nmap's most frequent ports kept as marginal candidates besides the ports seen open. */
  readonly priorTop: number;
  /** Previously open ports of a host re-verified first (strategies/history.ts). */
  readonly historyCap: number;
}

/** The plain-JSON state: the marginal statistics, the pair counts and the discovery cursors (absent in older states). */
export interface CooccurrenceState {
  readonly stats: PortStatsState;
  readonly pairs: PairCountsState;
  readonly discovery?: DiscoveryState;
  /** Per-/24 (/64) statistics (their "tags" are prefixes); absent (or null, adaptive's way) with byPrefix off and in older states. */
  readonly prefixes?: PortStatsState | null;
}

/** Default share of a live host's allowance `cooccurrence` spends on coordinated discovery. */
export const COOCCURRENCE_DISCOVERY_SHARE = 0.3;

/** `cooccurrence`'s discovery defaults: those of the bandits (strategies/bandit-base.ts). */
export const COOCCURRENCE_DISCOVERY: DiscoveryDefaults = Object.freeze({
  ...BANDIT_DISCOVERY,
  discoveryShare: COOCCURRENCE_DISCOVERY_SHARE,
});

/** Parameters of the co-occurrence model, shared with `adaptive`. */
export const pairParameters: readonly ParameterSpec[] = Object.freeze([
  {
    name: 'pairStrength',
    type: 'number',
    default: 2,
    min: 0.001,
    max: 1e6,
    description:
      'Pseudo-trials shrinking each learned P(B | A) toward the marginal P(B), so a pair seen once does not outrank what the scope knows.',
  },
  {
    name: 'pairCap',
    type: 'integer',
    default: 16,
    min: 2,
    max: 65535,
    description:
      'Host-epochs with more open ports than this teach no pairs (pair learning is quadratic in open ports; GPS learns from hosts with 2-10).',
  },
  {
    name: 'byTag',
    type: 'boolean',
    default: false,
    description: 'Also keep pair counts per scope tag (P(B | A, tag)), refining the scope-wide estimate; costs one more table per tag.',
  },
  {
    name: 'priorTop',
    type: 'integer',
    default: 1000,
    min: 0,
    max: 65535,
    description: "nmap's most frequent ports kept as candidates besides every port seen open (scoring never loops over all 65,535).",
  },
]);

const parameters: readonly ParameterSpec[] = Object.freeze([
  historyCapParameter,
  {
    name: 'seedShare',
    type: 'number',
    default: 0.4,
    min: 0.01,
    max: 1,
    description: 'Share of the allowance probed in round 0 (must-have + the most likely ports); the rest follows up on what was found.',
  },
  {
    name: 'rounds',
    type: 'integer',
    default: 2,
    min: 1,
    max: 16,
    description: 'Decision rounds per host-epoch (1 = no follow-up). Each extra round is one more agent round-trip in production.',
  },
  {
    name: 'epsilon',
    type: 'number',
    default: 0.1,
    min: 0,
    max: 1,
    description:
      "Share of a visit's probes after must-have ones drawn from nmap's frequency prior in the last round (exploration, as epsilon-greedy's epsilon): without it a port whose first few probes came back closed drops out of the greedy ranking for good.",
  },
  {
    name: 'byPrefix',
    type: 'boolean',
    default: true,
    description:
      "Rank each host's network prefix (/24, /64) under its tags for the marginal ranking, as adaptive does (a subnet's own ports spread to its other hosts, its evidence vetoes ports its tag believes in); false = the tags' estimates alone.",
  },
  ...pairParameters,
  ...portStatsParameters,
  ...discoveryParameters(COOCCURRENCE_DISCOVERY),
  ...guardParameters,
]);

/** Check and unpack a saved state; throws PB_ERR_STRATEGY_STATE naming the bad field. */
function validateState(state: unknown, name: string): CooccurrenceState {
  if (state === null || typeof state !== 'object' || !('stats' in state) || !('pairs' in state)) {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', `expected a ${name} state {stats, pairs}`, { where: 'state' });
  }
  const s = state as CooccurrenceState;
  validatePairCounts(s.pairs, 'state.pairs');
  return s;
}

/** The learning parts of the co-occurrence model, shared by `cooccurrence` and `adaptive`. */
export class CooccurrenceModel {
  readonly stats: PortStats;
  readonly pairs: PairCounts;
  readonly marginals: MeanRanking;
  /** The shared discovery layer (allowance by liveness, coordinated discovery). */
  readonly discovery: Discovery;
  private readonly pairStrength: number;
  private readonly options: CommonOptions;
  private followUpVersion = -1;
  private readonly followUpCache = new Map<string, Ranking>();
  private readonly guards: GuardParams;

  constructor(options: CommonOptions, params: CooccurrenceModelParams, env: StrategyEnv, state?: CooccurrenceState) {
    const statsParams = pickPortStatsParams(params);
    this.options = options;
    this.guards = pickGuardParams(params);
    this.stats = new PortStats(env.catalog, statsParams, state?.stats);
    this.pairs = new PairCounts({ decay: statsParams.discount, pairCap: params.pairCap, byTag: params.byTag }, state?.pairs);
    this.marginals = new MeanRanking(this.stats, params.priorTop);
    this.pairStrength = params.pairStrength;
    // adaptive's states written before the sweep tier was shared keep it at their top level.
    const legacy = state as { readonly sweeps?: SweepPlannerState; readonly sweepYield?: SweepYieldState } | undefined;
    this.discovery = new Discovery(
      options,
      pickDiscoveryParams(params),
      env.catalog,
      Math.min(params.pseudoMinOpen, options.pseudoThreshold),
      state?.discovery,
      legacy,
    );
  }

  /**
   * Ports most likely open given `evidence` (ports open on this host), shrunk toward the
   * marginals. Cached per (tags, evidence) until the next observation: hosts of one role tend
   * to show the same few port sets, so most hosts of a batch reuse a ranking.
   */
  followUps(tags: readonly string[], evidence: readonly number[]): Ranking {
    if (evidence.length === 0) return EMPTY_RANKING;
    if (this.followUpVersion !== this.stats.version) {
      this.followUpCache.clear();
      this.followUpVersion = this.stats.version;
    }
    const key = `${tags.join('\u0000')}\u0001${evidence.join(',')}`;
    let ranking = this.followUpCache.get(key);
    if (ranking === undefined) {
      // The cached marginal ranking holds every port ever seen open, hence every pair partner.
      const known = this.marginals.rank(tags).byPort;
      const marginal = (port: number) => known?.get(port) ?? this.stats.mean(tags, port);
      ranking = rankFollowUps(this.pairs, tags, evidence, marginal, this.pairStrength);
      // Bounded: a batch with very diverse hosts must not grow the cache without limit.
      if (this.followUpCache.size < 4096) this.followUpCache.set(key, ranking);
    }
    return ranking;
  }

  /** Learn from a batch behind the guard rails. `extra` sees every teaching result too. */
  observe(results: Parameters<Strategy['observe']>[0], extra?: (teach: (typeof results)[number]) => void): BatchVerdict {
    const { teach, verdict } = screenBatch(results, this.options, this.guards);
    for (const r of teach) {
      this.stats.observe(r);
      this.pairs.learn(r.epoch, r.tags, r.open, r.probed);
      extra?.(r);
    }
    this.discovery.observe(results, teach, verdict.lossy);
    return verdict;
  }

  /** The strongest learned pairs (support-weighted), for explain(). */
  topPairs(limit: number): string[] {
    const scope = this.pairs.peek('*');
    if (scope === undefined) return [];
    const rows: Array<{ a: number; b: number; p: number; n: number }> = [];
    for (const a of scope.anchors()) {
      scope.forEachPartner(a, (b, hits, trials) => {
        if (trials >= 3) rows.push({ a, b, p: hits / trials, n: trials });
      });
    }
    rows.sort((x, y) => y.p * Math.log1p(y.n) - x.p * Math.log1p(x.n) || x.a - y.a || x.b - y.b);
    return rows
      .slice(0, limit)
      .map((r) => `P(${r.b} open | ${r.a} open) = ${r.p.toFixed(3)} over ${countOf(Math.round(r.n * 10) / 10, 'host')}`);
  }

  /** Per-group top ports with estimates: the whole scope, then each tag. */
  groups(limit: number): Explanation['groups'] {
    const out: Array<Explanation['groups'][number]> = [
      { group: '*', observations: this.stats.observations(null), top: this.stats.top(null, limit) },
    ];
    for (const tag of this.stats.tags())
      out.push({ group: tag, observations: this.stats.observations(tag), top: this.stats.top(tag, limit) });
    return out;
  }

  state(): CooccurrenceState {
    return { stats: this.stats.toJSON(), pairs: this.pairs.toState(), discovery: this.discovery.toJSON() };
  }
}

/** What CooccurrenceModel needs from a strategy's parameters. */
export type CooccurrenceModelParams = PortStatsParams &
  GuardParams &
  DiscoveryParams &
  Pick<CooccurrenceParams, 'pairStrength' | 'pairCap' | 'byTag' | 'priorTop'>;

/** Merge two co-occurrence states learned on disjoint results (order-independent). */
export function mergeCooccurrenceStates(a: CooccurrenceState, b: CooccurrenceState): CooccurrenceState {
  const prefixes =
    (a.prefixes ?? null) === null && (b.prefixes ?? null) === null
      ? undefined
      : mergePortStatsStates(a.prefixes ?? emptyPortStatsState(a.stats.discount), b.prefixes ?? emptyPortStatsState(b.stats.discount));
  return {
    stats: mergePortStatsStates(a.stats, b.stats),
    pairs: mergePairCounts(a.pairs, b.pairs),
    discovery: mergeDiscoveryStates(a.discovery, b.discovery),
    ...(prefixes !== undefined ? { prefixes } : {}),
  };
}

function createCooccurrence(
  options: CommonOptions,
  params: CooccurrenceParams,
  env: StrategyEnv,
  state?: CooccurrenceState,
): Strategy<CooccurrenceState> {
  const saved = state === undefined ? undefined : validateState(state, 'cooccurrence');
  const model = new CooccurrenceModel(options, params, env, saved);
  // The marginal ranking of a host: its prefix under its tags under the scope (byPrefix), as
  // adaptive and the bandits rank; the follow-ups' P(B | A) stay scope- (or tag-) wide.
  const prefixStats = params.byPrefix ? new PortStats(env.catalog, pickPortStatsParams(params), saved?.prefixes ?? undefined) : null;
  const hierarchy = prefixStats ? new PrefixUnderTag(model.stats, model.marginals, prefixStats, params.tagStrength) : null;
  const marginalsOf = (round: RoundContext): readonly Ranking[] =>
    hierarchy ? hierarchy.rank(round.tags, round.prefix) : [model.marginals.rank(round.tags)];
  const byFrequency = env.catalog.byFrequency;
  /**
   * The last round's exploration, as epsilon-greedy's: a share `epsilon` of the visit's probes
   * after the must-have ones (rounded stochastically) are draws from nmap's frequency prior, all
   * taken here (at most the round's ranked room); the ranking fills the rest of that room first.
   * Why: the marginal ranking is greedy on posterior means, so a port whose first few probes
   * came back closed drops below the allowance and is never probed again; on a scope that follows
   * nmap's table (`internet`) that cost cooccurrence 1-2 points against the learners that explore
   * (docs/strategies.md).
   */
  const explore = (picker: PortPicker, round: RoundContext, rankings: readonly Ranking[], rng: Rng): void => {
    const visit = round.probed.length + round.remaining - Math.min(options.mustHave.length, round.probed.length + round.remaining);
    // The share of the visit, rounded stochastically (one draw, not one per probe: a /16 replay makes ~800,000 of these).
    const draws = Math.min(Math.floor(visit * params.epsilon + rng.next()), picker.room);
    if (picker.room > draws) addByScore(picker, rankings, picker.room - draws);
    // The ranking has taken nmap's head: draw from the table past its first port still free
    // (the same distribution as drawing from the whole table and rejecting what cannot be taken).
    const sampler = env.catalog.frequencySampler;
    let head = 0;
    while (head < sampler.size && !picker.canTake(sampler.items[head]!)) head++;
    let misses = 0;
    while (!picker.full && misses < 64) {
      const port = sampler.size === 0 ? samplePriorPort(env.catalog, rng) : sampler.drawFrom(rng, head);
      if (picker.add(port)) misses = 0;
      else misses++;
    }
  };
  const allowanceOf = () => Math.min(options.budget, options.maxPerHost);
  return {
    name: 'cooccurrence',
    options,
    allowance(host: HostContext, rng: Rng) {
      return model.discovery.allowance(host, rng);
    },
    followUpAllowance(host, found, allowance, rng) {
      return model.discovery.followUpAllowance(host, found, allowance, rng);
    },
    select(round: RoundContext, rng: Rng): Decision {
      const sweep = sweepDecision(round, options);
      if (sweep !== null) return sweep;
      const marginal = marginalsOf(round);
      const history = historyOf(round, params.historyCap);
      if (round.round === 0 && params.rounds > 1) {
        const seeds = Math.max(options.mustHave.length + history.length, Math.ceil(params.seedShare * round.remaining));
        const picker = new PortPicker(round, options, Math.min(seeds, round.remaining));
        picker.addAll(history);
        addByScore(picker, marginal);
        fillRest(picker, byFrequency);
        return { ports: picker.ports, followUp: picker.ports.length < round.remaining };
      }
      // Split what remains evenly over the rounds left; the last round takes everything.
      const last = round.round >= params.rounds - 1;
      const limit = last ? round.remaining : Math.ceil(round.remaining / (params.rounds - round.round));
      // The discovery slice goes into the last round (round 0 when there is only one).
      const { slice, rankLimit } = last ? discoveryRoom(model.discovery, round, options, limit) : { slice: [], rankLimit: limit };
      const picker = new PortPicker(round, options, rankLimit);
      picker.addAll(history);
      const rankings = round.found.length > 0 ? [model.followUps(round.tags, round.found), ...marginal] : marginal;
      if (last && params.epsilon > 0) explore(picker, round, rankings, rng);
      addByScore(picker, rankings);
      picker.setLimit(limit);
      picker.addAll(slice);
      addByScore(picker, rankings);
      fillRest(picker, byFrequency);
      // A capped first look asks for one more round: if the host answered, it gets the rest.
      return {
        ports: picker.ports,
        followUp: (!last && picker.ports.length < round.remaining) || (round.round === 0 && model.discovery.capped(round)),
      };
    },
    observe(results) {
      return model.observe(results, prefixStats ? (r) => prefixStats.observe({ ...r, tags: [r.prefix] }) : undefined);
    },
    state() {
      return prefixStats ? { ...model.state(), prefixes: prefixStats.toJSON() } : model.state();
    },
    explain(limit = 20): Explanation {
      const total = allowanceOf();
      const mustHave = Math.min(options.mustHave.length, total);
      // Discovery slices and the prior draws of the last round.
      const exploration = Math.min(
        total - mustHave,
        Math.floor(params.discoveryShare * (total - mustHave)) + Math.round(params.epsilon * (total - mustHave)),
      );
      return {
        strategy: 'cooccurrence',
        groups: model.groups(limit),
        split: sweepSplit(options) ?? { mustHave, fixed: 0, history: 0, learned: total - mustHave - exploration, exploration },
        notes: [
          `round 0 probes ${Math.ceil(params.seedShare * total)} seed ports, ${params.rounds - 1} follow-up round(s) spend the rest on P(B | found)` +
            (params.epsilon > 0 ? `, ~${Math.round(params.epsilon * (total - mustHave))} of them drawn from nmap's frequency prior` : ''),
          prefixStats
            ? `marginals: a host's /24 (/64) ranked under its tags (per-prefix statistics for ${countOf(prefixStats.tags().length, 'prefix', 'prefixes')})`
            : 'marginals: the tags alone (byPrefix off)',
          `round 0 re-verifies up to ${countOf(params.historyCap, 'port')} the host had open at its last visit (counted as learned)`,
          ...model.discovery.describe(Math.max(0, model.stats.epoch + 1)),
          ...model.topPairs(Math.min(limit, 10)),
        ],
      };
    },
  };
}

/** The `cooccurrence` strategy: seed ports, then follow-ups ranked by learned P(B | A). */
export const cooccurrenceStrategy: StrategyDefinition<CooccurrenceParams, CooccurrenceState> = {
  name: 'cooccurrence',
  summary: 'Learns P(port B open | port A open) (as GPS does): probes seed ports, then the ports most likely given what was found.',
  parameters,
  parseParams: (raw) => parseParameters<CooccurrenceParams>('cooccurrence', parameters, raw),
  create: createCooccurrence,
  merge: mergeCooccurrenceStates,
};
