import type { QueuedWorkInput, WorkReason } from './types.js';

/** Fresh positions of the cycle: served last. */
const CYCLE_PRIORITY = 2;
const QUEUE_PRIORITY: Readonly<Record<WorkReason, number>> = { followup: 0, expired: 0, manual: 1, cycle: CYCLE_PRIORITY };
/** A follow-up round of a visit that found nothing so far: with the manual rescans. */
const SILENT_FOLLOWUP_PRIORITY = 1;

/**
 * The class of a queued item (lower is served first); the queue is served by class, then first
 * in, first out within a class. Visits already under way come first (a follow-up round, a lease
 * re-issued after it expired), then an operator's rescans and the follow-up rounds of visits
 * that found nothing so far (`silent`), then fresh positions of the cycle. A shared cycle is
 * claimed into the queue a block (up to thousands of addresses) at a time: without the classes a
 * visit's next round waited behind every address claimed before it. Silent rounds go behind the
 * answering ones because a budget that covers the port space sweeps every address of a small
 * scope: their first looks end at once (nothing for nmap), the live hosts' only after nmap's
 * -sV, so in enqueue order the live hosts' sweeps waited behind those of every dead address (a
 * /24 with 16 live hosts: ~10 minutes at 50,000 packets/s). The stores' migrations set the class
 * of items queued before it existed with the same mapping (written out there: a migration never
 * changes).
 */
export function queuePriority(item: Pick<QueuedWorkInput, 'reason' | 'silent'>): number {
  if (item.reason === 'followup' && item.silent === true) return SILENT_FOLLOWUP_PRIORITY;
  return QUEUE_PRIORITY[item.reason] ?? CYCLE_PRIORITY;
}
