import type { Lease, QueuedWorkInput } from './types.js';

/** The queue item an expired lease turns into: same target, ports and session, reason `expired`. */
export function requeueItem(lease: Lease, now: number): QueuedWorkInput {
  const item: QueuedWorkInput = {
    ip: lease.ip,
    tags: lease.tags,
    reason: 'expired',
    enqueuedAt: now,
    portRanges: lease.portRanges,
    session: lease.session,
    round: lease.round,
  };
  return lease.cycle === undefined ? item : { ...item, cycle: lease.cycle };
}
