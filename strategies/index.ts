export type * from './types.js';
export { strategies, strategyNames, getStrategy, isStrategyName, type StrategyName } from './registry.js';
export { createStrategy, type StrategySpec } from './build.js';
export { resolveCommonOptions, parseParameters, commonDefaults, type CommonOptionsInput } from './options.js';
export { PortPicker } from './port-picker.js';
export { HostSession, runHostSession, type HostSessionState } from './host-session.js';
