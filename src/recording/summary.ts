import type { LoadedRecording } from './types.js';

/** What `portbandit recording info` reports about a recording. */
export interface RecordingSummary {
  readonly name: string;
  readonly description?: string;
  /** The header's probed set, canonical ("1-65535"), and its size in ports. */
  readonly probed: string;
  readonly probedPorts: number;
  /** Lines that override `probed`, by the canonical override. */
  readonly probedOverrides: readonly { readonly probed: string; readonly ports: number; readonly observations: number }[];
  readonly hosts: number;
  readonly epochs: number;
  readonly observations: number;
  /** Open (host, port) pairs over all observations. */
  readonly openServices: number;
  /** Per tag: distinct hosts that carried it in any observation, and observations carrying it. Sorted by tag. */
  readonly tags: Readonly<Record<string, { readonly hosts: number; readonly observations: number }>>;
  /** Distinct hosts with no tag in at least one observation. */
  readonly untaggedHosts: number;
  readonly perEpoch: readonly {
    readonly epoch: number;
    readonly observations: number;
    readonly openServices: number;
    readonly hostsWithOpen: number;
  }[];
  /** The most frequently open ports over all observations (ties by port number). */
  readonly topPorts: readonly { readonly port: number; readonly open: number }[];
}

/** Summarise a loaded recording: counts, tags with host counts, open services per epoch, probed sets. */
export function summarizeRecording(rec: LoadedRecording, topPortCount = 10): RecordingSummary {
  const perEpoch = [];
  for (let e = 0; e < rec.epochs; e++) {
    let openServices = 0;
    let hostsWithOpen = 0;
    for (let i = rec.epochStart[e]!; i < rec.epochStart[e + 1]!; i++) {
      const n = rec.openStart[i + 1]! - rec.openStart[i]!;
      openServices += n;
      if (n > 0) hostsWithOpen++;
    }
    perEpoch.push({ epoch: e, observations: rec.epochStart[e + 1]! - rec.epochStart[e]!, openServices, hostsWithOpen });
  }

  // Most hosts keep one tag set for the whole recording: count those by array, and only hosts
  // whose tag set changes need a set of tag sets.
  const hostCount = rec.hostIp.length;
  const hostTagSet = new Int32Array(hostCount).fill(-1);
  const varying = new Map<number, Set<number>>();
  const observationsPerTagSet = new Float64Array(rec.tagSets.length);
  for (let i = 0; i < rec.size; i++) {
    const h = rec.obsHost[i]!;
    const t = rec.obsTagSet[i]!;
    observationsPerTagSet[t]!++;
    const current = hostTagSet[h]!;
    if (current === -1) hostTagSet[h] = t;
    else if (current !== t) {
      let sets = varying.get(h);
      if (sets === undefined) varying.set(h, (sets = new Set([current])));
      sets.add(t);
    }
  }
  const hostsPerTag = new Map<string, number>();
  const observationsPerTag = new Map<string, number>();
  let untaggedHosts = 0;
  const countHost = (tagSets: Iterable<number>): void => {
    const tags = new Set<string>();
    let untagged = false;
    for (const t of tagSets) {
      const set = rec.tagSets[t]!;
      if (set.length === 0) untagged = true;
      for (const tag of set) tags.add(tag);
    }
    for (const tag of tags) hostsPerTag.set(tag, (hostsPerTag.get(tag) ?? 0) + 1);
    if (untagged) untaggedHosts++;
  };
  const hostsPerTagSet = new Float64Array(rec.tagSets.length);
  for (let h = 0; h < hostCount; h++) {
    if (varying.has(h)) countHost(varying.get(h)!);
    else if (hostTagSet[h]! >= 0) hostsPerTagSet[hostTagSet[h]!]!++;
  }
  rec.tagSets.forEach((set, t) => {
    if (set.length === 0) untaggedHosts += hostsPerTagSet[t]!;
    for (const tag of set) {
      hostsPerTag.set(tag, (hostsPerTag.get(tag) ?? 0) + hostsPerTagSet[t]!);
      observationsPerTag.set(tag, (observationsPerTag.get(tag) ?? 0) + observationsPerTagSet[t]!);
    }
  });
  const tags: Record<string, { hosts: number; observations: number }> = {};
  for (const tag of [...hostsPerTag.keys()].sort())
    tags[tag] = { hosts: hostsPerTag.get(tag)!, observations: observationsPerTag.get(tag) ?? 0 };

  const portCounts = new Float64Array(65536);
  for (let k = 0; k < rec.openPorts.length; k++) portCounts[rec.openPorts[k]!]!++;
  const ports: number[] = [];
  for (let p = 1; p < 65536; p++) if (portCounts[p]! > 0) ports.push(p);
  ports.sort((a, b) => portCounts[b]! - portCounts[a]! || a - b);
  const topPorts = ports.slice(0, topPortCount).map((port) => ({ port, open: portCounts[port]! }));

  const overrideCounts = new Float64Array(rec.probedSets.length);
  for (let i = 0; i < rec.size; i++) overrideCounts[rec.obsProbed[i]!]!++;
  const probedOverrides = rec.probedSets
    .slice(1)
    .map((set, k) => ({ probed: set.toString(), ports: set.size, observations: overrideCounts[k + 1]! }));

  return {
    name: rec.header.name,
    ...(rec.header.description !== undefined ? { description: rec.header.description } : {}),
    probed: rec.probed.toString(),
    probedPorts: rec.probed.size,
    probedOverrides,
    hosts: hostCount,
    epochs: rec.epochs,
    observations: rec.size,
    openServices: rec.openPorts.length,
    tags,
    untaggedHosts,
    perEpoch,
    topPorts,
  };
}
