import type { HostSessionState } from '../../strategies/host-session.js';

/** What a lease carries besides the ports: enough to resume the host visit in any process. */
export interface LeaseSession {
  readonly state: HostSessionState;
  readonly policy: string;
  readonly epoch: number;
  readonly prefix: string;
  readonly previousOpen: readonly number[];
  readonly previousEpoch: number;
  /** The visit this lease belongs to (its scan document); absent on a visit's first round. */
  readonly visitId?: string;
  /** The host's previous answered visit: what this visit's events compare against. */
  readonly baselineScanId?: string;
  /** Older leases: the scan of the round before (read as `visitId`). */
  readonly priorScanId?: string;
  /** The agent group (vantage point) the visit is scanned from; its later rounds stay in it. */
  readonly group?: string;
}
