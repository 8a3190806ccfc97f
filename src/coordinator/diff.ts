import { PortRanges } from '../core/index.js';
import type { NewStoreEvent, ScanDocument, ScannedPort } from '../store/index.js';

/** A service as people compare it between scans. */
export interface ServiceView {
  readonly service?: string;
  readonly product?: string;
  readonly version?: string;
}

/** What changed on a host between two scans. */
export interface ScanDiff {
  readonly from?: string;
  readonly to: string;
  /** Open now, not open before. */
  readonly opened: ReadonlyArray<{ port: number } & ServiceView>;
  /** Open before, probed now and not open: only ports probed in the newer scan can close. */
  readonly closed: ReadonlyArray<{ port: number } & ServiceView>;
  /** Open in both, with a different service name, product or version. */
  readonly changed: ReadonlyArray<{ port: number; before: ServiceView; after: ServiceView }>;
}

function openPorts(scan: ScanDocument | undefined): Map<number, ScannedPort> {
  const out = new Map<number, ScannedPort>();
  if (scan) for (const p of scan.ports) if (p.state === 'open') out.set(p.port, p);
  return out;
}

function view(p: ScannedPort): ServiceView {
  return {
    ...(p.service !== undefined ? { service: p.service } : {}),
    ...(p.product !== undefined ? { product: p.product } : {}),
    ...(p.version !== undefined ? { version: p.version } : {}),
  };
}

function hasDetail(p: ScannedPort): boolean {
  return p.service !== undefined || p.product !== undefined || p.version !== undefined;
}

/**
 * Diff two scans of one host. A port missing from the newer scan's probed set is unknown, not
 * closed: partial scans (a strategy's budget) must not raise false "closed" alerts.
 */
export function diffScans(before: ScanDocument | undefined, after: ScanDocument): ScanDiff {
  const a = openPorts(before);
  const b = openPorts(after);
  const opened = [...b.values()].filter((p) => !a.has(p.port)).map((p) => ({ port: p.port, ...view(p) }));
  const gone = [...a.values()].filter((p) => !b.has(p.port));
  // Parsed only when some port could have closed: most scans (a host's first) have none, and
  // parsing the probed list was the largest allocation of a submit.
  const probed = gone.length === 0 ? PortRanges.EMPTY : PortRanges.parse(after.probedPorts === '' ? [] : after.probedPorts);
  // A port whose state the newer visit could not observe (a time-out) is unknown, not closed.
  const unknown = gone.length === 0 || !after.unknownPorts ? PortRanges.EMPTY : PortRanges.parse(after.unknownPorts);
  const closed = gone.filter((p) => probed.has(p.port) && !unknown.has(p.port)).map((p) => ({ port: p.port, ...view(p) }));
  const changed: Array<{ port: number; before: ServiceView; after: ServiceView }> = [];
  for (const [port, p] of b) {
    const q = a.get(port);
    // Only details both visits observed: a partial visit's missing detail is no change.
    if (q && hasDetail(q) && hasDetail(p) && (q.service !== p.service || q.product !== p.product || q.version !== p.version))
      changed.push({ port, before: view(q), after: view(p) });
  }
  return { ...(before ? { from: before.scanId } : {}), to: after.scanId, opened, closed, changed };
}

/** The alerting events of a diff (service-new / service-closed / service-changed, host-new). */
export function diffEvents(diff: ScanDiff, after: ScanDocument, firstScan: boolean): NewStoreEvent[] {
  const base = { at: after.finishedAt, ip: after.ip, scanId: after.scanId, tags: after.tags };
  const out: NewStoreEvent[] = [];
  if (firstScan && diff.opened.length > 0) out.push({ ...base, kind: 'host-new' });
  for (const p of diff.opened) out.push({ ...base, kind: 'service-new', port: p.port, detail: p });
  for (const p of diff.closed) out.push({ ...base, kind: 'service-closed', port: p.port, detail: p });
  for (const c of diff.changed) out.push({ ...base, kind: 'service-changed', port: c.port, detail: c });
  return out;
}
