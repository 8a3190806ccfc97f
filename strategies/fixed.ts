import { defaultServices, tcpPorts } from '../src/catalog/index.js';
import { parseParameters } from './options.js';
import { type NoState, rankedStrategy } from './stateless.js';
import type { ParameterSpec, StrategyDefinition } from './types.js';

export interface FixedParams {
  /** The list, in probe order; empty means nmap's top 1,000 TCP ports (Natlas's default). */
  readonly ports: readonly number[];
}

const parameters: readonly ParameterSpec[] = [
  {
    name: 'ports',
    type: 'ports',
    default: [],
    description: "The services list in probe order (a Natlas services file's TCP ports); empty = nmap's top 1,000 TCP ports.",
  },
];

/** Natlas's behaviour: a fixed services list, in order, truncated to the budget. */
export const fixedStrategy: StrategyDefinition<FixedParams, NoState> = {
  name: 'fixed',
  summary: 'A fixed services list (Natlas natlas-services), in order, truncated to the budget.',
  parameters,
  parseParams: (raw) => parseParameters<FixedParams>('fixed', parameters, raw),
  create(options, params, env) {
    const list = params.ports.length > 0 ? [...params.ports] : tcpPorts(defaultServices(env.catalog));
    return rankedStrategy('fixed', options, list, (limit) =>
      list.slice(0, limit).map((port) => ({ port, estimate: env.catalog.frequency(port) })),
    );
  },
  merge: () => ({}),
};
