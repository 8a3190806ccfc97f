import { PortbanditError, PortRanges, isPort } from '../core/index.js';
import type { NewStoreEvent, ScanDocument, ScannedPort } from '../store/index.js';
import type { ResultSubmission } from '../protocol/index.js';

/**
 * A host visit is the unit of truth: every round of it (round 0, the strategy's follow-ups, a
 * re-issue after an expired lease) lands in ONE scan document, and each port of it is open,
 * observed not open (closed or filtered), or unknown (never observed: a time-out, a failed
 * scanner). Events compare each port with its last KNOWN state, so a time-out never reads as a
 * closed service and a follow-up round never reads as a change.
 */

/** What one round of a visit contributes, already checked against its lease. */
export interface VisitRound {
  /** The visit's id: its first lease's id (also the scan document's id). */
  readonly visitId: string;
  readonly leaseId: string;
  readonly ip: string;
  readonly tags: readonly string[];
  readonly agentId: string;
  readonly epoch: number;
  readonly cycle: number;
  /** The ports this round handed out (its lease's ranges). */
  readonly leasePorts: PortRanges;
  readonly submission: ResultSubmission;
  /** The visit as stored after its earlier rounds (undefined for its first round). */
  readonly prior: ScanDocument | undefined;
  /** The host's previous visit in which it answered (undefined for a host never seen). */
  readonly baseline: ScanDocument | undefined;
}

export interface VisitUpdate {
  readonly scan: ScanDocument;
  readonly events: NewStoreEvent[];
  /** Ports found open in this round. */
  readonly open: number[];
  /** Ports of this round whose state is unknown. */
  readonly unknown: number[];
}

/** The ports a scan document knew open: `knownOpen`, or for older documents its open ports. */
export function knownOpenOf(scan: ScanDocument | undefined): number[] {
  if (!scan) return [];
  if (scan.knownOpen) return [...scan.knownOpen];
  return scan.ports.filter((p) => p.state === 'open').map((p) => p.port);
}

/** The ports a visit found open whose service detection got no answer (`silent`), ascending. */
export function silentOf(scan: ScanDocument): number[] {
  return scan.ports.filter((p) => p.silent === true && p.state === 'open').map((p) => p.port);
}

function toScannedPorts(ports: ResultSubmission['ports']): ScannedPort[] {
  const byPort = new Map<number, ScannedPort>();
  for (const p of ports) {
    byPort.set(p.port, {
      port: p.port,
      protocol: 'tcp',
      state: p.state,
      ...(p.service !== undefined ? { service: p.service } : {}),
      ...(p.product !== undefined ? { product: p.product } : {}),
      ...(p.version !== undefined ? { version: p.version } : {}),
      ...(p.extrainfo !== undefined ? { extrainfo: p.extrainfo } : {}),
      cpes: [...(p.cpes ?? [])],
      scripts: (p.scripts ?? []).map((s) => ({ id: s.id, output: s.output, ...(s.fields !== undefined ? { fields: s.fields } : {}) })),
      ...(p.silent === true && p.state === 'open' ? { silent: true as const } : {}),
    });
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

function view(p: ScannedPort | undefined): { service?: string; product?: string; version?: string } {
  if (!p) return {};
  return {
    ...(p.service !== undefined ? { service: p.service } : {}),
    ...(p.product !== undefined ? { product: p.product } : {}),
    ...(p.version !== undefined ? { version: p.version } : {}),
  };
}

/** True when a port's service detail was observed (an incomplete visit may lack it). */
function hasDetail(p: ScannedPort): boolean {
  return p.service !== undefined || p.product !== undefined || p.version !== undefined;
}

/**
 * The canonical spec of `a` (a spec) plus the ports `b`: one merge of `a`'s ranges with `b`
 * (sorted first if it is not), without expanding either into single ports (a round's union was
 * ~8% of the allocations per stored result, and a visit that probed 1-65535 expanded 65,535).
 */
export function unionSpec(a: string | undefined, b: readonly number[]): string {
  const bounds: ArrayLike<number> = a === undefined || a === '' ? EMPTY_BOUNDS : PortRanges.parse(a).bounds;
  const points = isAscending(b) ? b : [...b].sort((x, y) => x - y);
  const out: number[] = [];
  const add = (start: number, end: number): void => {
    const last = out.length - 1;
    if (last > 0 && start <= out[last]! + 1) {
      if (end > out[last]!) out[last] = end;
    } else out.push(start, end);
  };
  let i = 0;
  let j = 0;
  while (i < bounds.length || j < points.length) {
    if (j >= points.length || (i < bounds.length && bounds[i]! <= points[j]!)) {
      add(bounds[i]!, bounds[i + 1]!);
      i += 2;
    } else {
      const p = points[j++]!;
      if (!isPort(p)) throw new PortbanditError('PB_ERR_PORT_SPEC', `expected ports 1-65535, got ${JSON.stringify(p)}`);
      add(p, p);
    }
  }
  let spec = '';
  for (let k = 0; k < out.length; k += 2) {
    if (k > 0) spec += ',';
    spec += out[k] === out[k + 1] ? String(out[k]) : `${out[k]}-${out[k + 1]}`;
  }
  return spec;
}

const EMPTY_BOUNDS = new Uint32Array(0);

/** The canonical spec of `a` (a spec, or nothing) and the ranges `b` together: one merge of the two sorted range lists. */
export function unionRanges(a: string | undefined, b: PortRanges): string {
  if (a === undefined || a === '') return b.toString();
  const x = PortRanges.parse(a).bounds;
  const y = b.bounds;
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    let start: number;
    let end: number;
    if (j >= y.length || (i < x.length && x[i]! <= y[j]!)) {
      start = x[i]!;
      end = x[i + 1]!;
      i += 2;
    } else {
      start = y[j]!;
      end = y[j + 1]!;
      j += 2;
    }
    const last = out.length - 1;
    if (last > 0 && start <= out[last]! + 1) {
      if (end > out[last]!) out[last] = end;
    } else out.push(start, end);
  }
  let spec = '';
  for (let k = 0; k < out.length; k += 2) {
    if (k > 0) spec += ',';
    spec += out[k] === out[k + 1] ? String(out[k]) : `${out[k]}-${out[k + 1]}`;
  }
  return spec;
}

function isAscending(ports: readonly number[]): boolean {
  for (let i = 1; i < ports.length; i++) if (ports[i]! < ports[i - 1]!) return false;
  return true;
}

function sumTimings(
  a: Readonly<Record<string, number>> | undefined,
  b: Readonly<Record<string, number>> | undefined,
): Record<string, number> {
  const out: Record<string, number> = { ...(a ?? {}) };
  for (const [k, v] of Object.entries(b ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * Fold one round into its visit: the merged document (the union of what was probed and found)
 * and the events of THIS round's ports against their last known state before the visit.
 */
export function foldRound(r: VisitRound): VisitUpdate {
  const sub = r.submission;
  // A round with no answer at all (a connect sweep's `down`) says the host is down only when no
  // earlier round of the visit answered: after a first look that did, silence on the rest of the
  // port space is a firewall dropping those ports (observed not open), not a host gone.
  const down = sub.status === 'down' && (r.prior === undefined || r.prior.host?.status === 'down');
  const handed = r.leasePorts;
  const unknown = sub.unknownPorts
    ? PortRanges.parse(sub.unknownPorts)
        .toArray()
        .filter((p) => handed.has(p))
    : [];
  const unknownSet = new Set(unknown);
  const roundPorts = down ? [] : toScannedPorts(sub.ports);
  const open = roundPorts.filter((p) => p.state === 'open').map((p) => p.port);
  const openSet = new Set(open);

  const byPort = new Map<number, ScannedPort>();
  for (const p of r.prior?.ports ?? []) byPort.set(p.port, p);
  for (const p of roundPorts) byPort.set(p.port, p);
  const ports = [...byPort.values()].sort((a, b) => a.port - b.port);

  // Last known open ports: carried from the visit so far (or the previous visit), minus what this
  // round observed not open, plus what it found open. A silent (down) host teaches nothing.
  const known = new Set(r.prior ? knownOpenOf(r.prior) : knownOpenOf(r.baseline));
  if (!down) {
    // The known ports this round observed not open (the lease's ports are not walked one by one).
    for (const p of [...known]) if (handed.has(p) && !unknownSet.has(p) && !openSet.has(p)) known.delete(p);
    for (const p of open) known.add(p);
  }

  const incomplete = [...new Set([r.prior?.incomplete, sub.incomplete].filter((x): x is string => x !== undefined && x !== ''))].join('; ');
  const startedAt = r.prior ? Math.min(r.prior.startedAt, sub.startedAt) : sub.startedAt;
  const finishedAt = r.prior ? Math.max(r.prior.finishedAt, sub.finishedAt) : sub.finishedAt;
  // The visit's status is this fold's: a first look that answered nothing (down) followed by a
  // round that answered makes the visit up, not a down host with open ports.
  const { status: _priorStatus, ...priorHost } = r.prior?.host ?? {};
  const { status: _roundStatus, ...roundHost } = sub.host ?? {};
  const host = { ...priorHost, ...roundHost, ...(down ? { status: 'down' } : {}) };
  const unknownSpec = unionSpec(r.prior?.unknownPorts, unknown);
  const scan: ScanDocument = {
    scanId: r.visitId,
    ip: r.ip,
    tags: [...r.tags],
    agentId: r.agentId,
    startedAt,
    finishedAt,
    epoch: r.epoch,
    cycle: r.cycle,
    ports,
    preflight: sub.preflight,
    probedPorts: unionRanges(r.prior?.probedPorts, r.leasePorts),
    ...(unknownSpec !== '' ? { unknownPorts: unknownSpec } : {}),
    ...(incomplete !== '' ? { incomplete } : {}),
    rounds: [...(r.prior ? (r.prior.rounds ?? [r.prior.scanId]) : []), r.leaseId],
    knownOpen: [...known].sort((a, b) => a - b),
    timings: { ...sumTimings(r.prior?.timings, sub.timings), wall: finishedAt - startedAt },
    ...(Object.keys(host).length > 0 ? { host } : {}),
  };
  return { scan, events: down ? [] : roundEvents(r, scan, roundPorts, unknownSet, openSet), open, unknown };
}

function roundEvents(
  r: VisitRound,
  scan: ScanDocument,
  roundPorts: readonly ScannedPort[],
  unknown: ReadonlySet<number>,
  open: ReadonlySet<number>,
): NewStoreEvent[] {
  const base = { at: scan.finishedAt, ip: scan.ip, scanId: scan.scanId, tags: scan.tags };
  const before = new Set(knownOpenOf(r.baseline));
  const beforePorts = new Map((r.baseline?.ports ?? []).filter((p) => p.state === 'open').map((p) => [p.port, p]));
  const now = new Map(roundPorts.map((p) => [p.port, p]));
  const out: NewStoreEvent[] = [];
  const priorOpen = (r.prior?.ports ?? []).some((p) => p.state === 'open');
  if (r.baseline === undefined && !priorOpen && open.size > 0) out.push({ ...base, kind: 'host-new' });
  // Only a port open now or known open before can cause an event: those of this round, in port
  // order (whole-port rounds made this a walk over 65,535 ports per result).
  const candidates = [...new Set([...open, ...before])].filter((p) => r.leasePorts.has(p)).sort((a, b) => a - b);
  for (const port of candidates) {
    if (unknown.has(port)) continue; // never observed: no claim either way
    const after = now.get(port);
    if (open.has(port)) {
      if (!before.has(port)) out.push({ ...base, kind: 'service-new', port, detail: { port, ...view(after) } });
      else {
        const was = beforePorts.get(port);
        // Compare only details both visits observed: a time-out's missing detail is no change.
        if (
          was &&
          after &&
          hasDetail(was) &&
          hasDetail(after) &&
          (was.service !== after.service || was.product !== after.product || was.version !== after.version)
        ) {
          out.push({ ...base, kind: 'service-changed', port, detail: { port, before: view(was), after: view(after) } });
        }
      }
    } else if (before.has(port)) {
      out.push({ ...base, kind: 'service-closed', port, detail: { port, ...view(beforePorts.get(port)) } });
    }
  }
  return out;
}

/** The visit id a follow-up lease id names (`${visitId}.${round}.${random}`), or undefined. */
export function visitOfLease(leaseId: string): string | undefined {
  const dot = leaseId.indexOf('.');
  return dot > 0 ? leaseId.slice(0, dot) : undefined;
}
