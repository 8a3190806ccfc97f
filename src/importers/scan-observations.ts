import { PortbanditError } from '../core/errors.js';
import { PortRanges } from '../core/ports.js';
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
export function observationsFromSightings(sightings: readonly HostSighting[], tags: readonly string[], epochs: EpochOptions): { probed: string; observations: Observation[] } {
  const epochOf = (s: HostSighting, base: number) => {
    if (epochs.epochBy === 'file') return s.fileIndex;
    if (s.time === null) throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', `--epoch-by time needs timestamps, but a record for ${s.ip} has none`, { where: '--epoch-by' });
    return Math.floor((s.time - base) / (epochs.epochSeconds ?? 86_400));
  };
  const times = sightings.map((s) => s.time).filter((t): t is number => t !== null);
  const base = times.length > 0 ? Math.min(...times) : 0;
  const merged = new Map<string, { epoch: number; ip: string; open: Set<number>; services: Record<string, string>; probed: number[][] }>();
  for (const s of sightings) {
    const epoch = epochOf(s, base);
    const key = `${epoch} ${s.ip}`;
    let m = merged.get(key);
    if (!m) merged.set(key, (m = { epoch, ip: s.ip, open: new Set(), services: {}, probed: [] }));
    for (const p of s.open) m.open.add(p);
    for (const [p, name] of Object.entries(s.services ?? {})) m.services[p] = name;
    m.probed.push(s.probed.toArray());
  }
  const probedOf = (m: { probed: number[][] }) => PortRanges.fromPorts(m.probed.flat()).toString();
  const all = [...merged.values()];
  const specs = new Set(all.map(probedOf));
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
  return { probed: common ?? (all.length > 0 ? PortRanges.fromPorts(all.flatMap((m) => m.probed.flat())).toString() : '1-65535'), observations };
}

/** Write observations as a scope recording (the header names the importer and the files). */
export async function writeImportedRecording(out: string, name: string, probed: string, observations: readonly Observation[], source: Record<string, unknown>): Promise<void> {
  const writer = await RecordingWriter.open(out, { name, probed, source });
  for (const o of observations) await writer.write(o);
  await writer.close();
}
