import type { WorkReason } from './types.js';

/** Fresh positions of the cycle: served last. */
const CYCLE_PRIORITY = 2;
const QUEUE_PRIORITY: Readonly<Record<WorkReason, number>> = { followup: 0, expired: 0, manual: 1, cycle: CYCLE_PRIORITY };

/**
 * The class of a queued item (lower is served first); the queue is served by class, then first
 * in, first out within a class. Visits already under way come first (a follow-up round, a lease
 * re-issued after it expired), then an operator's rescans, then fresh positions of the cycle. A
 * shared cycle is claimed into the queue a block (up to thousands of addresses) at a time:
 * without the classes a visit's next round waited behind every address claimed before it. The
 * stores' migrations set the class of items queued before it existed with the same mapping
 * (written out there: a migration never changes).
 */
export function queuePriority(reason: WorkReason): number {
  return QUEUE_PRIORITY[reason] ?? CYCLE_PRIORITY;
}
