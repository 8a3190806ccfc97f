import type { HostContext } from './types.js';

/**
 * How much of a host-visit's allowance follows what the host showed last time. A host that
 * answered on no port at its last visit gets only a floor (enough to see it come back); a host
 * never visited gets at most a first look (nmap's top ports), not a full sweep of every port: in a
 * real scope most addresses are dead, and a rate-derived budget on a small scope is every port.
 * Live hosts keep the strategy's allowance.
 */
export const LIVENESS = {
  /** Most probes for a host that answered on no port at its last visit. */
  deadFloor: 100,
  /** Most probes for a host never visited. */
  firstVisit: 1000,
} as const;

/** The plain baselines probe what they are told, alive or not (fixed reproduces Natlas exactly). */
const BASELINES = new Set(['fixed', 'top-k', 'random']);

/** The allowance after the liveness caps (see LIVENESS); baselines are left alone. */
export function livenessAllowance(strategy: string, host: Pick<HostContext, 'previousEpoch' | 'previousOpen'>, allowance: number): number {
  if (BASELINES.has(strategy)) return allowance;
  if (host.previousEpoch < 0) return Math.min(allowance, LIVENESS.firstVisit);
  if (host.previousOpen.length === 0) return Math.min(allowance, LIVENESS.deadFloor);
  return allowance;
}
