export type * from './types.js';
export { simulate, DEFAULT_BATCH, UNTAGGED } from './replay.js';
export { hostPrefix, createCidrMatcher } from '../src/core/index.js';
export { readRollout, type Rollout } from './rollout.js';
// The synthetic scope generator's public surface (simulator/synthetic/index.ts names it).
export * from './synthetic/index.js';
