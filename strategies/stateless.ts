import type { Rng } from '../src/core/index.js';
import { PortPicker } from './port-picker.js';
import type { BatchVerdict, CommonOptions, Decision, Explanation, HostContext, RoundContext, Strategy } from './types.js';

/** The empty state of strategies that learn nothing. */
export type NoState = Record<string, never>;

/**
 * A strategy that learns nothing: the same ranking for every host. `rank` lists candidates in
 * priority order (for `random`, drawn with the host's RNG); the picker enforces the contract.
 */
export function statelessStrategy(
  name: string,
  options: CommonOptions,
  rank: (round: RoundContext, rng: Rng, picker: PortPicker) => void,
  explain: (limit: number) => Explanation['groups'][number]['top'],
): Strategy<NoState> {
  return {
    name,
    options,
    learns: false,
    allowance(_host: HostContext) {
      return Math.min(options.budget, options.maxPerHost);
    },
    select(round: RoundContext, rng: Rng): Decision {
      const picker = new PortPicker(round, options);
      rank(round, rng, picker);
      return { ports: picker.ports, followUp: false };
    },
    observe(): BatchVerdict {
      return { learned: 0, pseudo: 0, lossy: false };
    },
    state() {
      return {};
    },
    explain(limit = 20): Explanation {
      const ranked = Math.max(0, Math.min(options.budget, options.maxPerHost) - options.mustHave.length);
      return {
        strategy: name,
        groups: [{ group: '*', observations: 0, top: explain(limit) }],
        split: { mustHave: options.mustHave.length, fixed: ranked, history: 0, learned: 0, exploration: 0 },
        notes: [`${name} does not learn: every host gets the same ranking.`],
      };
    },
  };
}

/**
 * A stateless strategy that probes one fixed ranking in order (fixed, top-k). The first round
 * of a host whose every port is probeable depends only on the allowance, so it is picked once
 * and copied: a /16 replay asks the same question 786,432 times.
 */
export function rankedStrategy(
  name: string,
  options: CommonOptions,
  ranking: Iterable<number>,
  explain: (limit: number) => Explanation['groups'][number]['top'],
): Strategy<NoState> {
  const base = statelessStrategy(name, options, (_round, _rng, picker) => picker.addAll(ranking), explain);
  let memoFor = -1;
  let memo: readonly number[] = [];
  return {
    ...base,
    select(round: RoundContext, rng: Rng): Decision {
      if (round.round !== 0 || round.probed.length !== 0 || !round.probeable.isAll) return base.select(round, rng);
      if (memoFor !== round.remaining) {
        memo = base.select(round, rng).ports;
        memoFor = round.remaining;
      }
      return { ports: memo.slice(), followUp: false };
    },
  };
}
