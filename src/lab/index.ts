export {
  LAB,
  LAB_INSTANCES,
  type LabTopology,
  labTopology,
  labHostAddress,
  labHostNs,
  labMasscanRoute,
  isLabSafeAddress,
  assertLabSafeAddress,
} from './topology.js';
export { type LabServiceKind, type LabService, labServiceKind, expectedNmapService } from './services.js';
export {
  type LabHost,
  type LabState,
  type LabUpOptions,
  labUp,
  labEpoch,
  labDown,
  labStatus,
  labStatePath,
  labUnavailableReason,
  labGuardHeld,
  labGuardPath,
  raiseLabGuard,
  labLock,
} from './lab.js';
export {
  type LabClosedPolicy,
  LAB_CLOSED_POLICIES,
  LAB_NFT_TABLE,
  LAB_SCANNER_FILTER_TABLE,
  closedPortsRuleset,
  labHideFromMasscan,
  nftUnavailableReason,
  parseClosedPolicy,
  scannerFilterRuleset,
} from './closed-ports.js';
