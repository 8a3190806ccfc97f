export { Agent, type AgentOptions, type AgentStats } from './agent.js';
export { MasscanRateControl, type RateChange } from './masscan-rate.js';
export {
  MasscanBlindHosts,
  masscanWasBlind,
  MASSCAN_BLIND_MS,
  MASSCAN_SIGHT_CHECK_PORTS,
  sightCheckPorts,
  type BlindEvidence,
} from './masscan-blind.js';
export { AllowList } from './allow-list.js';
export { checkWorkItem, canonicalPortRanges, describeLeased, portCountOf, type WorkItemCheck } from './work-item.js';
export {
  CoordinatorClient,
  OverloadedError,
  RejectedError,
  RETRY_AFTER_BOUNDS,
  retryAfterMsOf,
  retryDelayMs,
} from './coordinator-client.js';
export { ResultBatcher, BATCH_BYTES, type BatchedAnswer, type ResultBatcherOptions } from './result-batcher.js';
export {
  scanBatch,
  choosePreflight,
  describePreflight,
  ScanPipeline,
  preflightDeadline,
  masscanShares,
  masscanWaitMs,
  masscanRateInUse,
  type MasscanRunInFlight,
  SCAN_DEFAULTS,
  type ScanConfig,
  type PreflightChoice,
  type BatchOutcome,
  type RefusedItem,
  type HostOutcome,
} from './scan-batch.js';
export {
  runMasscan,
  masscanSendPlan,
  MASSCAN_DEFAULTS,
  MASSCAN_RETRY_SPREAD,
  type MasscanOptions,
  type MasscanResult,
  type MasscanSendPlan,
} from './scanners/masscan.js';
export {
  runConnectSweep,
  CONNECT_DEFAULTS,
  ProbeTimer,
  TIMING_PROBE_AFTER_MS,
  probeTimerFor,
  type ConnectSweepOptions,
  type ConnectSweepResult,
} from './scanners/connect-sweep.js';
export { runNmap, nmapArgs, checkScripts, NMAP_DEFAULTS, type NmapOptions, type NmapResult } from './scanners/nmap.js';
export { resolveMasscanRoute, parseRouteGet, parseRouteBatch, type MasscanRoute, type RouteLookup } from './scanners/route.js';
export { detectScannerTools, describeMissingTools, hasRawSockets, type ScannerTools } from './scanners/tools.js';
export { runBounded, type ProcessBounds, type ProcessResult } from './scanners/bounded-process.js';
export { parseNmapXml, type NmapRun, type NmapHost } from '../src/formats/index.js';
export { parseMasscanOutput, detectMasscanFormat, groupFindings, type MasscanFinding, type MasscanFormat } from '../src/formats/index.js';
export {
  detectServices,
  planDetection,
  DETECTION_DEFAULTS,
  type DetectionOptions,
  type DetectionRun,
  type HostDetection,
} from './service-detection.js';
export {
  Screenshotter,
  webTargets,
  SCREENSHOT_DEFAULTS,
  type ScreenshotOptions,
  type WebTarget,
  type CaptureResult,
  type InterceptedRequest,
} from './screenshots.js';
export { ScreenshotGuard, splitHostPort, type GuardEntry } from './screenshot-guard.js';
