import type { HostResult, HostSessionState } from '../../strategies/index.js';
import { PortRanges, PortbanditError } from '../core/index.js';
import { MAX_LIKELY_PORTS } from '../protocol/index.js';

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
  /**
   * A first round's `likely` ports (the strategy's head, in its order; at most MAX_LIKELY_PORTS),
   * kept with the lease so that the round, given back or expired and leased again from the
   * queue, still names them (its stored ports keep no order).
   */
  readonly likely?: readonly number[];
  /**
   * Ports open at the host's last visit whose service detection got no answer within the -sV
   * time-out there (its ports marked `silent`): a round skips -sV on them unless its cycle
   * rechecks them (the policy's `silentRecheckCycles`). Absent: none.
   */
  readonly previousSilent?: readonly number[];
  /** A visit begun by a manual rescan: it counts in the cycle's coverage only when the cycle took it for its own (`Leasing.coverageCounts`). */
  readonly manual?: true;
}

/**
 * A list of ports as a stored session holds it: a canonical range spec ("1-1024,8080"), or the
 * numbers themselves (rows written before specs, or a list with a repeated port, which a spec
 * would fold into one).
 */
export type StoredPortList = string | readonly number[];

/** A LeaseSession as stored: its port lists as range specs (a whole-port round is "1-65535", not 65,535 numbers). */
export interface StoredLeaseSession extends Omit<LeaseSession, 'state' | 'previousOpen'> {
  readonly state: Omit<HostSessionState, 'probed' | 'found' | 'pending' | 'unknown' | 'deferred'> & {
    readonly probed: StoredPortList;
    readonly found: StoredPortList;
    readonly pending: StoredPortList;
    readonly unknown?: StoredPortList;
    /** The rest of a decision split for a first look (64,535 ports on a whole-port visit). */
    readonly deferred?: StoredPortList;
  };
  readonly previousOpen: StoredPortList;
}

/**
 * Lists shorter than this stay lists of numbers in a stored session: a budget's 100 scattered
 * ports are no shorter as a spec, and sorting and writing one cost ~4% of the coordinator's CPU
 * per visit in process. Sweeps (thousands of ports, mostly runs) are where specs pay.
 */
export const SESSION_SPEC_MIN_PORTS = 512;

/**
 * The compact form of a session's port list: its canonical spec for a list of at least
 * SESSION_SPEC_MIN_PORTS, unless the list repeats a port (then the list: a host session counts
 * what it probed by the list's length); shorter lists as they are. A spec does not keep the
 * order: every reader of these lists (host session, strategies) uses them as sets.
 */
export function storedPortList(ports: readonly number[]): StoredPortList {
  if (ports.length < SESSION_SPEC_MIN_PORTS) return ports;
  const ranges = PortRanges.fromPorts(ports);
  return ranges.size === ports.length ? ranges.toString() : ports;
}

/** The session as stored: its port lists as specs (see storedPortList). */
export function storeLeaseSession(session: LeaseSession): StoredLeaseSession {
  const { probed, found, pending, unknown, deferred, ...state } = session.state;
  return {
    ...session,
    state: {
      ...state,
      probed: storedPortList(probed),
      found: storedPortList(found),
      pending: storedPortList(pending),
      ...(unknown !== undefined ? { unknown: storedPortList(unknown) } : {}),
      ...(deferred !== undefined ? { deferred: storedPortList(deferred) } : {}),
    },
    previousOpen: storedPortList(session.previousOpen),
  };
}

/**
 * A finished visit as the shared learning queue stores it (PostgreSQL): its port lists as specs.
 * A whole-port visit's `probed` was 65,535 numbers (~380 KB) per finished visit, written and read
 * back by the learner.
 */
export function storeHostResult(result: HostResult): unknown {
  return {
    ...result,
    probed: storedPortList(result.probed),
    open: storedPortList(result.open),
    previousOpen: storedPortList(result.previousOpen),
  };
}

/** A learning-queue item's result read back: port specs decoded, lists (items written before specs) taken as they are. */
export function readHostResult(value: unknown): HostResult {
  if (!isObject(value)) return value as HostResult;
  const decode = (list: unknown): unknown => (typeof list === 'string' ? (list === '' ? [] : PortRanges.parse(list).toArray()) : list);
  return {
    ...value,
    probed: decode(value.probed),
    open: decode(value.open),
    previousOpen: decode(value.previousOpen),
  } as unknown as HostResult;
}

/**
 * The ports of a stored lease or queue item (`portRanges`). A spec that does not read is damage
 * to the store (PB_ERR_STORE naming `where`), not bad input from the agent.
 */
export function storedPortRanges(spec: unknown, where: string): PortRanges {
  if (typeof spec !== 'string' || spec === '')
    throw new PortbanditError('PB_ERR_STORE', 'the stored ports are not a port range spec', { where: `${where}.portRanges` });
  try {
    return PortRanges.parse(spec);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_STORE', `the stored ports are damaged: ${(cause as Error).message}`, {
      where: `${where}.portRanges`,
      cause,
    });
  }
}

/** The ids a lease's session names (its visit, its baseline, an older lease's prior round), whatever else it holds. */
export interface LeaseSessionRefs {
  readonly visitId?: string;
  readonly baselineScanId?: string;
  readonly priorScanId?: string;
}

/**
 * The session of a lease or queue item read back from the store, checked to be a LeaseSession
 * (the store keeps it as opaque JSON), its port lists read back from their specs (or, in rows
 * written before specs, taken as the lists of numbers they are). `where` names the lease or queue item for the error.
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
  // Port lists: a range spec, or (rows written before specs) a list of numbers.
  const list = (field: string, stored: unknown): readonly number[] => {
    if (isNumberList(stored)) return stored;
    if (typeof stored !== 'string') return fail(field, 'a port range spec or a list of numbers');
    if (stored === '') return [];
    try {
      return PortRanges.parse(stored).toArray();
    } catch {
      return fail(field, `a port range spec (got ${JSON.stringify(stored.slice(0, 40))})`);
    }
  };
  const probed = list('state.probed', state.probed);
  const found = list('state.found', state.found);
  const pending = list('state.pending', state.pending);
  const unknown = state.unknown !== undefined ? list('state.unknown', state.unknown) : undefined;
  const deferred = state.deferred !== undefined ? list('state.deferred', state.deferred) : undefined;
  if (state.split !== undefined && !isFiniteNumber(state.split)) fail('state.split', 'a number');
  if (typeof state.done !== 'boolean') fail('state.done', 'true or false');
  if (typeof value.policy !== 'string') fail('policy', 'a string');
  if (!isFiniteNumber(value.epoch)) fail('epoch', 'a number');
  if (typeof value.prefix !== 'string') fail('prefix', 'a string');
  const previousOpen = list('previousOpen', value.previousOpen);
  if (!isFiniteNumber(value.previousEpoch)) fail('previousEpoch', 'a number');
  for (const key of ['visitId', 'baselineScanId', 'priorScanId', 'group'] as const)
    if (value[key] !== undefined && typeof value[key] !== 'string') fail(key, 'a string');
  if (value.manual !== undefined && value.manual !== true) fail('manual', 'true when present');
  if (value.likely !== undefined && !(isPortList(value.likely) && value.likely.length <= MAX_LIKELY_PORTS))
    fail('likely', `a list of at most ${MAX_LIKELY_PORTS} ports`);
  if (value.previousSilent !== undefined && !isPortList(value.previousSilent)) fail('previousSilent', 'a list of ports');
  const decoded: HostSessionState = {
    ...(state as unknown as HostSessionState),
    probed,
    found,
    pending,
    ...(unknown !== undefined ? { unknown } : {}),
    ...(deferred !== undefined ? { deferred } : {}),
  };
  return { ...(value as unknown as LeaseSession), state: decoded, previousOpen };
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

function isPortList(value: unknown): value is readonly number[] {
  return isNumberList(value) && value.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535);
}

function isNumberList(value: unknown): value is readonly number[] {
  if (!Array.isArray(value)) return false;
  for (const v of value) if (typeof v !== 'number') return false;
  return true;
}
