import { parseParameters } from './options.js';
import { type NoState, rankedStrategy } from './stateless.js';
import type { StrategyDefinition } from './types.js';

/** nmap's --top-ports: the most frequently open TCP ports by nmap's table, truncated to the budget. */
export const topKStrategy: StrategyDefinition<Record<string, never>, NoState> = {
  name: 'top-k',
  summary: "nmap's most frequently open TCP ports (--top-ports), truncated to the budget.",
  parameters: [],
  parseParams: (raw) => parseParameters('top-k', [], raw),
  create(options, _params, env) {
    const order = env.catalog.byFrequency;
    return rankedStrategy('top-k', options, order, (limit) =>
      env.catalog.top(limit).map((port) => ({ port, estimate: env.catalog.frequency(port) })),
    );
  },
  merge: () => ({}),
};
