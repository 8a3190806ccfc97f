import { PortbanditError, hostPrefix, deriveRng, shuffle } from '../src/core/index.js';
import type { LoadedRecording } from '../src/recording/index.js';
import { FIRST_LOOK, HostSession, runHostSession, type HostContext, type HostResult, type Strategy } from '../strategies/index.js';
import { DetectionTracker, EMPTY_DETECTION } from './detection.js';
import { RolloutTracker, readRollout } from './rollout.js';
import type {
  EpochMetrics,
  EpochsToDetect,
  PerHostBreakdown,
  RegretEpoch,
  SimulateOptions,
  SimulationResult,
  TagMetrics,
} from './types.js';

/** Default host decisions per feedback batch. */
export const DEFAULT_BATCH = 256;
/** The perTag key of hosts without tags. */
export const UNTAGGED = '(untagged)';

const EMPTY: readonly number[] = Object.freeze([]);

function ratio(a: number, b: number): number | null {
  return b === 0 ? null : a / b;
}

/**
 * Replay a recording against a strategy, epoch by epoch: every observed host gets a decision
 * through a HostSession driven to the end with the host's ground truth; results reach
 * `strategy.observe` in batches of `batch` host decisions, in recording order (or, with
 * `order: 'shuffled'`, a seeded order per epoch, as the coordinator's permutation visits hosts),
 * and every batch is delivered before the next epoch starts. The strategy's view of a host's past
 * (`previousOpen`) is what it found there, never the truth. Deterministic in (recording,
 * strategy, options).
 */
export function simulate(recording: LoadedRecording, strategy: Strategy, options: SimulateOptions): SimulationResult {
  const batchSize = options.batch ?? DEFAULT_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new PortbanditError('PB_ERR_SIMULATOR_OPTION', `expected a batch size that is a positive integer, got ${batchSize}`, {
      where: 'batch',
    });
  }
  const pseudoThreshold = options.pseudoThreshold ?? strategy.options.pseudoThreshold;
  if (!Number.isInteger(pseudoThreshold) || pseudoThreshold < 1) {
    throw new PortbanditError(
      'PB_ERR_SIMULATOR_OPTION',
      `expected a pseudo-service threshold that is a positive integer, got ${pseudoThreshold}`,
      {
        where: 'pseudoThreshold',
      },
    );
  }
  const progressEvery = Math.max(1, options.progressEvery ?? 8192);
  const order = options.order ?? 'recording';
  if (order !== 'recording' && order !== 'shuffled') {
    throw new PortbanditError(
      'PB_ERR_SIMULATOR_OPTION',
      `expected the host order "recording" or "shuffled", got ${JSON.stringify(order)}`,
      { where: 'order' },
    );
  }
  const shuffled = order === 'shuffled';
  const firstLook = options.firstLook === true ? FIRST_LOOK : null;
  const seed = options.seed;
  const rec = recording;
  const hostCount = rec.hostIp.length;
  const epochs = rec.epochs;
  const ports = rec.openPorts;

  // Per host: the strategy's own view of its last scan, and where its previous truth is.
  const prefixes = rec.hostIp.map(hostPrefix);
  const prevOpen: (readonly number[])[] = new Array<readonly number[]>(hostCount).fill(EMPTY);
  const prevEpoch = new Int32Array(hostCount).fill(-1);
  const lastObs = new Int32Array(hostCount).fill(-1);
  const lastPseudo = new Uint8Array(hostCount);
  const pseudoSeen = new Uint8Array(hostCount);

  // The truth of the current host-epoch as a stamp table: open iff truth[p] === stamp.
  const truth = new Uint32Array(65536);
  let stamp = 0;
  const isOpen = (p: number): boolean => truth[p] === stamp;

  const tagSetCount = rec.tagSets.length;
  const tsTotal = new Float64Array(tagSetCount);
  const tsFound = new Float64Array(tagSetCount);
  const tsProbes = new Float64Array(tagSetCount);
  const hostsByTag = new Map<string, Set<number>>();
  const hostTagSet = new Int32Array(hostCount).fill(-1);

  const perHost = options.perHost === true;
  const firstTagSet = perHost ? new Int32Array(hostCount).fill(-1) : null;
  const hObs = perHost ? new Uint32Array(hostCount) : null;
  const hPseudo = perHost ? new Uint32Array(hostCount) : null;
  const hTotal = perHost ? new Float64Array(hostCount) : null;
  const hFound = perHost ? new Float64Array(hostCount) : null;
  const hProbes = perHost ? new Float64Array(hostCount) : null;

  const detection = new DetectionTracker(hostCount);
  const rollout = readRollout(rec);
  const rolloutTracker = rollout ? new RolloutTracker(rollout, rec.hostIp) : null;

  const perEpoch: EpochMetrics[] = [];
  const regretPerEpoch: RegretEpoch[] = [];
  let total = 0;
  let found = 0;
  let probes = 0;
  let probesOnPseudo = 0;
  let cumMissed = 0;
  let cumExcess = 0;
  let batch: HostResult[] = [];

  for (let epoch = 0; epoch < epochs; epoch++) {
    const from = rec.epochStart[epoch]!;
    const to = rec.epochStart[epoch + 1]!;
    let eTotal = 0;
    let eFound = 0;
    let eProbes = 0;
    // Shuffled: a fresh seeded order each epoch, as the coordinator's permutation visits hosts.
    const visit = shuffled
      ? shuffle(
          Array.from({ length: to - from }, (_, k) => from + k),
          deriveRng(seed, 'order', epoch),
        )
      : null;
    for (let j = from; j < to; j++) {
      const i = visit === null ? j : visit[j - from]!;
      const host = rec.obsHost[i]!;
      const tagSet = rec.obsTagSet[i]!;
      const probeable = rec.probedSets[rec.obsProbed[i]!]!;
      const curStart = rec.openStart[i]!;
      const curEnd = rec.openStart[i + 1]!;
      if (++stamp === 0xffffffff) {
        truth.fill(0);
        stamp = 1;
      }
      for (let k = curStart; k < curEnd; k++) truth[ports[k]!] = stamp;

      const context: HostContext = {
        ip: rec.hostIp[host]!,
        tags: rec.tagSets[tagSet]!,
        prefix: prefixes[host]!,
        epoch,
        previousOpen: prevOpen[host]!,
        previousEpoch: prevEpoch[host]!,
        probeable,
      };
      // No first look unless asked (FIRST_LOOK): splitting a large first decision changes only the
      // rounds it is handed out in, which a replay does not model (its re-ask is a `peek` that
      // leaves the strategy's state alone), and it cost a Thompson-sampling replay 6-8% of its CPU.
      const result = runHostSession(new HostSession(strategy, context, seed, undefined, firstLook), isOpen);
      const nProbes = result.probed.length;
      if (!probeable.isAll) {
        for (const p of result.probed) {
          if (!probeable.has(p)) {
            throw new PortbanditError(
              'PB_ERR_STRATEGY_OPTION',
              `strategy ${strategy.name} probed port ${p} on ${context.ip} in epoch ${epoch}, outside the recording's probed set ${probeable.toString()}`,
            );
          }
        }
      }
      batch.push(result);
      if (batch.length >= batchSize) {
        strategy.observe(batch);
        batch = [];
      }
      prevOpen[host] = result.open;
      prevEpoch[host] = epoch;

      const pseudo = curEnd - curStart > pseudoThreshold;
      const nTotal = pseudo ? 0 : curEnd - curStart;
      const nFound = pseudo ? 0 : result.open.length;
      eTotal += nTotal;
      eFound += nFound;
      eProbes += nProbes;
      tsTotal[tagSet] += nTotal;
      tsFound[tagSet] += nFound;
      tsProbes[tagSet] += nProbes;
      if (hostTagSet[host] !== tagSet) {
        hostTagSet[host] = tagSet;
        for (const tag of tagsOf(rec.tagSets[tagSet]!)) {
          let set = hostsByTag.get(tag);
          if (!set) hostsByTag.set(tag, (set = new Set()));
          set.add(host);
        }
      }
      if (pseudo) {
        pseudoSeen[host] = 1;
        probesOnPseudo += nProbes;
      } else {
        const prev = lastObs[host]!;
        const hasPrev = prev >= 0 && lastPseudo[host] === 0;
        detection.update(
          host,
          epoch,
          tagSet,
          ports,
          hasPrev ? rec.openStart[prev]! : 0,
          hasPrev ? rec.openStart[prev + 1]! : 0,
          hasPrev,
          curStart,
          curEnd,
          isOpen,
          result.open,
        );
        if (rolloutTracker) rolloutTracker.update(host, epoch, isOpen(rolloutTracker.rollout.port), result.open);
      }
      lastObs[host] = i;
      lastPseudo[host] = pseudo ? 1 : 0;
      if (perHost) {
        if (firstTagSet![host]! < 0) firstTagSet![host] = tagSet;
        hObs![host]!++;
        if (pseudo) hPseudo![host]!++;
        hTotal![host] += nTotal;
        hFound![host] += nFound;
        hProbes![host] += nProbes;
      }
      const done = j - from + 1;
      if (options.onProgress && done % progressEvery === 0 && done < to - from)
        options.onProgress({ epoch, epochs, done, hosts: to - from });
    }
    // Results of an epoch are all in before the next epoch is planned.
    if (batch.length > 0) {
      strategy.observe(batch);
      batch = [];
    }
    options.onProgress?.({ epoch, epochs, done: to - from, hosts: to - from });
    total += eTotal;
    found += eFound;
    probes += eProbes;
    cumMissed += eTotal - eFound;
    cumExcess += eProbes - eTotal;
    perEpoch.push({ epoch, hosts: to - from, total: eTotal, found: eFound, probes: eProbes, coverage: ratio(eFound, eTotal) });
    regretPerEpoch.push({
      epoch,
      missed: eTotal - eFound,
      cumulativeMissed: cumMissed,
      excessProbes: eProbes - eTotal,
      cumulativeExcessProbes: cumExcess,
    });
  }

  let pseudoHosts = 0;
  for (let h = 0; h < hostCount; h++) pseudoHosts += pseudoSeen[h]!;

  const result: SimulationResult = {
    strategy: strategy.name,
    params: sortKeys(options.params ?? {}),
    recording: rec.header.name,
    budget: strategy.options.budget,
    maxPerHost: strategy.options.maxPerHost,
    seed,
    batch: batchSize,
    order,
    epochs,
    hosts: hostCount,
    hostEpochs: rec.size,
    pseudoThreshold,
    total,
    found,
    probes,
    coverage: ratio(found, total),
    precision: ratio(found, probes),
    probesPerHost: ratio(probes, rec.size),
    pseudoHosts,
    probesOnPseudo,
    perEpoch,
    perTag: aggregateTags(rec.tagSets, tsTotal, tsFound, tsProbes, hostsByTag, detection.summaryByTag(rec.tagSets, tagsOf)),
    regret: { missed: total - found, excessProbes: probes - total, perEpoch: regretPerEpoch },
    epochsToDetect: detection.summary(),
    rollout: rolloutTracker ? rolloutTracker.summary() : null,
  };
  if (!perHost) return result;
  const breakdown: PerHostBreakdown = {
    tagSets: rec.tagSets,
    ip: rec.hostIp,
    tagSet: Array.from(firstTagSet!, (t) => Math.max(0, t)),
    observations: Array.from(hObs!),
    pseudoObservations: Array.from(hPseudo!),
    total: Array.from(hTotal!),
    found: Array.from(hFound!),
    probes: Array.from(hProbes!),
  };
  return { ...result, perHost: breakdown };
}

function tagsOf(tags: readonly string[]): readonly string[] {
  return tags.length === 0 ? [UNTAGGED] : tags;
}

function aggregateTags(
  tagSets: readonly (readonly string[])[],
  total: Float64Array,
  found: Float64Array,
  probes: Float64Array,
  hostsByTag: ReadonlyMap<string, ReadonlySet<number>>,
  detectionByTag: Readonly<Record<string, EpochsToDetect>>,
): Record<string, TagMetrics> {
  const sums = new Map<string, { total: number; found: number; probes: number }>();
  tagSets.forEach((set, i) => {
    for (const tag of tagsOf(set)) {
      const s = sums.get(tag) ?? { total: 0, found: 0, probes: 0 };
      s.total += total[i]!;
      s.found += found[i]!;
      s.probes += probes[i]!;
      sums.set(tag, s);
    }
  });
  const out: Record<string, TagMetrics> = {};
  // Sorted tag names: the JSON must not depend on the order tags were first seen.
  for (const tag of [...hostsByTag.keys()].sort()) {
    const s = sums.get(tag)!;
    out[tag] = {
      hosts: hostsByTag.get(tag)!.size,
      total: s.total,
      found: s.found,
      probes: s.probes,
      coverage: ratio(s.found, s.total),
      precision: ratio(s.found, s.probes),
      epochsToDetect: detectionByTag[tag] ?? EMPTY_DETECTION,
    };
  }
  return out;
}

function sortKeys(obj: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(obj).sort()) out[k] = obj[k];
  return out;
}
