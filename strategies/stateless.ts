import type { Rng } from '../src/core/rng.js';
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
