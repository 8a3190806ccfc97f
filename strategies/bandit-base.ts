import type { PortCatalog } from '../src/catalog/index.js';
import { PortbanditError, type Rng } from '../src/core/index.js';
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
import { type GuardParams, guardParameters, pickGuardParams, screenBatch } from './guards.js';
import { addHistory, historyCapParameter, reverifiedCount } from './history.js';
import { PortPicker } from './port-picker.js';
import {
  PortStats,
  type PortStatsParams,
  type PortStatsState,
  emptyPortStatsState,
  mergePortStatsStates,
  pickPortStatsParams,
  portStatsParameters,
} from './stats/port-stats.js';
import type {
  BatchVerdict,
  BudgetSplit,
  CommonOptions,
  Decision,
  Explanation,
  HostContext,
  HostResult,
  ParameterSpec,
  RoundContext,
  Strategy,
  StrategyEnv,
} from './types.js';
import { countOf } from './describe.js';

/**
 * What the per-port bandits (epsilon-greedy, ucb, thompson) share: hierarchical port statistics
 * (strategies/stats/port-stats.ts), the guard rails, one decision per host-epoch, state, merge and
 * explain. Each strategy only says how it ranks ports for a host.
 */

/**
 * The state of a per-port bandit: its port statistics, its discovery cursors (absent in states
 * written before discovery) and, for a bandit that ranks a prefix under its tags, the per-prefix
 * statistics (their "tags" are prefixes; absent otherwise and in older states).
 */
export interface BanditState {
  readonly stats: PortStatsState;
  readonly discovery?: DiscoveryState;
  readonly prefixes?: PortStatsState;
  /** Teaching host results seen, and the previously open ports they re-verified (explain's history share; absent in older states). */
  readonly hosts?: number;
  readonly reverified?: number;
}

/** Parameters every per-port bandit takes. */
export interface BanditParams extends PortStatsParams, GuardParams, DiscoveryParams {
  /** nmap's most frequent ports that are candidates besides the ports seen open. */
  readonly candidatePool: number;
  /** Previously open ports of a host re-verified first (strategies/history.ts). */
  readonly historyCap: number;
}

/** Default share of a live host's allowance the bandits spend on coordinated discovery. */
export const BANDIT_DISCOVERY_SHARE = 0.3;

/**
 * The discovery defaults of the bandits and `cooccurrence` (docs/strategies.md, "Discovery"):
 * coordinated slices at BANDIT_DISCOVERY_SHARE scaled by their measured yield (sliceYield), and the
 * sweep tier following its recent yield. Whole sweeps are paced across epochs where one does not
 * fit in an epoch's share (sweepWithinShare false since stop 43: a 1,024-host scope at 100 had
 * never held one, and its subnet ports were found late or never), and at every budget
 * (sweepMinBudget 0 since stop 44: at 25 the bandits had never swept; on unseen orgtail scopes
 * sweeping there gained 4.9-6.0 points of late coverage on average). docs/strategies.md has the before/after
 * figures.
 */
export const BANDIT_DISCOVERY: DiscoveryDefaults = Object.freeze({
  discoveryShare: BANDIT_DISCOVERY_SHARE,
  sweepShare: 0.8,
  sweepTarget: 100,
  yieldMemory: 0.5,
  yieldPrior: 0.5,
  sweepMinBudget: 0,
  sweepWithinShare: false,
  sliceYield: true,
});

/** ParameterSpecs shared by the per-port bandits (candidate pool, statistics, discovery, guard rails). */
export function banditParameters(candidatePool: number, discovery: DiscoveryDefaults = BANDIT_DISCOVERY): ParameterSpec[] {
  return [
    {
      name: 'candidatePool',
      type: 'integer',
      default: candidatePool,
      min: 0,
      max: 65535,
      description:
        "How many of nmap's most frequent ports are scored for every host besides the ports ever seen open in the scope or the host's tags.",
    },
    historyCapParameter,
    ...portStatsParameters,
    ...discoveryParameters(discovery),
    ...guardParameters,
  ];
}

/** Restore (or start) a bandit's port statistics; a malformed state throws PB_ERR_STRATEGY_STATE. */
export function restoreStats(catalog: PortCatalog, params: BanditParams, state: BanditState | undefined): PortStats {
  if (state === undefined) return new PortStats(catalog, pickPortStatsParams(params));
  if (state === null || typeof state !== 'object' || state.stats === undefined) {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected a bandit state {stats: {...}}', { where: 'state' });
  }
  return new PortStats(catalog, pickPortStatsParams(params), state.stats);
}

/**
 * Restore (or start) a bandit's per-prefix statistics (strategies/cooccurrence/ranking.ts,
 * PrefixUnderTag: the same hierarchy adaptive ranks with); a malformed state throws
 * PB_ERR_STRATEGY_STATE.
 */
export function restorePrefixStats(catalog: PortCatalog, params: BanditParams, state: BanditState | undefined): PortStats {
  return new PortStats(catalog, pickPortStatsParams(params), state?.prefixes);
}

/** Merge two bandit states learned on disjoint results (order-independent). */
export function mergeBanditStates(a: BanditState, b: BanditState): BanditState {
  const merged: BanditState = {
    stats: mergePortStatsStates(a?.stats ?? emptyPortStatsState(), b?.stats ?? emptyPortStatsState()),
    discovery: mergeDiscoveryStates(a?.discovery, b?.discovery),
    hosts: (a?.hosts ?? 0) + (b?.hosts ?? 0),
    reverified: (a?.reverified ?? 0) + (b?.reverified ?? 0),
  };
  if (a?.prefixes === undefined && b?.prefixes === undefined) return merged;
  const discount = (a?.prefixes ?? b?.prefixes)!.discount;
  return {
    ...merged,
    prefixes: mergePortStatsStates(a?.prefixes ?? emptyPortStatsState(discount), b?.prefixes ?? emptyPortStatsState(discount)),
  };
}

/** The discovery layer of a learning strategy, restored from its state (strategies/discovery). */
export function restoreDiscovery(
  options: CommonOptions,
  params: DiscoveryParams & GuardParams,
  catalog: PortCatalog,
  state: DiscoveryState | undefined,
): Discovery {
  return new Discovery(options, pickDiscoveryParams(params), catalog, Math.min(params.pseudoMinOpen, options.pseudoThreshold), state);
}

/** Fill what is left of a decision in nmap's frequency order, then with ports nmap does not know. */
export function fillFromPrior(picker: PortPicker, catalog: PortCatalog): void {
  if (!picker.full) picker.addAll(catalog.byFrequency);
  if (!picker.full) picker.addSweep();
}

/** How one bandit ranks ports for a host, and how it describes its budget. */
export interface BanditSpec {
  readonly name: string;
  readonly options: CommonOptions;
  readonly env: StrategyEnv;
  readonly params: BanditParams;
  readonly stats: PortStats;
  /** Add ports to the picker (must-have ports are already in) in priority order. */
  rank(round: RoundContext, rng: Rng, picker: PortPicker): void;
  /** Learned vs exploration probes of a typical host, given the probes after must-have ones. */
  split(room: number): Pick<BudgetSplit, 'learned' | 'exploration'>;
  readonly notes: readonly string[];
  /** The statistics groups a result teaches (default: its tags); lin-ucb maps hosts to features. */
  groups?(result: HostResult): readonly string[];
  /** Which statistics groups explain() lists besides the scope (default: all). */
  explainGroup?(group: string): boolean;
  /** The shared discovery layer (allowance by liveness, coordinated discovery slices). */
  readonly discovery: Discovery;
  /** Per-prefix statistics (a ranking of the prefix under its tags): taught every result under its prefix, kept in the state. */
  readonly prefixStats?: PortStats;
  /** The state being restored, for its re-verification counts (`hosts`, `reverified`). */
  readonly state?: BanditState;
}

/**
 * A budget split with the discovery share of the room moved out of the learned share into
 * exploration, and the re-verified history (`history` probes per host, measured) out of the
 * learned share.
 */
function withDiscovery(
  split: Pick<BudgetSplit, 'learned' | 'exploration'>,
  mustHave: number,
  share: number,
  room: number,
  history: number,
): BudgetSplit {
  const discovered = Math.min(split.learned, Math.floor(share * room));
  const hist = Math.round(Math.min(history, split.learned - discovered) * 10) / 10;
  return { mustHave, fixed: 0, history: hist, learned: split.learned - discovered - hist, exploration: split.exploration + discovered };
}

/** Build a per-port bandit strategy from its ranking rule. */
export function createBanditStrategy(spec: BanditSpec): Strategy<BanditState> {
  const { options, stats, params } = spec;
  const guards = pickGuardParams(params);
  const discovery = spec.discovery;
  const prefixStats = spec.prefixStats;
  let hosts = spec.state?.hosts ?? 0;
  let reverified = spec.state?.reverified ?? 0;
  return {
    name: spec.name,
    options,
    allowance(host: HostContext, rng: Rng) {
      return discovery.allowance(host, rng);
    },
    followUpAllowance(host, found, allowance, rng) {
      return discovery.followUpAllowance(host, found, allowance, rng);
    },
    select(round: RoundContext, rng: Rng): Decision {
      const sweep = sweepDecision(round, options);
      if (sweep !== null) return sweep;
      const { slice, rankLimit } = discoveryRoom(discovery, round, options);
      const picker = new PortPicker(round, options, rankLimit);
      addHistory(picker, round, params.historyCap);
      if (!picker.full) spec.rank(round, rng, picker);
      picker.setLimit(round.remaining);
      picker.addAll(slice);
      fillFromPrior(picker, spec.env.catalog);
      // A capped first look asks for one more round: if the host answered, it gets the rest.
      return { ports: picker.ports, followUp: round.round === 0 && discovery.capped(round) };
    },
    observe(results: readonly HostResult[]): BatchVerdict {
      const { teach, verdict } = screenBatch(results, options, guards);
      const groupsOf = spec.groups;
      for (const r of teach) stats.observe(groupsOf ? { ...r, tags: groupsOf(r) } : r);
      if (prefixStats) for (const r of teach) prefixStats.observe({ ...r, tags: [r.prefix] });
      for (const r of teach) {
        hosts += 1;
        reverified += reverifiedCount(r);
      }
      discovery.observe(results, teach, verdict.lossy);
      return verdict;
    },
    state(): BanditState {
      const out: BanditState = { stats: stats.toJSON(), discovery: discovery.toJSON(), hosts, reverified };
      return prefixStats ? { ...out, prefixes: prefixStats.toJSON() } : out;
    },
    explain(limit = 20): Explanation {
      const room = Math.max(0, Math.min(options.budget, options.maxPerHost) - options.mustHave.length);
      const groups = [
        { group: '*', observations: stats.observations(null), top: stats.top(null, limit, params.candidatePool) },
        ...stats
          .tags()
          .filter((tag) => !spec.explainGroup || spec.explainGroup(tag))
          .map((tag) => ({ group: tag, observations: stats.observations(tag), top: stats.top(tag, limit, params.candidatePool) })),
      ];
      return {
        strategy: spec.name,
        groups,
        split:
          sweepSplit(options) ??
          withDiscovery(spec.split(room), options.mustHave.length, params.discoveryShare, room, hosts > 0 ? reverified / hosts : 0),
        notes: [
          ...spec.notes,
          `A host's first round re-verifies up to ${countOf(params.historyCap, 'port')} it had open at its last visit (history: the average measured over the results learned).`,
          ...(prefixStats ? [`per-prefix statistics for ${countOf(prefixStats.tags().length, 'prefix', 'prefixes')}`] : []),
          ...discovery.describe(Math.max(0, stats.epoch + 1)),
          `Counts are discounted by ${params.discount} per epoch; observations are discounted host results.`,
        ],
      };
    },
  };
}
