import { PortbanditError, PortRanges, type Rng } from '../src/core/index.js';
import {
  type CooccurrenceParams,
  type CooccurrenceState,
  CooccurrenceModel,
  mergeCooccurrenceStates,
  pairParameters,
} from './cooccurrence.js';
import { validatePairCounts } from './cooccurrence/pair-counts.js';
import type { SweepOdds, SweepPlannerState, SweepYieldState } from './discovery/sweep-planner.js';
import { PrefixUnderTag, type Ranking, addByScore, fillRest } from './cooccurrence/ranking.js';
import {
  type DiscoveryDefaults,
  type DiscoveryParams,
  type DiscoveryState,
  discoveryParameters,
  discoveryRoom,
  emptyDiscoveryState,
  sweepDecision,
  sweepSplit,
} from './discovery/discovery.js';
import { type GuardParams, guardParameters } from './guards.js';
import { parseParameters } from './options.js';
import { historyCapParameter, historyOf, reverifiedCount } from './history.js';
import { PortPicker } from './port-picker.js';
import { type PortStatsParams, type PortStatsState, PortStats, pickPortStatsParams, portStatsParameters } from './stats/port-stats.js';
import type {
  BudgetSplit,
  CommonOptions,
  Decision,
  Explanation,
  HostContext,
  HostResult,
  ParameterSpec,
  RoundContext,
  Strategy,
  StrategyDefinition,
  StrategyEnv,
} from './types.js';
import { countOf } from './describe.js';

/**
 * `adaptive`, the recommended default. Per host-epoch:
 *
 *   round 0: must-have ports, the host's previously open ports (re-verification), then the
 *            ports the model rates highest for this host: per-tag and per-/24 learned
 *            estimates, and co-occurrence with what was open on the host last time;
 *   round 1: the rest, ranked by co-occurrence with what round 0 found (then the learned
 *            ranking), minus an exploration share drawn from nmap's frequency prior among ports
 *            the model has not measured yet.
 *
 * Discovery, seed sweeps included, is the shared layer every learner composes with
 * (strategies/discovery/): one live host (answered last time, not a pseudo-service) of each
 * prefix that is due (not swept for `resweepEpochs`) gets a full sweep of every probeable port,
 * funded by lowering the other hosts' allowance so that the AVERAGE allowance stays at the
 * budget (arithmetic in strategies/discovery/sweep-planner.ts). adaptive's defaults are the
 * layer's cumulative-yield mode (sweeps at full share from the first epoch that can fund them,
 * the share following the yield since the first sweep), which is exactly how adaptive swept
 * when the sweeps were its own.
 *
 * Everything learned is discounted per epoch (`discount`), so services that went away are
 * unlearned; the host's own history is by construction only its last scan.
 */

export interface AdaptiveParams
  extends PortStatsParams, GuardParams, DiscoveryParams, Pick<CooccurrenceParams, 'pairStrength' | 'pairCap' | 'byTag' | 'priorTop'> {
  readonly historyCap: number;
  readonly seedShare: number;
  readonly byPrefix: boolean;
  readonly followUp: boolean;
}

/** The plain-JSON state of `adaptive`. */
export interface AdaptiveState extends CooccurrenceState {
  /** Per-/24 (or /64) statistics; their "tags" are prefixes. Null when byPrefix is off. */
  readonly prefixes: PortStatsState | null;
  /** Teaching host results seen, and how many of them were sweep-eligible (alive, not pseudo). */
  readonly hosts: number;
  readonly eligible: number;
  /** Previously open ports re-verified, summed over teaching results (for explain's split). */
  readonly reverified: number;
  /** States written before the sweep tier moved into the shared discovery layer (now `discovery.sweeps`) carry it here; read, never written. */
  readonly sweeps?: SweepPlannerState;
  readonly sweepYield?: SweepYieldState;
}

/** Default share of a live host's allowance `adaptive` spends on coordinated discovery. */
export const ADAPTIVE_DISCOVERY_SHARE = 0.2;

/**
 * adaptive's discovery defaults: the sweep tier in cumulative-yield mode (memory 1, prior 1: full
 * share from the start, the share following hits per sweep since the first sweep), 0.7 of the
 * budget at most, full share at 10 hits per sweep, and slices whose width follows their yield.
 * Until issue 12's fifth round the share was 0.6 and the slices fixed (adaptive's sweeps from
 * before the tier was shared, probe for probe); docs/strategies.md has the before/after figures.
 */
export const ADAPTIVE_DISCOVERY: DiscoveryDefaults = Object.freeze({
  discoveryShare: ADAPTIVE_DISCOVERY_SHARE,
  sweepShare: 0.7,
  sweepTarget: 10,
  yieldMemory: 1,
  yieldPrior: 1,
  sweepMinBudget: 0,
  sweepWithinShare: false,
  sliceYield: true,
});

/** Default weight of nmap's prior behind scope-wide estimates, in pseudo-hosts. */
export const ADAPTIVE_PRIOR_STRENGTH = 300;

const parameters: readonly ParameterSpec[] = Object.freeze([
  historyCapParameter,
  {
    name: 'seedShare',
    type: 'number',
    default: 0.5,
    min: 0.01,
    max: 1,
    description:
      'Share of the allowance probed in round 0 (must-have + history + best learned ports); the rest follows up on what round 0 found.',
  },
  {
    name: 'byPrefix',
    type: 'boolean',
    default: true,
    description:
      "Keep statistics per network prefix (/24, /64) too, so a subnet's own ports (an organisation's long tail) spread to its other hosts.",
  },
  {
    name: 'followUp',
    type: 'boolean',
    default: true,
    description:
      'Scan in two rounds (the second ranked by co-occurrence with what the first found; a host that answered nothing at its last visit gets one); false = one round per host (no agent round-trip).',
  },
  ...pairParameters,
  // adaptive trusts nmap's table more than the bandits do: on a scope that follows it, learned
  // estimates of ports ranked 50-200 are noise for thousands of host results.
  ...portStatsParameters.map((p) => (p.name === 'priorStrength' ? { ...p, default: ADAPTIVE_PRIOR_STRENGTH } : p)),
  ...discoveryParameters(ADAPTIVE_DISCOVERY),
  ...guardParameters,
]);

function validateState(state: unknown): AdaptiveState {
  if (state === null || typeof state !== 'object' || !('stats' in state) || !('pairs' in state) || !('prefixes' in state)) {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected an adaptive state {stats, pairs, prefixes, hosts, eligible, reverified}', {
      where: 'state',
    });
  }
  const s = state as AdaptiveState;
  for (const field of ['hosts', 'eligible', 'reverified'] as const) {
    if (typeof s[field] !== 'number' || !(s[field] >= 0)) {
      throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected a non-negative number', { where: `state.${field}` });
    }
  }
  validatePairCounts(s.pairs, 'state.pairs');
  return s;
}

/** Whether a host may be swept: it answered last time, and not like a pseudo-service host. */
function sweepEligible(previousOpen: readonly number[], params: AdaptiveParams, options: CommonOptions): boolean {
  return previousOpen.length > 0 && previousOpen.length < Math.min(params.pseudoMinOpen, options.pseudoThreshold);
}

function createAdaptive(options: CommonOptions, params: AdaptiveParams, env: StrategyEnv, raw?: AdaptiveState): Strategy<AdaptiveState> {
  const state = raw === undefined ? undefined : validateState(raw);
  const model = new CooccurrenceModel(options, params, env, state);
  const prefixStats = params.byPrefix ? new PortStats(env.catalog, pickPortStatsParams(params), state?.prefixes ?? undefined) : null;
  const hierarchy = prefixStats ? new PrefixUnderTag(model.stats, model.marginals, prefixStats, params.tagStrength) : null;
  let hosts = state?.hosts ?? 0;
  let eligible = state?.eligible ?? 0;
  let reverified = state?.reverified ?? 0;
  const byFrequency = env.catalog.byFrequency;
  const base = Math.min(options.budget, options.maxPerHost);

  // Follow-ups, the tag marginals and the prefix marginals, merged by `addByScore` as it picks
  // (a port's effective score is its best in any of them). Materialising the tag+prefix merge
  // per host copied the ~1,000-port tag ranking for every host whose (tags, prefix) had not been
  // seen since the last batch: in the coordinator's shuffled order, nearly every host (~24 KB).
  function rankings(host: HostContext, evidence: readonly number[]): Ranking[] {
    const followUps = model.followUps(host.tags, evidence);
    return hierarchy ? [followUps, ...hierarchy.rank(host.tags, host.prefix)] : [followUps, model.marginals.rank(host.tags)];
  }

  const discovery = model.discovery;

  return {
    name: 'adaptive',
    options,
    allowance(host: HostContext, rng: Rng): number {
      // A planned sweep, or by liveness from what the sweeps leave (the shared layer).
      return discovery.allowance(host, rng);
    },
    followUpAllowance(host, found, allowance, rng) {
      return discovery.followUpAllowance(host, found, allowance, rng);
    },
    select(round: RoundContext, _rng: Rng): Decision {
      const total = round.probed.length + round.remaining;
      // A sweep (planned, or a budget that covers every port): everything probeable in one round.
      const sweep = sweepDecision(round, options);
      if (sweep !== null) return sweep;
      // A host that answered nothing at its last visit gets one round, as the bandits give every
      // host: a follow-up ranked by what its first round found would mostly follow up on nothing,
      // and each round costs the agent a scanner run and the coordinator a lease and a submit
      // (most addresses of a scope are silent). If it answers, a capped first look still gets
      // the rest of an answering host's allowance as its next round, ranked by what it found.
      const oneRound = !params.followUp || (round.round === 0 && round.previousEpoch >= 0 && round.previousOpen.length === 0);
      const last = round.round > 0 || oneRound;
      const { slice, rankLimit } = last
        ? discoveryRoom(discovery, round, options)
        : { slice: [] as readonly number[], rankLimit: round.remaining };
      const reserve =
        round.round === 0 && !last ? Math.min(discovery.slice(round).length, Math.max(0, total - options.mustHave.length)) : 0;
      if (round.round === 0) {
        const history = historyOf(round, params.historyCap);
        const seeds = !oneRound ? Math.max(Math.ceil(params.seedShare * total), options.mustHave.length + history.length) : rankLimit;
        const picker = new PortPicker(round, options, Math.min(rankLimit, round.remaining - reserve, seeds));
        picker.addAll(history);
        const ranked = rankings(round, round.previousOpen);
        addByScore(picker, ranked);
        if (oneRound) {
          picker.setLimit(round.remaining);
          picker.addAll(slice);
          addByScore(picker, ranked);
          fillRest(picker, byFrequency);
          // A capped first look asks for one more round: if the host answered, it gets the rest.
          return { ports: picker.ports, followUp: discovery.capped(round) };
        }
        return { ports: picker.ports, followUp: picker.ports.length < round.remaining || discovery.capped(round) };
      }
      const picker = new PortPicker(round, options, rankLimit);
      const ranked = rankings(round, round.found);
      addByScore(picker, ranked);
      picker.setLimit(round.remaining);
      picker.addAll(slice);
      addByScore(picker, ranked);
      fillRest(picker, byFrequency);
      return { ports: picker.ports, followUp: false };
    },
    observe(results: readonly HostResult[]) {
      return model.observe(results, (r) => {
        prefixStats?.observe({ ...r, tags: [r.prefix] });
        hosts += 1;
        if (sweepEligible(r.previousOpen, params, options)) eligible += 1;
        reverified += reverifiedCount(r);
      });
    },
    state(): AdaptiveState {
      return { ...model.state(), prefixes: prefixStats ? prefixStats.toJSON() : null, hosts, eligible, reverified };
    },
    explain(limit = 20): Explanation {
      const next = Math.max(0, model.stats.epoch + 1);
      const size = PortRanges.ALL.size;
      const odds = discovery.sweepOdds(next, '', '', size);
      const split = sweepSplit(options) ?? splitOf(options, params, base, odds, size, hosts > 0 ? reverified / hosts : 0);
      const groups = [...model.groups(limit)];
      if (prefixStats) {
        for (const prefix of prefixStats.tags()) {
          groups.push({ group: prefix, observations: prefixStats.observations(prefix), top: prefixStats.top(prefix, limit, 0) });
        }
      }
      return {
        strategy: 'adaptive',
        groups,
        split,
        notes: [
          ...discovery.describe(next),
          prefixStats
            ? `per-prefix statistics for ${countOf(prefixStats.tags().length, 'prefix', 'prefixes')}`
            : 'per-prefix statistics off',
          ...model.topPairs(Math.min(limit, 10)),
        ],
      };
    },
  };
}

/**
 * How an average host's allowance splits, in probes: must-have, history (re-verified ports,
 * measured), exploration (prior draws plus the sweeps' probes), and the learned rest. With H
 * hosts and n planned sweeps, a share n/H of hosts is swept and the others get `others`.
 */
function splitOf(
  options: CommonOptions,
  params: AdaptiveParams,
  budget: number,
  odds: SweepOdds,
  size: number,
  history: number,
): BudgetSplit {
  // others = (B*H - n*S)/(H - n) gives the swept share n/H = (B - others)/(S - others).
  const swept = odds.sweeps > 0 && size > odds.others ? (budget - odds.others) / (size - odds.others) : 0;
  const others = odds.others;
  const mustHave = Math.min(options.mustHave.length, others);
  const hist = Math.min(history, Math.max(0, others - mustHave));
  const explore = Math.min(params.discoveryShare * others, Math.max(0, others - mustHave - hist));
  const learned = Math.max(0, others - mustHave - hist - explore);
  const round1 = (x: number) => Math.round(x * 10) / 10;
  return {
    mustHave: round1((1 - swept) * mustHave + swept * options.mustHave.length),
    fixed: 0,
    history: round1((1 - swept) * hist),
    learned: round1((1 - swept) * learned),
    exploration: round1((1 - swept) * explore + swept * (size - options.mustHave.length)),
  };
}

/** Merge two adaptive states learned on disjoint results (order-independent). */
export function mergeAdaptiveStates(x: AdaptiveState, y: AdaptiveState): AdaptiveState {
  const a = withSharedSweeps(x);
  const b = withSharedSweeps(y);
  // The shared model's merge, per-prefix statistics included (null when neither side keeps them).
  const merged = mergeCooccurrenceStates(a, b);
  return {
    ...merged,
    prefixes: merged.prefixes ?? null,
    hosts: a.hosts + b.hosts,
    eligible: a.eligible + b.eligible,
    reverified: a.reverified + b.reverified,
  };
}

/** A state whose sweep tier still sits at the top level (written before it was shared) with it moved into `discovery`. */
function withSharedSweeps(s: AdaptiveState): AdaptiveState {
  if (s.sweeps === undefined && s.sweepYield === undefined) return s;
  const { sweeps, sweepYield, ...rest } = s;
  const d: DiscoveryState = s.discovery ?? emptyDiscoveryState();
  return { ...rest, discovery: { ...d, sweeps: d.sweeps ?? sweeps, sweepYield: d.sweepYield ?? sweepYield } };
}

/** `adaptive`: must-have + history + contextual learned ports + co-occurrence + exploration + seed sweeps. */
export const adaptiveStrategy: StrategyDefinition<AdaptiveParams, AdaptiveState> = {
  name: 'adaptive',
  summary:
    'The recommended default: must-have + re-verified history + per-tag/per-prefix learned ports + co-occurrence follow-ups + prior exploration + budget-neutral seed sweeps.',
  parameters,
  parseParams: (raw) => parseParameters<AdaptiveParams>('adaptive', parameters, raw),
  create: createAdaptive,
  merge: mergeAdaptiveStates,
};
