import type { Lease, ScanDocument, ScannedPort } from '../../src/store/types.js';

/** A lease with fixed content, for equality checks. */
export function lease(id: string, ip: string, agentId: string, deadline: number): Lease {
  return {
    id,
    ip,
    agentId,
    deadline,
    portRanges: '22,80,443',
    tags: ['dmz'],
    session: { round: 0 },
    issuedAt: deadline - 100,
    round: 0,
    reason: 'cycle',
  };
}

/** An open port with a service name and optional banner details. */
export function open(port: number, service: string, extra: Partial<ScannedPort> = {}): ScannedPort {
  return { port, state: 'open', service, cpes: [], scripts: [], ...extra };
}

/** A scan document with plausible defaults. */
export function scan(
  scanId: string,
  ip: string,
  finishedAt: number,
  ports: ScannedPort[],
  extra: Partial<ScanDocument> = {},
): ScanDocument {
  return {
    scanId,
    ip,
    tags: [],
    agentId: 'agent-1',
    startedAt: finishedAt - 60_000,
    finishedAt,
    epoch: 0,
    cycle: 1,
    ports,
    preflight: 'masscan',
    probedPorts: '1-1024',
    timings: { total: 60_000 },
    ...extra,
  };
}

export function day(n: number): string {
  return `2026-11-0${n}`;
}
