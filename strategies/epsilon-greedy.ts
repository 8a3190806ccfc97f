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
import { samplePriorPort } from './stats/sample-prior.js';
import type { ParameterSpec, StrategyDefinition } from './types.js';

export interface EpsilonGreedyParams extends BanditParams {
  /** Share of each host's learned probes spent on exploration. */
  readonly epsilon: number;
  /** Share of exploration probes drawn uniformly from all probeable ports (the rest follow nmap's frequencies). */
  readonly uniformShare: number;
}

const parameters: ParameterSpec[] = [
  {
    name: 'epsilon',
    type: 'number',
    default: 0.1,
    min: 0,
    max: 1,
    description: 'Share of the probes after must-have ones spent exploring (each probe independently).',
  },
  {
    name: 'uniformShare',
    type: 'number',
    default: 0.2,
    min: 0,
    max: 1,
    description: "Share of exploration probes drawn uniformly from all probeable ports; the rest are drawn by nmap's open frequency.",
  },
  ...banditParameters(300),
];

/**
 * Epsilon-greedy over ports, scope-wide (not contextual: the baseline bandit): each probe slot is
 * greedy (highest posterior mean) with probability 1 - epsilon, otherwise exploration drawn from
 * nmap's frequency prior or uniformly.
 */
export const epsilonGreedyStrategy: StrategyDefinition<EpsilonGreedyParams, BanditState> = {
  name: 'epsilon-greedy',
  summary: "Scope-wide epsilon-greedy: the highest posterior means, plus an epsilon share drawn from nmap's frequency prior.",
  parameters,
  parseParams: (raw) => parseParameters<EpsilonGreedyParams>('epsilon-greedy', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const discovery = restoreDiscovery(options, params, env.catalog, state?.discovery);
    let cached: { version: number; ports: number[] } | undefined;
    const greedy = (): number[] => {
      if (cached?.version !== stats.version) {
        const t = stats.table([], params.candidatePool);
        cached = { version: stats.version, ports: topIndices(t.mean, t.mean.length).map((i) => t.ports[i]!) };
      }
      return cached.ports;
    };
    return createBanditStrategy({
      name: 'epsilon-greedy',
      options,
      env,
      params,
      stats,
      discovery,
      rank(round, rng, picker) {
        let explore = 0;
        const room = picker.room;
        for (let i = 0; i < room; i++) if (rng.next() < params.epsilon) explore++;
        const ranked = greedy();
        let g = 0;
        while (picker.room > explore && g < ranked.length) picker.add(ranked[g++]!);
        let misses = 0;
        while (!picker.full && misses < 64) {
          const port =
            rng.next() < params.uniformShare ? round.probeable.nth(rng.int(round.probeable.size)) : samplePriorPort(env.catalog, rng);
          if (picker.add(port)) misses = 0;
          else misses++;
        }
        while (!picker.full && g < ranked.length) picker.add(ranked[g++]!);
      },
      split: (room) => ({ learned: Math.round(room * (1 - params.epsilon)), exploration: room - Math.round(room * (1 - params.epsilon)) }),
      notes: ['Not contextual: one scope-wide ranking (tags are kept in the statistics for explain and for other strategies).'],
    });
  },
  merge: mergeBanditStates,
};
