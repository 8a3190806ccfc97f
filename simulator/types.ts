/**
 * The replay simulator's options and result. A result is plain JSON with a fixed key order so
 * that the same recording, strategy and seed always serialise to the same bytes.
 * Ratios whose denominator is zero (coverage with no services, precision with no probes) are null.
 */

/** Called during a run: the epoch being replayed and how many of its host-epochs are done. */
export type ProgressCallback = (progress: {
  readonly epoch: number;
  readonly epochs: number;
  readonly done: number;
  readonly hosts: number;
}) => void;

export interface SimulateOptions {
  /** The run seed; every host-epoch's random streams derive from it. */
  readonly seed: string;
  /** Host decisions per feedback batch (results reach `observe` B at a time). Default 256. */
  readonly batch?: number;
  /**
   * A host-epoch whose TRUE open-port count exceeds this is a pseudo-service host: its
   * services count in neither `total` nor `found` (its probes still count). Default: the
   * strategy's own `pseudoThreshold` (1000 unless configured).
   */
  readonly pseudoThreshold?: number;
  /**
   * The order hosts are visited within an epoch: `recording` (default; a sorted recording
   * decides a whole /24 before any of its results is learned: pessimistic for anything learned
   * per subnet) or `shuffled` (seeded per epoch, as the coordinator's permutation visits them, so
   * results of a subnet arrive while the rest of it is still to be decided). See docs/simulator.md.
   */
  readonly order?: 'recording' | 'shuffled';
  /**
   * Hand large first decisions out as the coordinator does, a first look then the rest
   * (FIRST_LOOK in strategies/host-session.ts). Off by default: it changes only the rounds, which
   * a replay does not model, and the results are the same either way (a test checks it).
   */
  readonly firstLook?: boolean;
  /** Add the per-host breakdown (for bootstrap confidence intervals over hosts). */
  readonly perHost?: boolean;
  /** Strategy parameters as given, echoed into the result for the record. */
  readonly params?: Readonly<Record<string, unknown>>;
  /** Progress for long runs: called every `progressEvery` host-epochs and at each epoch's end. */
  readonly onProgress?: ProgressCallback;
  /** Host-epochs between progress calls. Default 8192. */
  readonly progressEvery?: number;
}

export interface EpochMetrics {
  readonly epoch: number;
  /** Host-epochs replayed in this epoch. */
  readonly hosts: number;
  readonly total: number;
  readonly found: number;
  readonly probes: number;
  readonly coverage: number | null;
}

export interface TagMetrics {
  /** Distinct hosts that carried the tag in at least one observation. */
  readonly hosts: number;
  readonly total: number;
  readonly found: number;
  readonly probes: number;
  readonly coverage: number | null;
  readonly precision: number | null;
  /** Services that appeared on the tag's hosts (tagged as they were when it appeared), and how fast they were found. */
  readonly epochsToDetect: EpochsToDetect;
}

export interface RegretEpoch {
  readonly epoch: number;
  /** Services missed this epoch (total - found), and summed up to this epoch. */
  readonly missed: number;
  readonly cumulativeMissed: number;
  /** Probes beyond the oracle's (probes - total), and summed up to this epoch. */
  readonly excessProbes: number;
  readonly cumulativeExcessProbes: number;
}

/** Regret against the oracle that probes exactly the open ports of every host-epoch. */
export interface Regret {
  readonly missed: number;
  readonly excessProbes: number;
  readonly perEpoch: readonly RegretEpoch[];
}

/**
 * Epochs until a newly opened service is first found. A service (host, port) "appears" at an
 * epoch > 0 when it is open in the host's observation and was not open in the host's previous
 * observation (hosts first seen after epoch 0 bring no appearances). Delay = epoch of first
 * detection - epoch of appearance. A service that closes before being found, or is still
 * unfound at the end, is censored.
 */
export interface EpochsToDetect {
  readonly count: number;
  readonly detected: number;
  readonly censored: number;
  /** Censored because the service closed again before it was found. */
  readonly vanished: number;
  readonly mean: number | null;
  readonly median: number | null;
  /** Detections by delay: "0", "1", "2", "3" epochs, then ">=4". */
  readonly histogram: Readonly<Record<string, number>>;
}

/** How fast a subnet-wide rollout (the generator's `source.rollout`) was picked up. */
export interface RolloutDetection {
  readonly port: number;
  readonly subnet: string;
  readonly epoch: number;
  /** Non-pseudo hosts in the subnet with the port open in their rollout-epoch observation. */
  readonly hosts: number;
  /** Share of those hosts whose rollout port was found within 0, 1, 2 epochs of the rollout. */
  readonly within0: number | null;
  readonly within1: number | null;
  readonly within2: number | null;
  /** Hosts where it was never found. */
  readonly never: number;
  /**
   * The first epoch in which the strategy found the port open on any host of the scope (in the
   * subnet or elsewhere), or null if never. Below `epoch`: the port was known before the rollout
   * (the case issue 12's one-epoch goal is about); at or after it: the strategy had to discover it.
   */
  readonly knownEpoch: number | null;
}

/**
 * Per-host sums over all epochs, as parallel columns (row h = one distinct host, in recording
 * order). `total` and `found` exclude the host's pseudo-service epochs; `probes` counts all.
 * Enough for a bootstrap over hosts of coverage (sum found / sum total) and precision
 * (sum found / sum probes), overall or per tag (`tags[tagSet[h]]`, the host's first tag set).
 */
export interface PerHostBreakdown {
  readonly tagSets: readonly (readonly string[])[];
  readonly ip: readonly string[];
  readonly tagSet: readonly number[];
  readonly observations: readonly number[];
  readonly pseudoObservations: readonly number[];
  readonly total: readonly number[];
  readonly found: readonly number[];
  readonly probes: readonly number[];
}

export interface SimulationResult {
  readonly strategy: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly recording: string;
  readonly budget: number;
  readonly maxPerHost: number;
  readonly seed: string;
  readonly batch: number;
  /** The host order within an epoch (SimulateOptions.order). */
  readonly order: 'recording' | 'shuffled';
  readonly epochs: number;
  /** Distinct hosts in the recording. */
  readonly hosts: number;
  /** Host-epochs replayed (observations). */
  readonly hostEpochs: number;
  readonly pseudoThreshold: number;
  readonly total: number;
  readonly found: number;
  readonly probes: number;
  readonly coverage: number | null;
  readonly precision: number | null;
  /** Probes per host-epoch, on average (compare with `budget`). */
  readonly probesPerHost: number | null;
  readonly pseudoHosts: number;
  readonly probesOnPseudo: number;
  readonly perEpoch: readonly EpochMetrics[];
  readonly perTag: Readonly<Record<string, TagMetrics>>;
  readonly regret: Regret;
  readonly epochsToDetect: EpochsToDetect;
  readonly rollout: RolloutDetection | null;
  readonly perHost?: PerHostBreakdown;
}
