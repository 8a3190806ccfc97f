import { type BanditParams, type BanditState, banditParameters, createBanditStrategy, mergeBanditStates, restoreStats, topIndices } from './bandit-base.js';
import { parseParameters } from './options.js';
import { sampleBeta } from './stats/sample-beta.js';
import type { StrategyDefinition } from './types.js';

export type ThompsonParams = BanditParams;

const parameters = banditParameters(300);

/**
 * Thompson sampling over ports (combinatorial, semi-bandit): for each host, draw an open
 * probability for every candidate port from its Beta posterior (per scope tag, with the
 * hierarchical prior tag -> scope -> nmap frequency) and probe the ports with the highest draws.
 * Exploration is implicit: an uncertain port sometimes draws high. Only candidates are sampled
 * (ports seen open + nmap's top `candidatePool`); any remainder is filled in nmap's order.
 */
export const thompsonStrategy: StrategyDefinition<ThompsonParams, BanditState> = {
  name: 'thompson',
  summary: 'Contextual Thompson sampling: per-tag Beta-Bernoulli posteriors with a scope and nmap prior; top-k by sampled open probability.',
  parameters,
  parseParams: (raw) => parseParameters<ThompsonParams>('thompson', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
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
        for (const i of topIndices(draws, picker.room, (j) => draws[j]! >= 0)) picker.add(t.ports[i]!);
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: ['Exploration is implicit in the posterior draws: the learned share explores uncertain ports.'],
    });
  },
  merge: mergeBanditStates,
};
