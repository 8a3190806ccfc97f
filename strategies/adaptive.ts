import { PortbanditError } from '../src/core/errors.js';
import type { Rng } from '../src/core/rng.js';
import { type CooccurrenceParams, type CooccurrenceState, CooccurrenceModel, emptyCooccurrenceState, mergeCooccurrenceStates, pairParameters } from './cooccurrence.js';
import { ExplorationPool } from './cooccurrence/exploration-pool.js';
import { validatePairCounts } from './cooccurrence/pair-counts.js';
import { MeanRanking, type Ranking, addByScore, fillRest } from './cooccurrence/ranking.js';
import { type GuardParams, guardParameters } from './guards.js';
import { parseParameters } from './options.js';
import { PortPicker } from './port-picker.js';
import { type PortStatsParams, type PortStatsState, PortStats, emptyPortStatsState, mergePortStatsStates, pickPortStatsParams, portStatsParameters } from './stats/port-stats.js';
import type { BudgetSplit, CommonOptions, Decision, Explanation, HostContext, HostResult, ParameterSpec, RoundContext, Strategy, StrategyDefinition, StrategyEnv } from './types.js';

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
 * Seed sweeps: a few hosts per epoch (chosen at random among hosts known to be alive and not
 * pseudo-services) get a full sweep of every probeable port, so ports no list knows are found.
 * Budget-neutral on average (see planSweeps and docs/strategies.md): an eligible host is swept
 * (S probes) with probability q = sweepShare*B/S and otherwise gets b' = (B - q*S)/(1 - q), so
 * its expected allowance is exactly the budget B; ineligible hosts get B.
 *
 * Everything learned is discounted per epoch (`discount`), so services that went away are
 * unlearned; the host's own history is by construction only its last scan.
 */

export interface AdaptiveParams extends PortStatsParams, GuardParams, Pick<CooccurrenceParams, 'pairStrength' | 'pairCap' | 'byTag' | 'priorTop'> {
  readonly historyCap: number;
  readonly seedShare: number;
  readonly explorationShare: number;
  readonly exploreTrials: number;
  readonly sweepShare: number;
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
}

const parameters: readonly ParameterSpec[] = Object.freeze([
  {
    name: 'historyCap',
    type: 'integer',
    default: 32,
    min: 0,
    max: 65535,
    description: "Previously open ports of a host re-verified first each epoch (at most this many; a pseudo-service host's history is capped).",
  },
  {
    name: 'seedShare',
    type: 'number',
    default: 0.5,
    min: 0.01,
    max: 1,
    description: 'Share of the allowance probed in round 0 (must-have + history + best learned ports); the rest follows up on what round 0 found.',
  },
  {
    name: 'explorationShare',
    type: 'number',
    default: 0.1,
    min: 0,
    max: 1,
    description: "Share of each host's allowance drawn from nmap's frequency prior among ports the model has not measured yet (discovery and unlearning).",
  },
  {
    name: 'exploreTrials',
    type: 'number',
    default: 30,
    min: 0,
    max: 1e9,
    description: 'A port with at least this many (discounted) scope-wide trials counts as measured and is not drawn for exploration.',
  },
  {
    name: 'sweepShare',
    type: 'number',
    default: 0.05,
    min: 0,
    max: 0.9,
    description: 'Share of the total budget spent on seed sweeps: full sweeps of all probeable ports on a few random live hosts per epoch (budget-neutral on average).',
  },
  {
    name: 'byPrefix',
    type: 'boolean',
    default: true,
    description: "Keep statistics per network prefix (/24, /64) too, so a subnet's own ports (an organisation's long tail) spread to its other hosts.",
  },
  {
    name: 'followUp',
    type: 'boolean',
    default: true,
    description: 'Scan in two rounds (the second ranked by co-occurrence with what the first found); false = one round per host (no agent round-trip).',
  },
  ...pairParameters,
  ...portStatsParameters,
  ...guardParameters,
]);

function validateState(state: unknown): AdaptiveState {
  if (state === null || typeof state !== 'object' || !('stats' in state) || !('pairs' in state) || !('prefixes' in state)) {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected an adaptive state {stats, pairs, prefixes, hosts, eligible, reverified}', { where: 'state' });
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

/** The sweep arithmetic for one probeable size: sweep probability and the others' allowance. */
export interface SweepPlan {
  /** Probability that a sweep-eligible host is swept. */
  readonly q: number;
  /** Allowance of an eligible host that is not swept (average; rounded stochastically per host). */
  readonly others: number;
  /** Probes of one sweep. */
  readonly size: number;
}

/**
 * Budget-neutral seed sweeps. Only sweep-eligible hosts carry the cost: with budget B, sweep
 * size S and sweep share s, an eligible host is swept with probability q = min(1, s*B/S) and
 * otherwise gets b' = (B - q*S) / (1 - q) = B*(1 - s) / (1 - q) probes, so its expected
 * allowance q*S + (1 - q)*b' is exactly B; ineligible hosts get B. The average is B for any mix
 * of hosts, with no estimate of how many are eligible.
 */
export function planSweeps(budget: number, size: number, sweepShare: number): SweepPlan {
  if (sweepShare <= 0 || size <= budget) return { q: 0, others: budget, size };
  const q = Math.min(1, (sweepShare * budget) / size);
  const others = q >= 1 ? 0 : Math.max(0, (budget - q * size) / (1 - q));
  return { q, others, size };
}

function createAdaptive(options: CommonOptions, params: AdaptiveParams, env: StrategyEnv, raw?: AdaptiveState): Strategy<AdaptiveState> {
  const state = raw === undefined ? undefined : validateState(raw);
  const model = new CooccurrenceModel(options, params, env, state);
  const prefixStats = params.byPrefix ? new PortStats(env.catalog, pickPortStatsParams(params), state?.prefixes ?? undefined) : null;
  const prefixRanking = prefixStats ? new MeanRanking(prefixStats, 0) : null;
  let hosts = state?.hosts ?? 0;
  let eligible = state?.eligible ?? 0;
  let reverified = state?.reverified ?? 0;
  const byFrequency = env.catalog.byFrequency;
  const base = Math.min(options.budget, options.maxPerHost);

  // Share of hosts that were sweep-eligible, for explain()'s split only.
  const eligibleShare = () => (eligible + 1) / (hosts + 2);
  const plan = (probeable: number) => planSweeps(base, Math.min(probeable, options.maxPerHost), params.sweepShare);

  function rankings(host: HostContext, evidence: readonly number[]): Ranking[] {
    const out = [model.followUps(host.tags, evidence), model.marginals.rank(host.tags)];
    if (prefixRanking) out.push(prefixRanking.rank([host.prefix]));
    return out;
  }

  /** Exploration slots of a host-epoch whose allowance is `total`. */
  const explorationOf = (total: number) => Math.min(total, Math.round(params.explorationShare * total));

  const pool = new ExplorationPool(env.catalog, model.stats, params.exploreTrials);
  const explore = (picker: PortPicker, count: number, rng: Rng) => pool.addTo(picker, count, rng);

  return {
    name: 'adaptive',
    options,
    allowance(host: HostContext, rng: Rng): number {
      if (!sweepEligible(host.previousOpen, params, options)) return base;
      const p = plan(host.probeable.size);
      if (p.q > 0 && rng.next() < p.q) return p.size;
      // Stochastic rounding keeps the average allowance at `others` exactly.
      const whole = Math.floor(p.others);
      return Math.min(base, whole + (rng.next() < p.others - whole ? 1 : 0));
    },
    select(round: RoundContext, rng: Rng): Decision {
      const total = round.probed.length + round.remaining;
      if (round.round === 0 && total > base && total >= Math.min(round.probeable.size, options.maxPerHost)) {
        // A seed sweep: everything probeable (must-have ports go first anyway).
        const picker = new PortPicker(round, options);
        picker.addSweep();
        return { ports: picker.ports, followUp: false };
      }
      const exploration = explorationOf(total);
      if (round.round === 0) {
        const history = round.previousOpen.length <= params.historyCap ? round.previousOpen : round.previousOpen.slice(0, params.historyCap);
        const learnedRoom = total - exploration;
        const seeds = params.followUp ? Math.max(Math.ceil(params.seedShare * total), options.mustHave.length + history.length) : total;
        const picker = new PortPicker(round, options, Math.min(round.remaining, seeds));
        picker.addAll(history);
        const ranked = rankings(round, round.previousOpen);
        addByScore(picker, ranked, Math.max(0, learnedRoom - picker.ports.length));
        if (!params.followUp) {
          explore(picker, exploration, rng);
          addByScore(picker, ranked);
          fillRest(picker, byFrequency);
          return { ports: picker.ports, followUp: false };
        }
        return { ports: picker.ports, followUp: picker.ports.length < round.remaining };
      }
      const picker = new PortPicker(round, options);
      const ranked = rankings(round, round.found);
      addByScore(picker, ranked, Math.max(0, round.remaining - exploration));
      explore(picker, exploration, rng);
      addByScore(picker, ranked);
      fillRest(picker, byFrequency);
      return { ports: picker.ports, followUp: false };
    },
    observe(results: readonly HostResult[]) {
      return model.observe(results, (r) => {
        prefixStats?.observe({ ...r, tags: [r.prefix] });
        hosts += 1;
        if (sweepEligible(r.previousOpen, params, options)) eligible += 1;
        if (r.previousOpen.length > 0) {
          const probed = new Set(r.probed);
          for (const p of r.previousOpen) if (probed.has(p)) reverified += 1;
        }
      });
    },
    state(): AdaptiveState {
      return { ...model.state(), prefixes: prefixStats ? prefixStats.toJSON() : null, hosts, eligible, reverified };
    },
    explain(limit = 20): Explanation {
      const split = splitOf(options, params, base, plan(options.maxPerHost), eligibleShare(), hosts > 0 ? reverified / hosts : 0);
      const groups = [...model.groups(limit)];
      if (prefixStats) {
        for (const prefix of prefixStats.tags()) {
          groups.push({ group: prefix, observations: prefixStats.observations(prefix), top: prefixStats.top(prefix, limit, 0) });
        }
      }
      const p = plan(options.maxPerHost);
      return {
        strategy: 'adaptive',
        groups,
        split,
        notes: [
          `seed sweeps: ${(p.q * 100).toFixed(3)}% of live hosts (about ${(p.q * eligibleShare() * 100).toFixed(3)}% of all) per epoch get all ${p.size} ports; other live hosts get ${p.others.toFixed(1)} probes on average, the rest ${base}`,
          `exploration: ${explorationOf(Math.round(p.others))} probes per host drawn from nmap's prior among ${pool.size} ports with < ${params.exploreTrials} trials`,
          prefixStats ? `per-prefix statistics for ${prefixStats.tags().length} prefixes` : 'per-prefix statistics off',
          ...model.topPairs(Math.min(limit, 10)),
        ],
      };
    },
  };
}

/**
 * How an average host's allowance splits, in probes: must-have, history (re-verified ports,
 * measured), exploration (prior draws plus the sweeps' probes), and the learned rest. A share
 * f*q of hosts is swept (f = eligible share); the others average (B - f*q*S) / (1 - f*q).
 */
function splitOf(options: CommonOptions, params: AdaptiveParams, budget: number, p: SweepPlan, eligibleShare: number, history: number): BudgetSplit {
  const swept = p.q * eligibleShare;
  const others = swept >= 1 ? 0 : (budget - swept * p.size) / (1 - swept);
  const mustHave = Math.min(options.mustHave.length, others);
  const hist = Math.min(history, Math.max(0, others - mustHave));
  const explore = Math.min(params.explorationShare * others, Math.max(0, others - mustHave - hist));
  const learned = Math.max(0, others - mustHave - hist - explore);
  const round1 = (x: number) => Math.round(x * 10) / 10;
  return {
    mustHave: round1((1 - swept) * mustHave + swept * options.mustHave.length),
    fixed: 0,
    history: round1((1 - swept) * hist),
    learned: round1((1 - swept) * learned),
    exploration: round1((1 - swept) * explore + swept * (p.size - options.mustHave.length)),
  };
}

/** Merge two adaptive states learned on disjoint results (order-independent). */
export function mergeAdaptiveStates(a: AdaptiveState, b: AdaptiveState): AdaptiveState {
  const prefixes = a.prefixes === null && b.prefixes === null ? null : mergePortStatsStates(a.prefixes ?? emptyPortStatsState(a.stats.discount), b.prefixes ?? emptyPortStatsState(b.stats.discount));
  return {
    ...mergeCooccurrenceStates(a, b),
    prefixes,
    hosts: a.hosts + b.hosts,
    eligible: a.eligible + b.eligible,
    reverified: a.reverified + b.reverified,
  };
}

/** The empty adaptive state. */
export function emptyAdaptiveState(discount: number): AdaptiveState {
  return { ...emptyCooccurrenceState(discount), prefixes: null, hosts: 0, eligible: 0, reverified: 0 };
}

/** `adaptive`: must-have + history + contextual learned ports + co-occurrence + exploration + seed sweeps. */
export const adaptiveStrategy: StrategyDefinition<AdaptiveParams, AdaptiveState> = {
  name: 'adaptive',
  summary: 'The recommended default: must-have + re-verified history + per-tag/per-prefix learned ports + co-occurrence follow-ups + prior exploration + budget-neutral seed sweeps.',
  parameters,
  parseParams: (raw) => parseParameters<AdaptiveParams>('adaptive', parameters, raw),
  create: createAdaptive,
  merge: mergeAdaptiveStates,
};
