export type * from './types.js';
export { simulate, DEFAULT_BATCH, UNTAGGED } from './replay.js';
export { hostPrefix, createCidrMatcher } from './host-prefix.js';
export { readRollout, type Rollout } from './rollout.js';
