import { type BanditParams, type BanditState, banditParameters, createBanditStrategy, mergeBanditStates, restoreStats, topIndices } from './bandit-base.js';
import { parseParameters } from './options.js';
import { PriorTail } from './stats/prior-tail.js';
import { sampleBeta } from './stats/sample-beta.js';
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

/**
 * Thompson sampling over ports (combinatorial, semi-bandit): for each host, draw an open
 * probability for every candidate port from its Beta posterior (per scope tag, with the
 * hierarchical prior tag -> scope -> nmap frequency) and probe the ports with the highest draws.
 * Exploration is implicit: an uncertain port sometimes draws high. Candidates (ports seen open +
 * nmap's top `candidatePool`) are sampled one by one; the rest of the universe is sampled by
 * prior class, which costs a few incomplete-beta evaluations per host.
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
        const draws = new Float64Array(t.ports.length);
        for (let i = 0; i < draws.length; i++) draws[i] = picker.canTake(t.ports[i]!) ? sampleBeta(t.alpha[i]!, t.beta[i]!, rng) : -1;
        const room = picker.room;
        const order = topIndices(draws, room, (j) => draws[j]! >= 0);
        let explorers: number[] = [];
        if (tail && order.length >= room && room > 0) {
          // The room-th best candidate draw is the bar an outside port's draw has to beat.
          const tau = draws[order[room - 1]!]!;
          const cap = Math.ceil(params.tailShare * room);
          explorers = tail.draw(tau, params.tailStrength, params.priorFloor, cap, rng, (p) => picker.canTake(p) && !sortedHas(t.ports, p));
        }
        for (let i = 0; i < room - explorers.length && i < order.length; i++) picker.add(t.ports[order[i]!]!);
        picker.addAll(explorers);
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: ['Exploration is implicit in the posterior draws (candidates one by one, other ports by prior class): the learned share explores uncertain ports.'],
    });
  },
  merge: mergeBanditStates,
};
