import { randomInt } from 'node:crypto';

/**
 * Seconds an overloaded coordinator (PB_ERR_STORE_BUSY, 503) asks a client to wait in its
 * Retry-After header: 1-3, at random, so the agents turned away together do not all come back
 * in the same second.
 */
export function retryAfterSeconds(): number {
  return randomInt(1, 4);
}
