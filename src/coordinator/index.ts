export { buildApp, databasePath, type AppOptions } from './app.js';
export { screenshotsPath } from './screenshots.js';
export { startServer, bootstrapAdminToken, closeOnSignals } from './server.js';
export {
  resolveConfig,
  configDefaults,
  configSchema,
  settings,
  flagOf,
  describeDefault,
  renderConfigTable,
  withConfigTable,
  type CoordinatorConfig,
  type ConfigInput,
  type ConfigKey,
  type SettingSchema,
} from './config.js';
export { Coordinator, type LeaseSession, normalizeIp } from './coordinator.js';
export { AddressSpace, type ScopeItem, type Segment, type SpaceAddress } from './address-space.js';
export {
  parseAddress,
  formatAddress,
  parseTargetSpec,
  formatRange,
  rangeToCidrs,
  contextPrefix,
  type AddressRange,
  type Family,
} from './address.js';
export { Permutation } from './permutation.js';
export { Cycle, type CycleDocument, type CycleProgress } from './cycle.js';
export { parseScopeFile, formatScopeFile, normalizeScopeLine, normalizeRange, checkTag, type ScopeLine } from './scope-file.js';
export { type Policy, type PolicyInput, defaultPolicy, defaultStrategyName, resolvePolicy, DEFAULT_POLICY_KEY } from './policy.js';
export { diffScans, diffEvents, type ScanDiff } from './diff.js';
export { generateToken, hashToken } from './tokens.js';
export { streamRecording } from './recording-export.js';
export { findHostScan, formatNmapXml } from './nmap-export.js';
export * from '../protocol/index.js';
export {
  AlertDispatcher,
  addAlertRule,
  listAlertRules,
  removeAlertRule,
  listDeadLetters,
  checkAlertRule,
  type AlertRule,
  type DeadLetter,
  type AlertDeliveryOptions,
} from './alerts.js';
export { withLocalCoordinator, type LocalCoordinator } from './local.js';
export { openCoordinatorCore, type CoordinatorCore, type CoreOptions } from './open-core.js';
export { type RetentionReport } from './retention-runner.js';
export { parseGroupList } from './groups.js';
export { DEFAULT_SCRIPTS } from './policy.js';
