import { PortRanges, PortbanditError } from '../core/index.js';
import type { Lease, QueuedWorkInput } from './types.js';

/**
 * Leases and queue items as stored (JSON documents). Their ports are a canonical range spec
 * (`portRanges`, "1-1024,8080"): a whole-port item is 9 bytes instead of ~380 KB of numbers.
 * Rows written before that hold `ports`, a list of numbers; these readers turn such a row into
 * the current shape, so a store written by an older version loads without a migration.
 */

/** A lease read back from its stored JSON (old rows' `ports` list becomes `portRanges`). */
export function readLeaseDoc(doc: unknown, where = 'lease'): Lease {
  return upgradePorts(JSON.parse(doc as string) as Record<string, unknown>, where) as unknown as Lease;
}

/** A queue item read back from its stored JSON (old rows' `ports` list becomes `portRanges`). */
export function readQueuedDoc(doc: unknown, where = 'queue item'): QueuedWorkInput {
  return upgradePorts(JSON.parse(doc as string) as Record<string, unknown>, where) as unknown as QueuedWorkInput;
}

function upgradePorts(value: Record<string, unknown>, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || !('ports' in value)) return value;
  const { ports, ...rest } = value;
  if (ports === undefined) return rest;
  if (!Array.isArray(ports))
    throw new PortbanditError('PB_ERR_STORE', 'the stored ports are not a list of numbers', { where: `${where}.ports` });
  let ranges: PortRanges;
  try {
    ranges = PortRanges.fromPorts(ports as number[], `${where}.ports`);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_STORE', `the stored ports are damaged: ${(cause as Error).message}`, {
      where: `${where}.ports`,
      cause,
    });
  }
  return { ...rest, portRanges: ranges.toString() };
}
