import { PortbanditError } from '../src/core/index.js';
import { adaptiveStrategy } from './adaptive.js';
import { cooccurrenceStrategy } from './cooccurrence.js';
import { epsilonGreedyStrategy } from './epsilon-greedy.js';
import { fixedStrategy } from './fixed.js';
import { linUcbStrategy } from './lin-ucb.js';
import { randomStrategy } from './random.js';
import { thompsonStrategy } from './thompson.js';
import { topKStrategy } from './top-k.js';
import { ucbStrategy } from './ucb.js';
import type { StrategyDefinition } from './types.js';

/**
 * Every strategy, by name. The coordinator and the simulator look strategies up here and
 * nowhere else. Add a strategy: one file in strategies/, one line here.
 */
export const strategies = {
  fixed: fixedStrategy,
  'top-k': topKStrategy,
  random: randomStrategy,
  cooccurrence: cooccurrenceStrategy,
  adaptive: adaptiveStrategy,
  'epsilon-greedy': epsilonGreedyStrategy,
  ucb: ucbStrategy,
  thompson: thompsonStrategy,
  'lin-ucb': linUcbStrategy,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parameters and state are invariant per strategy
} as const satisfies Record<string, StrategyDefinition<any, any>>;

export type StrategyName = keyof typeof strategies;

export const strategyNames = Object.keys(strategies) as StrategyName[];

export function isStrategyName(name: string): name is StrategyName {
  return Object.hasOwn(strategies, name);
}

/** The definition registered under `name`; throws PB_ERR_UNKNOWN_STRATEGY listing the known names. */
export function getStrategy(name: string): StrategyDefinition<object, unknown> {
  if (!isStrategyName(name)) {
    throw new PortbanditError('PB_ERR_UNKNOWN_STRATEGY', `unknown strategy "${name}" (known: ${strategyNames.join(', ')})`, {
      where: 'strategy',
    });
  }
  return strategies[name] as unknown as StrategyDefinition<object, unknown>;
}
