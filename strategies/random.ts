import { parseParameters } from './options.js';
import { type NoState, statelessStrategy } from './stateless.js';
import type { StrategyDefinition } from './types.js';

/** Uniformly random probeable ports: the floor every learning strategy must clear. */
export const randomStrategy: StrategyDefinition<Record<string, never>, NoState> = {
  name: 'random',
  summary: 'Uniformly random probeable ports (after must-have ones): a floor to compare against.',
  parameters: [],
  parseParams: (raw) => parseParameters('random', [], raw),
  create(options) {
    return statelessStrategy(
      'random',
      options,
      (round, rng, picker) => {
        const size = round.probeable.size;
        // Rejection sampling; when the allowance is close to the probeable size, finish with a sweep.
        let misses = 0;
        while (!picker.full && misses < 64) {
          if (picker.add(round.probeable.nth(rng.int(size)))) misses = 0;
          else misses++;
        }
        if (!picker.full) picker.addSweep();
      },
      () => [],
    );
  },
  merge: () => ({}),
};
