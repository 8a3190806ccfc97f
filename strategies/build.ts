import { type CommonOptionsInput, resolveCommonOptions } from './options.js';
import { getStrategy } from './registry.js';
import type { Strategy, StrategyEnv } from './types.js';

/** Everything needed to build a strategy instance: what a tag's policy or a CLI run names. */
export interface StrategySpec extends CommonOptionsInput {
  readonly strategy: string;
  readonly params?: Readonly<Record<string, unknown>>;
}

/** Validate a spec and build a strategy instance, optionally restoring a saved state. */
export function createStrategy(spec: StrategySpec, env: StrategyEnv, state?: unknown): Strategy {
  const definition = getStrategy(spec.strategy);
  const options = resolveCommonOptions(spec);
  const params = definition.parseParams(spec.params ?? {});
  return definition.create(options, params, env, state);
}
