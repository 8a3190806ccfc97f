import type { WorkItem } from '../../src/protocol/index.js';

/**
 * A work item as a coordinator hands it out, for agent tests: a first round of cycle 1 on
 * 127.0.0.1 for port 22, due in a minute, nmap -sV with a 30 s host time-out and no preflight.
 * Tests override what they are about.
 */
export function workItem(over: Partial<Omit<WorkItem, 'scan'>> & { scan?: Partial<WorkItem['scan']> } = {}): WorkItem {
  const { scan, ...rest } = over;
  return {
    protocol: 1,
    leaseId: 'lease-test',
    ip: '127.0.0.1',
    tags: [],
    ports: [22],
    round: 0,
    cycle: 1,
    reason: 'cycle',
    issuedAt: Date.now(),
    deadline: Date.now() + 60_000,
    ...rest,
    scan: { versionDetection: true, scripts: [], hostTimeoutSeconds: 30, scriptTimeoutSeconds: 10, preflight: 'none', ...scan },
  };
}
