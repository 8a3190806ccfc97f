import type { BatchVerdict, CommonOptions, HostResult, ParameterSpec } from './types.js';

/**
 * The guard rails every learning strategy applies before learning from a batch (the Natlas
 * proposal's list of cons): results that would teach artefacts instead of services are kept out.
 *
 * - Pseudo-service hosts (SYN proxies, tarpits, firewalls answering on every port) make every
 *   probed port look open. A result is ignored when it has more open ports than
 *   `options.pseudoThreshold`, or when at least `pseudoMinOpen` ports are open and they are at
 *   least `pseudoShare` of the ports probed (a budgeted scan of a pseudo host never reaches the
 *   absolute threshold: 100 probes, 100 "open").
 * - Packet loss (the scanner lost its path to the scope) makes every port look closed. A batch is
 *   flagged lossy, and nothing in it is learned, when at least `lossMinHosts` hosts re-probed
 *   ports they had open last time and at most `lossMaxRecall` of those re-probed ports answered.
 *   Real churn closes a few services per epoch, not nearly all of them.
 */

/** Thresholds of the guard rails (pseudoThreshold itself is a common option). */
export interface GuardParams {
  readonly pseudoShare: number;
  readonly pseudoMinOpen: number;
  readonly lossMinHosts: number;
  readonly lossMaxRecall: number;
}

/** Defaults of GuardParams. */
export const guardDefaults: GuardParams = Object.freeze({
  pseudoShare: 0.5,
  pseudoMinOpen: 20,
  lossMinHosts: 8,
  lossMaxRecall: 0.1,
});

/** ParameterSpecs of GuardParams, for learning strategies to include in their `parameters`. */
export const guardParameters: readonly ParameterSpec[] = Object.freeze([
  {
    name: 'pseudoShare',
    type: 'number',
    default: guardDefaults.pseudoShare,
    min: 0,
    max: 1,
    description:
      'A host with at least pseudoMinOpen open ports that are this share of its probes or more is a pseudo-service host and does not teach.',
  },
  {
    name: 'pseudoMinOpen',
    type: 'integer',
    default: guardDefaults.pseudoMinOpen,
    min: 1,
    max: 65535,
    description: 'Open ports a host needs before pseudoShare can call it a pseudo-service host.',
  },
  {
    name: 'lossMinHosts',
    type: 'integer',
    default: guardDefaults.lossMinHosts,
    min: 1,
    max: 1e9,
    description: 'Hosts re-probing previously open ports a batch needs before it can be judged lossy.',
  },
  {
    name: 'lossMaxRecall',
    type: 'number',
    default: guardDefaults.lossMaxRecall,
    min: 0,
    max: 1,
    description:
      'A batch in which at most this share of re-probed, previously open ports answered is treated as packet loss and not learned from.',
  },
]);

/** Pick GuardParams out of a strategy's parsed parameters (missing ones take defaults). */
export function pickGuardParams(params: Partial<GuardParams>): GuardParams {
  return {
    pseudoShare: params.pseudoShare ?? guardDefaults.pseudoShare,
    pseudoMinOpen: params.pseudoMinOpen ?? guardDefaults.pseudoMinOpen,
    lossMinHosts: params.lossMinHosts ?? guardDefaults.lossMinHosts,
    lossMaxRecall: params.lossMaxRecall ?? guardDefaults.lossMaxRecall,
  };
}

/** Whether a result looks like a pseudo-service host (answers on too many ports to teach). */
export function isPseudoHost(
  result: HostResult,
  options: Pick<CommonOptions, 'pseudoThreshold'>,
  params: GuardParams = guardDefaults,
): boolean {
  const open = result.open.length;
  if (open > options.pseudoThreshold) return true;
  return open >= params.pseudoMinOpen && result.probed.length > 0 && open / result.probed.length >= params.pseudoShare;
}

/** Re-probe evidence of a batch: hosts that re-probed old services, those re-probes, and hits. */
export interface ReprobeEvidence {
  readonly hosts: number;
  readonly reprobed: number;
  readonly found: number;
}

/** Count how many previously open ports were probed again in a batch, and how many answered. */
export function measureReprobes(results: readonly HostResult[]): ReprobeEvidence {
  let hosts = 0;
  let reprobed = 0;
  let found = 0;
  for (const r of results) {
    const before = r.previousOpen;
    if (before.length === 0) continue;
    // A host had a few open ports before: a linear scan beats building a Set per host (a
    // replay screens every host-epoch); a pseudo-service host's long list gets its Set.
    const prev = before.length > 16 ? new Set(before) : null;
    const had = (p: number): boolean => (prev === null ? before.includes(p) : prev.has(p));
    let mine = 0;
    for (const p of r.probed) if (had(p)) mine++;
    if (mine === 0) continue;
    hosts++;
    reprobed += mine;
    for (const p of r.open) if (had(p)) found++;
  }
  return { hosts, reprobed, found };
}

/** Whether a batch looks like packet loss rather than services going away (see the file comment). */
export function looksLossy(results: readonly HostResult[], params: GuardParams = guardDefaults): boolean {
  const e = measureReprobes(results);
  return e.hosts >= params.lossMinHosts && e.reprobed > 0 && e.found / e.reprobed <= params.lossMaxRecall;
}

/** The results of a batch that may teach, and the verdict to return from `observe`. */
export interface ScreenedBatch {
  readonly teach: readonly HostResult[];
  readonly verdict: BatchVerdict;
}

/**
 * Apply the guard rails to a batch: drop pseudo-service hosts, then drop the whole batch if what
 * is left looks like packet loss. Learning strategies call this first in `observe` and learn
 * only from `teach`.
 */
export function screenBatch(
  results: readonly HostResult[],
  options: Pick<CommonOptions, 'pseudoThreshold'>,
  params: GuardParams = guardDefaults,
): ScreenedBatch {
  const kept: HostResult[] = [];
  let pseudo = 0;
  for (const r of results) {
    if (isPseudoHost(r, options, params)) pseudo++;
    else kept.push(r);
  }
  if (looksLossy(kept, params)) return { teach: [], verdict: { learned: 0, pseudo, lossy: true } };
  return { teach: kept, verdict: { learned: kept.length, pseudo, lossy: false } };
}
