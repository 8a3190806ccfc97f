import type { HostSessionState } from '../../strategies/index.js';
import { PortbanditError } from '../core/index.js';

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

/** The ids a lease's session names (its visit, its baseline, an older lease's prior round), whatever else it holds. */
export interface LeaseSessionRefs {
  readonly visitId?: string;
  readonly baselineScanId?: string;
  readonly priorScanId?: string;
}

/**
 * The session of a lease or queue item read back from the store, checked to be a LeaseSession
 * (the store keeps it as opaque JSON). `where` names the lease or queue item for the error.
 * Throws PB_ERR_STORE naming the field that does not fit: a stored session that is not one is
 * damage to the store, not bad input from a client.
 */
export function readLeaseSession(value: unknown, where: string): LeaseSession {
  const fail = (field: string, expected: string): never => {
    throw new PortbanditError('PB_ERR_STORE', `the stored host session is damaged: ${field} is not ${expected}`, { where });
  };
  if (!isObject(value)) return fail('session', 'an object');
  const state = value.state;
  if (!isObject(state)) return fail('state', 'an object');
  if (!isFiniteNumber(state.allowance)) fail('state.allowance', 'a number');
  if (!isFiniteNumber(state.round)) fail('state.round', 'a number');
  for (const key of ['probed', 'found', 'pending'] as const) if (!isNumberList(state[key])) fail(`state.${key}`, 'a list of numbers');
  if (state.unknown !== undefined && !isNumberList(state.unknown)) fail('state.unknown', 'a list of numbers');
  if (typeof state.done !== 'boolean') fail('state.done', 'true or false');
  if (typeof value.policy !== 'string') fail('policy', 'a string');
  if (!isFiniteNumber(value.epoch)) fail('epoch', 'a number');
  if (typeof value.prefix !== 'string') fail('prefix', 'a string');
  if (!isNumberList(value.previousOpen)) fail('previousOpen', 'a list of numbers');
  if (!isFiniteNumber(value.previousEpoch)) fail('previousEpoch', 'a number');
  for (const key of ['visitId', 'baselineScanId', 'priorScanId', 'group'] as const)
    if (value[key] !== undefined && typeof value[key] !== 'string') fail(key, 'a string');
  return value as unknown as LeaseSession;
}

/** The scan ids a stored session refers to; fields that are absent or not strings are left out. */
export function leaseSessionRefs(value: unknown): LeaseSessionRefs {
  if (!isObject(value)) return {};
  const refs: { visitId?: string; baselineScanId?: string; priorScanId?: string } = {};
  if (typeof value.visitId === 'string') refs.visitId = value.visitId;
  if (typeof value.baselineScanId === 'string') refs.baselineScanId = value.baselineScanId;
  if (typeof value.priorScanId === 'string') refs.priorScanId = value.priorScanId;
  return refs;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isNumberList(value: unknown): value is readonly number[] {
  if (!Array.isArray(value)) return false;
  for (const v of value) if (typeof v !== 'number') return false;
  return true;
}
