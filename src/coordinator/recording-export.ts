import { formatHeader, formatObservation, type Observation } from '../recording/index.js';
import type { ScanDocument, Store } from '../store/index.js';

/**
 * Stream the store's history as a scope recording (the simulator's replay format): one line per
 * host per cycle, epoch = cycle - first cycle, probed = the ports the visit probed (all rounds),
 * open = the ports found open. A visit's follow-up scans carry the earlier rounds' ports, so the
 * last scan of a (host, cycle) is the whole visit. Visits are held in memory until the end
 * (one small object per host-cycle), then written in epoch order.
 */
export async function streamRecording(
  store: Store,
  options: { name: string; since?: number; until?: number },
  write: (line: string) => Promise<boolean>,
): Promise<number> {
  const visits = new Map<string, ScanDocument>();
  let minCycle = Number.POSITIVE_INFINITY;
  for await (const scan of store.exportHistory({
    ...(options.since !== undefined ? { since: options.since } : {}),
    ...(options.until !== undefined ? { until: options.until } : {}),
  })) {
    // A silent host says nothing about its ports; the replay format has no "down" state.
    if (scan.probedPorts === '' || scan.host?.status === 'down') continue;
    visits.set(`${scan.cycle}\u0000${scan.ip}`, scan);
    minCycle = Math.min(minCycle, scan.cycle);
  }
  const header = formatHeader({
    name: options.name,
    probed: '1-65535',
    source: {
      kind: 'portbandit.coordinator',
      exportedScans: visits.size,
      ...(options.since !== undefined ? { since: options.since } : {}),
      ...(options.until !== undefined ? { until: options.until } : {}),
    },
    description: 'History exported from a portbandit coordinator: each line overrides "probed" with the ports its visit probed.',
  });
  if (!(await write(header))) return 0;
  const sorted = [...visits.values()].sort((a, b) => a.cycle - b.cycle || a.finishedAt - b.finishedAt);
  let lines = 0;
  for (const scan of sorted) {
    const open = scan.ports.filter((p) => p.state === 'open');
    const services: Record<string, string> = {};
    for (const p of open) if (p.service !== undefined) services[String(p.port)] = p.service;
    const obs: Observation = {
      epoch: scan.cycle - minCycle,
      ip: scan.ip,
      tags: [...new Set(scan.tags.filter((t) => t !== ''))],
      open: open.map((p) => p.port),
      probed: scan.probedPorts,
      services,
    };
    if (!(await write(formatObservation(obs)))) return lines;
    lines++;
  }
  return lines;
}
