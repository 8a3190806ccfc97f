export type * from './types.js';
export { strategies, strategyNames, getStrategy, isStrategyName, type StrategyName } from './registry.js';
export { createStrategy, type StrategySpec } from './build.js';
export { resolveCommonOptions, parseParameters, commonDefaults, type CommonOptionsInput } from './options.js';
export { PortPicker } from './port-picker.js';
export { FIRST_LOOK, HostSession, runHostSession, type HostSessionState } from './host-session.js';
export {
  screenBatch,
  isPseudoHost,
  looksLossy,
  measureReprobes,
  guardDefaults,
  guardParameters,
  pickGuardParams,
  type GuardParams,
  type ScreenedBatch,
} from './guards.js';
export {
  PortStats,
  portStatsDefaults,
  portStatsParameters,
  pickPortStatsParams,
  emptyPortStatsState,
  mergePortStatsStates,
  betaMean,
  type PortStatsParams,
  type PortStatsState,
  type GroupStatsState,
  type PosteriorTable,
  type BetaParams,
  type PortCounts,
} from './stats/port-stats.js';
export { sampleBeta, sampleGamma, sampleNormal } from './stats/sample-beta.js';
export { samplePriorPort } from './stats/sample-prior.js';
export { PriorTail } from './stats/prior-tail.js';
export { renderParameterTable } from './describe.js';
