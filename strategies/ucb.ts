import {
  type BanditParams,
  type BanditState,
  banditParameters,
  createBanditStrategy,
  mergeBanditStates,
  restoreDiscovery,
  restoreStats,
  topIndices,
} from './bandit-base.js';
import { parseParameters } from './options.js';
import type { PortStats } from './stats/port-stats.js';
import type { ParameterSpec, StrategyDefinition } from './types.js';

export interface UcbParams extends BanditParams {
  /** Width of the confidence bonus (c). */
  readonly exploration: number;
}

const parameters: ParameterSpec[] = [
  {
    name: 'exploration',
    type: 'number',
    default: 1,
    min: 0,
    max: 100,
    description:
      'Width c of the confidence bonus: index = m + c * sqrt(2 ln N) * sqrt(m(1-m) / (n+1)), from the per-tag posterior Beta(alpha, beta), n = alpha + beta.',
  },
  ...banditParameters(300),
];

/**
 * The optimistic index of every candidate for a context, ranked, cached per statistics version:
 * index = m + c * sqrt(2 ln N) * sd, with m and sd the mean and standard deviation of the
 * hierarchical posterior Beta(alpha, beta) (prior pseudo-counts included) and N the hosts observed
 * in the context: a Gaussian approximation of Bayes-UCB's upper quantile. Because the bonus scales
 * with the posterior sd, a port the prior (nmap, or the scope for a tag) calls rare gets little
 * optimism: a plain 1/sqrt(n) bonus over hundreds of candidates spent whole epochs exploring.
 */
function rankByIndex(
  stats: PortStats,
  tags: readonly string[],
  params: UcbParams,
  cache: Map<string, { version: number; ports: number[] }>,
): number[] {
  const key = tags.join('\u0000');
  const hit = cache.get(key);
  if (hit && hit.version === stats.version) return hit.ports;
  const t = stats.table(tags, params.candidatePool);
  const n0 = tags.length === 0 ? stats.observations(null) : Math.max(...tags.map((tag) => stats.observations(tag)));
  const logN = Math.log(Math.max(Math.E, 1 + n0));
  const index = new Float64Array(t.ports.length);
  for (let i = 0; i < index.length; i++) {
    const n = t.alpha[i]! + t.beta[i]!;
    const m = t.mean[i]!;
    index[i] = m + params.exploration * Math.sqrt(2 * logN) * Math.sqrt((m * (1 - m)) / (n + 1));
  }
  const ports = topIndices(index, index.length).map((i) => t.ports[i]!);
  cache.set(key, { version: stats.version, ports });
  return ports;
}

/**
 * Combinatorial UCB over ports (CUCB): every candidate port gets an optimistic index from its
 * per-tag posterior, and each host probes the top-k indices. Deterministic given the statistics,
 * so one ranking per (tags, statistics version) serves every host.
 */
export const ucbStrategy: StrategyDefinition<UcbParams, BanditState> = {
  name: 'ucb',
  summary: 'Contextual combinatorial UCB: per-tag optimistic index (posterior mean + sqrt(2 ln N) posterior sd); top-k indices.',
  parameters,
  parseParams: (raw) => parseParameters<UcbParams>('ucb', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const discovery = restoreDiscovery(options, params, env.catalog, state?.discovery);
    const cache = new Map<string, { version: number; ports: number[] }>();
    return createBanditStrategy({
      name: 'ucb',
      options,
      env,
      params,
      stats,
      discovery,
      rank(round, _rng, picker) {
        picker.addAll(rankByIndex(stats, round.tags, params, cache));
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: [`Exploration is the confidence bonus (c = ${params.exploration}) inside the learned share.`],
    });
  },
  merge: mergeBanditStates,
};
