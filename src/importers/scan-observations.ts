import { PortbanditError, PortRanges } from '../core/index.js';
import { type Observation, RecordingWriter } from '../recording/index.js';

/** What one scanner file said about one host: open ports (with service names) within `probed`. */
export interface HostSighting {
  readonly ip: string;
  readonly open: readonly number[];
  readonly services?: Readonly<Record<number, string>>;
  readonly probed: PortRanges;
  /** Seconds since the epoch, when the file or record carries it. */
  readonly time: number | null;
  /** Which file (for epoch-by-file) and where. */
  readonly fileIndex: number;
}

/** How imported files become epochs. */
export interface EpochOptions {
  readonly epochBy: 'file' | 'time';
  /** epoch-by time: bucket width in seconds (default one day). */
  readonly epochSeconds?: number;
}

/** The import's tally, printed to stderr and checked by tests (nothing is dropped silently). */
export interface ImportSummary {
  readonly files: number;
  readonly observations: number;
  readonly epochs: number;
  readonly hosts: number;
  readonly openPorts: number;
  /** Hosts nmap reported down (no observation written, counted here). */
  readonly hostsDown: number;
}

/**
 * Merge sightings into observations: one per (epoch, ip), open ports and probed sets unioned, in
 * first-seen host order per epoch. Header `probed` is the common probed set when every sighting
 * agrees; otherwise each line carries its own.
 */
export function observationsFromSightings(
  sightings: readonly HostSighting[],
  tags: readonly string[],
  epochs: EpochOptions,
): { probed: string; observations: Observation[] } {
  const epochOf = (s: HostSighting, base: number) => {
    if (epochs.epochBy === 'file') return s.fileIndex;
    if (s.time === null)
      throw new PortbanditError('PB_ERR_FLAG_VALUE', `--epoch-by time needs timestamps, but a record for ${s.ip} has none`, {
        where: '--epoch-by',
      });
    return Math.floor((s.time - base) / (epochs.epochSeconds ?? 86_400));
  };
  // Streaming-safe: no spreads or flat() over per-host arrays (a 150,000-host file overflowed the
  // stack in Math.min(...times)); probed sets are kept as the distinct PortRanges objects
  // (usually one per file) and unioned by their bounds.
  let base = Infinity;
  for (const s of sightings) if (s.time !== null && s.time < base) base = s.time;
  if (base === Infinity) base = 0;
  const merged = new Map<
    string,
    { epoch: number; ip: string; open: Set<number>; services: Record<string, string>; probed: Set<PortRanges> }
  >();
  for (const s of sightings) {
    const epoch = epochOf(s, base);
    const key = `${epoch} ${s.ip}`;
    let m = merged.get(key);
    if (!m) merged.set(key, (m = { epoch, ip: s.ip, open: new Set(), services: {}, probed: new Set() }));
    for (const p of s.open) m.open.add(p);
    for (const [p, name] of Object.entries(s.services ?? {})) m.services[p] = name;
    m.probed.add(s.probed);
  }
  const specText = new Map<PortRanges, string>();
  const textOf = (r: PortRanges) => {
    let t = specText.get(r);
    if (t === undefined) specText.set(r, (t = r.toString()));
    return t;
  };
  const probedOf = (m: { probed: Set<PortRanges> }) =>
    m.probed.size === 1 ? textOf(m.probed.values().next().value!) : unionRanges(m.probed).toString();
  const all = [...merged.values()];
  const specs = new Set<string>();
  for (const m of all) specs.add(probedOf(m));
  const common = specs.size === 1 ? [...specs][0]! : null;
  const observations = all
    .map((m, order) => ({ m, order }))
    .sort((a, b) => a.m.epoch - b.m.epoch || a.order - b.order)
    .map(({ m }): Observation => {
      const spec = probedOf(m);
      return {
        epoch: m.epoch,
        ip: m.ip,
        tags: [...tags],
        open: [...m.open].sort((a, b) => a - b),
        ...(common === null ? { probed: spec } : {}),
        ...(Object.keys(m.services).length > 0 ? { services: m.services } : {}),
      };
    });
  const everything = new Set<PortRanges>();
  for (const m of all) for (const r of m.probed) everything.add(r);
  return { probed: common ?? (all.length > 0 ? unionRanges(everything).toString() : '1-65535'), observations };
}

/** The union of port sets, from their bounds (no per-port arrays). */
function unionRanges(sets: Iterable<PortRanges>): PortRanges {
  const pairs: number[] = [];
  for (const r of sets) for (let i = 0; i < r.bounds.length; i++) pairs.push(r.bounds[i]!);
  return PortRanges.fromPairs(pairs);
}

/** Write observations as a scope recording (the header names the importer and the files). */
export async function writeImportedRecording(
  out: string,
  name: string,
  probed: string,
  observations: readonly Observation[],
  source: Record<string, unknown>,
): Promise<void> {
  const writer = await RecordingWriter.open(out, { name, probed, source });
  for (const o of observations) await writer.write(o);
  await writer.close();
}
