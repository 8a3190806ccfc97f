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
import { MeanRanking, PrefixUnderTag, type Ranking, addByScore } from './cooccurrence/ranking.js';
import { parseParameters } from './options.js';
import { samplePriorPort } from './stats/sample-prior.js';
import type { ParameterSpec, StrategyDefinition } from './types.js';

export interface EpsilonGreedyParams extends BanditParams {
  /** Share of each host's learned probes spent on exploration. */
  readonly epsilon: number;
  /** Share of exploration probes drawn uniformly from all probeable ports (the rest follow nmap's frequencies). */
  readonly uniformShare: number;
  /** Rank a host's /24 (/64) under its tags (true) or by its tags alone. */
  readonly byPrefix: boolean;
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
  {
    name: 'byPrefix',
    type: 'boolean',
    default: true,
    description:
      "Rank each host's network prefix (/24, /64) under its tags, as adaptive does (a subnet's own ports spread to its other hosts, its evidence vetoes ports its tag believes in); false = the tags' estimates alone.",
  },
  ...banditParameters(300),
];

/**
 * Epsilon-greedy over ports: each probe slot is greedy (highest posterior mean of the hierarchical
 * estimate, the host's prefix under its tags under the scope under nmap: the PrefixUnderTag ranking
 * adaptive uses) with probability 1 - epsilon, otherwise exploration drawn from nmap's frequency
 * prior or uniformly.
 */
export const epsilonGreedyStrategy: StrategyDefinition<EpsilonGreedyParams, BanditState> = {
  name: 'epsilon-greedy',
  summary:
    "Epsilon-greedy: the highest posterior means (a host's /24 under its tags under the scope), plus an epsilon share drawn from nmap's frequency prior.",
  parameters,
  parseParams: (raw) => parseParameters<EpsilonGreedyParams>('epsilon-greedy', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const discovery = restoreDiscovery(options, params, env.catalog, state?.discovery);
    const prefixStats = params.byPrefix ? restorePrefixStats(env.catalog, params, state) : undefined;
    const byTag = new MeanRanking(stats, params.candidatePool);
    const hierarchy = prefixStats ? new PrefixUnderTag(stats, byTag, prefixStats, params.tagStrength) : null;
    const rankings = (round: { tags: readonly string[]; prefix: string }): readonly Ranking[] =>
      hierarchy ? hierarchy.rank(round.tags, round.prefix) : [byTag.rank(round.tags)];
    return createBanditStrategy({
      name: 'epsilon-greedy',
      options,
      env,
      params,
      ...(state !== undefined ? { state } : {}),
      stats,
      discovery,
      ...(prefixStats ? { prefixStats } : {}),
      rank(round, rng, picker) {
        let explore = 0;
        const room = picker.room;
        for (let i = 0; i < room; i++) if (rng.next() < params.epsilon) explore++;
        const ranked = rankings(round);
        if (picker.room > explore) addByScore(picker, ranked, picker.room - explore);
        let misses = 0;
        while (!picker.full && misses < 64) {
          const port =
            rng.next() < params.uniformShare ? round.probeable.nth(rng.int(round.probeable.size)) : samplePriorPort(env.catalog, rng);
          if (picker.add(port)) misses = 0;
          else misses++;
        }
        addByScore(picker, ranked);
      },
      split: (room) => ({ learned: Math.round(room * (1 - params.epsilon)), exploration: room - Math.round(room * (1 - params.epsilon)) }),
      notes: [
        params.byPrefix
          ? "Contextual: a host's /24 (/64) ranked under its tags, the tags under the scope (the hierarchy adaptive ranks with)."
          : 'Contextual: ranked by the tags alone (byPrefix off).',
      ],
    });
  },
  merge: mergeBanditStates,
};
