import { PortbanditError } from '../core/index.js';
import type { ResultSubmission } from '../protocol/index.js';

/**
 * Bounds on a result submission that the wire schema cannot express: timestamps against the
 * lease and the clock, and the depth and size of free-form JSON (`host`, script `fields`).
 * A forged `finishedAt` in the far future would otherwise freeze a host's "latest" scan, and a
 * deeply nested `host` would be stored (and break JSON clients) or overflow the stack.
 */

/** Clock difference tolerated between an agent and the coordinator. */
export const SUBMIT_CLOCK_SKEW_MS = 5 * 60_000;

/** Deepest nesting of a free-form field (objects and arrays). */
export const MAX_FIELD_DEPTH = 32;

/** Largest serialised size of one free-form field, and of all of a submission's together. */
export const MAX_FIELD_BYTES = 64 * 1024;
export const MAX_FIELDS_TOTAL_BYTES = 1024 * 1024;

/**
 * Throw PB_ERR_LEASE_EXPIRED when the lease's deadline has passed, PB_ERR_TIMESTAMP when
 * `startedAt <= finishedAt <= now + skew` or `startedAt >= issuedAt - skew` does not hold.
 */
export function checkSubmissionTimes(
  input: Pick<ResultSubmission, 'startedAt' | 'finishedAt'>,
  lease: { readonly id: string; readonly issuedAt: number; readonly deadline: number },
  now: number,
  skewMs = SUBMIT_CLOCK_SKEW_MS,
): void {
  if (now > lease.deadline) {
    throw new PortbanditError(
      'PB_ERR_LEASE_EXPIRED',
      `lease ${lease.id} expired at ${new Date(lease.deadline).toISOString()}; the result is refused (its target goes back to the queue)`,
      { where: 'leaseId' },
    );
  }
  if (input.finishedAt < input.startedAt) {
    throw new PortbanditError('PB_ERR_TIMESTAMP', `finishedAt ${input.finishedAt} is before startedAt ${input.startedAt}`, {
      where: 'finishedAt',
    });
  }
  if (input.finishedAt > now + skewMs) {
    throw new PortbanditError(
      'PB_ERR_TIMESTAMP',
      `finishedAt ${input.finishedAt} is in the future (the coordinator's clock says ${now}; ${skewMs} ms of skew allowed)`,
      { where: 'finishedAt' },
    );
  }
  if (input.startedAt < lease.issuedAt - skewMs) {
    throw new PortbanditError(
      'PB_ERR_TIMESTAMP',
      `startedAt ${input.startedAt} is before lease ${lease.id} was issued (${lease.issuedAt}; ${skewMs} ms of skew allowed)`,
      { where: 'startedAt' },
    );
  }
}

/**
 * Throw PB_ERR_FIELD_LIMIT naming the field when a free-form JSON value nests deeper than
 * `maxDepth` or serialises to more than `maxBytes`. Walks with an explicit stack (never recursion),
 * so any input is safe to check. Returns the serialised size.
 */
export function checkFreeForm(value: unknown, where: string, maxDepth = MAX_FIELD_DEPTH, maxBytes = MAX_FIELD_BYTES): number {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth >= maxDepth) throw new PortbanditError('PB_ERR_FIELD_LIMIT', `nests deeper than ${maxDepth} levels`, { where });
    for (const child of Array.isArray(node) ? node : Object.values(node))
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? '');
  if (bytes > maxBytes)
    throw new PortbanditError('PB_ERR_FIELD_LIMIT', `is ${bytes} bytes of JSON; at most ${maxBytes} are allowed`, { where });
  return bytes;
}

/** The free-form fields of a submission: `host` and each script's `fields`, within their caps. */
export function checkSubmissionFields(input: Pick<ResultSubmission, 'host' | 'ports'>): void {
  let total = 0;
  if (input.host !== undefined) total += checkFreeForm(input.host, 'host');
  input.ports.forEach((p, i) =>
    p.scripts?.forEach((s, j) => {
      if (s.fields !== undefined) total += checkFreeForm(s.fields, `ports[${i}].scripts[${j}].fields`);
    }),
  );
  if (total > MAX_FIELDS_TOTAL_BYTES) {
    throw new PortbanditError(
      'PB_ERR_FIELD_LIMIT',
      `free-form fields total ${total} bytes of JSON; at most ${MAX_FIELDS_TOTAL_BYTES} are allowed`,
      { where: 'host' },
    );
  }
}

/** Every check above, in the order `submit` needs them (one call from Coordinator.submit). */
export function checkSubmission(
  input: ResultSubmission,
  lease: { readonly id: string; readonly issuedAt: number; readonly deadline: number },
  now: number,
): void {
  checkSubmissionFields(input);
  checkSubmissionTimes(input, lease, now);
}
