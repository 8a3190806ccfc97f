import type { PortCatalog } from '../../src/catalog/index.js';
import { PortbanditError, PortRanges, MAX_PORT, type Rng } from '../../src/core/index.js';
import { PortPicker } from '../port-picker.js';
import { formatCount } from '../describe.js';
import type { BudgetSplit, CommonOptions, Decision, HostContext, HostResult, ParameterSpec, RoundContext } from '../types.js';
import { CandidateOrder, hashPrefix } from './candidate-order.js';
import {
  type SweepOdds,
  type SweepPlannerState,
  type SweepYieldState,
  SweepPlanner,
  SweepYield,
  mergeSweepPlanners,
  mergeSweepYields,
  validateSweepPlanner,
  validateSweepYield,
} from './sweep-planner.js';

/**
 * The discovery layer every learning strategy composes with (docs/strategies.md, "Discovery").
 * A strategy = a ranking (what it believes, exploitation) + this layer, which decides
 *
 * 1. how large a host-visit's allowance is, from liveness: a host that answered nothing at its
 *    last visit gets a floor (`deadAllowance` of the budget), a never-visited host at most
 *    `firstVisitCap` probes (nmap's top 1,000 when budgets are huge), and hosts that answered get
 *    the rest, so that the AVERAGE over the previous epoch's hosts stays at the budget; what the
 *    answering hosts cannot use (maxPerHost, the port count) goes back to the silent hosts, and a
 *    budget that covers the port space gives every host every port;
 * 2. how much of a live host's allowance goes to discovery (`discoveryShare`), and which ports:
 *    the live hosts of a prefix (/24, /64) probe DISJOINT slices of one candidate order per
 *    epoch, and the prefix's cursors move on across epochs (persisted in the state):
 *      - tier 1: ports open elsewhere in the scope (seen before this epoch), each probed on
 *        `measureHosts` live hosts of the prefix per pass, at most `knownShare` of the prefix's
 *        discovery probes; a port another subnet runs is measured in every prefix every epoch
 *        while the tier fits;
 *      - tiers 2 and 3 (strategies/discovery/candidate-order.ts): nmap's whole table by
 *        frequency including its zero-frequency entries, then every other port in a seeded
 *        per-prefix permutation; a full pass over all 65,535 ports takes
 *        65,535 / (live hosts x width x (1 - tier-1 share)) epochs (explain prints it).
 *
 * 3. full sweeps, one more tier (strategies/discovery/sweep-planner.ts): one live host of each
 *    due prefix probes every probeable port, funded by lowering the other hosts' allowance so
 *    the epoch stays at the budget, with a share that follows the sweeps' measured yield
 *    (`sweepShare`, `sweepTarget`, `yieldMemory`, `yieldPrior`: adaptive's defaults keep its
 *    cumulative yield at full share from epoch 0, the bandits follow the recent yield).
 *
 * Coordination needs no messages: a host's slice is its rank among the prefix's hosts that
 * answered in the previous epoch (a 256-bit map per prefix, from the last octet of IPv4
 * addresses or the low byte of IPv6 ones), and an epoch's plan (cursors, spans) uses only what
 * was learned in earlier epochs, so it does not change while the epoch runs.
 */

/** Tunables of the discovery layer, shared by every learning strategy. */
export interface DiscoveryParams {
  readonly discoveryShare: number;
  readonly deadAllowance: number;
  readonly firstVisitCap: number;
  readonly knownShare: number;
  readonly measureHosts: number;
  readonly sweepShare: number;
  readonly sweepTarget: number;
  readonly resweepEpochs: number;
  readonly yieldMemory: number;
  readonly yieldPrior: number;
  readonly sweepMinBudget: number;
  readonly sweepWithinShare: boolean;
  readonly sliceYield: boolean;
}

/** The defaults that differ per strategy. */
export interface DiscoveryDefaults {
  readonly discoveryShare: number;
  readonly sweepShare: number;
  readonly sweepTarget: number;
  readonly yieldMemory: number;
  readonly yieldPrior: number;
  readonly sweepMinBudget: number;
  readonly sweepWithinShare: boolean;
  /** The slice width follows the slices' measured yield (default false). */
  readonly sliceYield?: boolean;
}

/** ParameterSpecs of the discovery layer (some defaults differ per strategy). */
export function discoveryParameters(defaults: DiscoveryDefaults): ParameterSpec[] {
  const { discoveryShare } = defaults;
  return [
    {
      name: 'discoveryShare',
      type: 'number',
      default: discoveryShare,
      min: 0,
      max: 0.9,
      description:
        "Share of a live host's allowance spent on coordinated discovery: the prefix's live hosts probe disjoint slices of one candidate order (ports open elsewhere in the scope, nmap's whole table, then every other port), rotated across epochs.",
    },
    {
      name: 'deadAllowance',
      type: 'number',
      default: 0.1,
      min: 0,
      max: 1,
      description:
        'Allowance floor of a host that answered nothing at its last visit, as a share of the budget (at least 1 probe, so a host that comes back is seen); live hosts get the rest, so the average stays at the budget, and what they cannot use (capped at maxPerHost or the port count) goes back to the silent hosts.',
    },
    {
      name: 'firstVisitCap',
      type: 'integer',
      default: 1000,
      min: 1,
      max: 65535,
      description:
        "Allowance cap of a host never visited before, and of a silent host's floor (nmap's top 1,000 under a budget of thousands): a mostly-dead scope is not swept on every address at its first visit. A budget that covers every port gives every port.",
    },
    {
      name: 'knownShare',
      type: 'number',
      default: 0.5,
      min: 0,
      max: 1,
      description:
        "At most this share of a prefix's discovery probes goes to ports seen open elsewhere in the scope (tier 1) before nmap's table and the rest of the port space.",
    },
    {
      name: 'measureHosts',
      type: 'integer',
      default: 3,
      min: 1,
      max: 256,
      description:
        'Live hosts of a prefix that probe each port open elsewhere in the scope per pass: a port is "measured" in a prefix when this many of its hosts were probed for it.',
    },
    {
      name: 'sweepShare',
      type: 'number',
      default: defaults.sweepShare,
      min: 0,
      max: 0.9,
      description:
        "At most this share of an epoch's budget funds full sweeps (all probeable ports of one live host per due prefix), the discovery tier whose share follows its measured yield; the other hosts' allowance is lowered so the average stays at the budget.",
    },
    {
      name: 'sweepTarget',
      type: 'number',
      default: defaults.sweepTarget,
      min: 0,
      max: 1e9,
      description:
        'Hits per sweep (other hosts of the prefix found, the next epoch, on ports a sweep found first) at which sweeps get their full share; below it the share shrinks in proportion (0 = never shrink).',
    },
    {
      name: 'resweepEpochs',
      type: 'integer',
      default: 3,
      min: 0,
      max: 1e6,
      description: 'A prefix is due for another full sweep when none of its hosts was swept for more than this many epochs.',
    },
    {
      name: 'yieldMemory',
      type: 'number',
      default: defaults.yieldMemory,
      min: 0.01,
      max: 1,
      description:
        'Weight per epoch of age of a sweep and its hits in the measured yield: 1 = the cumulative yield since the first sweep, lower = the recent yield (the sweep share falls once sweeps stop finding ports that spread).',
    },
    {
      name: 'yieldPrior',
      type: 'number',
      default: defaults.yieldPrior,
      min: 0,
      max: 1,
      description:
        'The yield assumed before any is measured, as a share of sweepTarget (one pseudo-sweep that fades like data): 1 = sweeps at full share from the first epoch that can fund them.',
    },
    {
      name: 'sweepMinBudget',
      type: 'integer',
      default: defaults.sweepMinBudget,
      min: 0,
      max: 65535,
      description:
        'No full sweeps below this budget (probes per host-epoch): a sweep costs 65,535 / budget host-visits, and at small budgets the ranked ports those visits would probe are worth more than what a sweep finds.',
    },
    {
      name: 'sweepWithinShare',
      type: 'boolean',
      default: defaults.sweepWithinShare,
      description:
        'No epoch spends more than the sweep share on sweeps: a scope whose epoch budget times the share cannot hold one whole sweep gets none (false = pace whole sweeps across epochs, so an epoch of a small scope may spend most of its budget on one).',
    },
    {
      name: 'sliceYield',
      type: 'boolean',
      default: defaults.sliceYield ?? false,
      description:
        "The discovery share follows the slices' measured yield, as the sweeps' does: hits per port a slice found first (other hosts of its prefix found with it the next epoch), halved per epoch of age, over four hits; at least a tenth of discoveryShare. Where slices find only one-offs (a scope that follows nmap's table) their probes go back to the ranking (and thompson's draws outside its candidates shrink by the same factor).",
    },
  ];
}

/** Pick DiscoveryParams out of a strategy's parsed parameters. */
export function pickDiscoveryParams(p: DiscoveryParams): DiscoveryParams {
  return {
    discoveryShare: p.discoveryShare,
    deadAllowance: p.deadAllowance,
    firstVisitCap: p.firstVisitCap,
    knownShare: p.knownShare,
    measureHosts: p.measureHosts,
    sweepShare: p.sweepShare,
    sweepTarget: p.sweepTarget,
    resweepEpochs: p.resweepEpochs,
    yieldMemory: p.yieldMemory,
    yieldPrior: p.yieldPrior,
    sweepMinBudget: p.sweepMinBudget,
    sweepWithinShare: p.sweepWithinShare,
    sliceYield: p.sliceYield,
  };
}

/** The plain-JSON state of the discovery layer. */
export interface DiscoveryState {
  readonly version: 1;
  /** Host results of the two latest epochs by liveness: [epoch, answered, silent], ascending. */
  readonly hosts: ReadonlyArray<readonly [epoch: number, live: number, dead: number]>;
  /** Ports seen open in the scope (teaching results) and the epoch first seen: [port, epoch], ports ascending. */
  readonly known: ReadonlyArray<readonly [port: number, epoch: number]>;
  /**
   * Per prefix, ascending: the latest epoch plan (its epoch, the tier-1 and tier-2/3 cursors
   * and spans) and the live-host maps of the two latest epochs ([epoch, 64 hex digits]).
   */
  readonly prefixes: ReadonlyArray<
    readonly [
      prefix: string,
      planEpoch: number,
      c1: number,
      c2: number,
      span1: number,
      span2: number,
      live: ReadonlyArray<readonly [number, string]>,
    ]
  >;
  /** The sweep tier: per prefix its latest sweeps and next candidate host (absent in states written before sweeps were shared). */
  readonly sweeps?: SweepPlannerState;
  /** The sweep tier's yield: sweeps and hits per epoch, the ports watched. */
  readonly sweepYield?: SweepYieldState;
  /** The slices' yield (sliceYield): per epoch, ports a slice found first ("sweeps") and the hits on them; absent in older states. */
  readonly sliceYield?: SweepYieldState;
}

/** The empty discovery state. */
export function emptyDiscoveryState(): DiscoveryState {
  return { version: 1, hosts: [], known: [], prefixes: [], sweeps: { hosts: [], prefixes: [] }, sweepYield: { counts: [], watch: [] } };
}

interface Plan {
  epoch: number;
  c1: number;
  c2: number;
  span1: number;
  span2: number;
}

interface PrefixInfo {
  plan: Plan;
  /** Live maps, latest two epochs, ascending by epoch. */
  live: Array<[number, Uint32Array]>;
  hash: number;
}

/** The position of a host inside its prefix: last octet (IPv4) or low byte (IPv6). */
export function hostPosition(ip: string): number {
  const dot = ip.lastIndexOf('.');
  if (dot >= 0) return Number(ip.slice(dot + 1)) & 0xff;
  const colon = ip.lastIndexOf(':');
  const low = parseInt(ip.slice(colon + 1), 16);
  return Number.isFinite(low) ? low & 0xff : 0;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Set bits of `bits` below position `pos`. */
function rankBelow(bits: Uint32Array, pos: number): number {
  const word = pos >>> 5;
  let n = 0;
  for (let i = 0; i < word; i++) n += popcount32(bits[i]!);
  const mask = (pos & 31) === 0 ? 0 : (1 << (pos & 31)) - 1;
  return n + popcount32(bits[word]! & mask);
}

function countBits(bits: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < 8; i++) n += popcount32(bits[i]!);
  return n;
}

function bitsToHex(bits: Uint32Array): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += bits[i]!.toString(16).padStart(8, '0');
  return s;
}

function hexToBits(hex: string, where: string): Uint32Array {
  if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex))
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected 64 lowercase hex digits', { where });
  const bits = new Uint32Array(8);
  for (let i = 0; i < 8; i++) bits[i] = parseInt(hex.slice(8 * i, 8 * i + 8), 16);
  return bits;
}

/** The least share of discoveryShare a slice keeps when its yield is low (discovery never stops). */
export const SLICE_YIELD_FLOOR = 0.1;
/** Hits per port a slice found first at which the slices keep their full share. */
export const SLICE_YIELD_TARGET = 4;

const NO_PLAN: Plan = Object.freeze({ epoch: -1, c1: 0, c2: 0, span1: 0, span2: 0 });
const EMPTY: readonly number[] = Object.freeze([]);

/** Live discovery layer: one per strategy instance. */
export class Discovery {
  readonly params: DiscoveryParams;
  private readonly options: CommonOptions;
  private readonly order: CandidateOrder;
  private readonly pseudoLimit: number;
  private readonly budget: number;
  private readonly hosts = new Map<number, [number, number]>();
  private readonly known = new Map<number, number>();
  private readonly prefixes = new Map<string, PrefixInfo>();
  private knownVersion = 0;
  private readonly planner: SweepPlanner;
  private readonly sweepYield: SweepYield;
  private knownCache: { epoch: number; version: number; ports: number[] } | null = null;
  /** The slices' yield: ports a slice found first, and other hosts of the prefix found with them the next epoch. */
  private readonly sliceSpread: SweepYield;

  /**
   * `pseudoLimit`: a host with at least this many open ports is a pseudo-service host (no
   * discovery, not counted, never swept). `legacySweeps`: the sweep tier of a state written when
   * it was adaptive's own (top-level `sweeps` and `sweepYield`), used when `state` has none.
   */
  constructor(
    options: CommonOptions,
    params: DiscoveryParams,
    catalog: PortCatalog,
    pseudoLimit: number,
    state?: DiscoveryState,
    legacySweeps?: { readonly sweeps?: SweepPlannerState; readonly sweepYield?: SweepYieldState },
  ) {
    this.options = options;
    this.params = params;
    this.order = CandidateOrder.of(catalog);
    this.pseudoLimit = Math.max(1, pseudoLimit);
    this.budget = Math.min(options.budget, options.maxPerHost);
    const valid = state !== undefined && state !== null ? validateDiscoveryState(state, 'state.discovery') : undefined;
    if (valid !== undefined) this.restore(valid);
    const sweeps = valid?.sweeps ?? legacySweeps?.sweeps;
    const yieldState = valid?.sweepYield ?? legacySweeps?.sweepYield;
    this.planner = new SweepPlanner(
      sweeps === undefined ? undefined : validateSweepPlanner(sweeps, valid?.sweeps ? 'state.discovery.sweeps' : 'state.sweeps'),
    );
    this.sliceSpread = new SweepYield(valid?.sliceYield);
    this.sweepYield = new SweepYield(
      yieldState === undefined
        ? undefined
        : validateSweepYield(yieldState, valid?.sweepYield ? 'state.discovery.sweepYield' : 'state.sweepYield'),
    );
  }

  /** The share of `epoch`'s budget the sweep tier may take: `sweepShare` scaled by its measured yield. */
  sweepShareOf(epoch: number): number {
    const p = this.params;
    return p.sweepShare <= 0 || this.budget < p.sweepMinBudget
      ? 0
      : p.sweepShare * this.sweepYield.factor(epoch, p.sweepTarget, p.yieldMemory, p.yieldPrior);
  }

  /**
   * The sweep tier's plan for a host-visit: whether this host is swept, and the average allowance
   * of the hosts that are not (lowered so the epoch stays at the budget). A sweep covers every
   * probeable port; when maxPerHost forbids that there are no sweeps (a capped "sweep" of the
   * lowest ports would never count as one and would repeat every epoch).
   */
  sweepOdds(epoch: number, prefix: string, ip: string, probeable: number): SweepOdds {
    const size = this.options.maxPerHost >= probeable ? probeable : 0;
    return this.planner.odds(
      epoch,
      prefix,
      ip,
      this.budget,
      size,
      this.sweepShareOf(epoch),
      this.params.resweepEpochs,
      this.params.sweepWithinShare,
    );
  }

  /** The average budget of the hosts that are not swept in `epoch`. */
  private budgetOf(epoch: number): number {
    return this.sweepOdds(epoch, '', '', MAX_PORT).others;
  }

  /** Sweep figures for explain(): the yield so far and the share it earns in `epoch`. */
  sweepTotals(epoch: number): { sweeps: number; hits: number; share: number } {
    return { ...this.sweepYield.totals(epoch), share: this.sweepShareOf(epoch) };
  }

  private restore(s: DiscoveryState): void {
    for (const [e, l, d] of s.hosts) this.hosts.set(e, [l, d]);
    for (const [p, e] of s.known) this.known.set(p, e);
    s.prefixes.forEach(([prefix, epoch, c1, c2, span1, span2, live], i) => {
      this.prefixes.set(prefix, {
        plan: { epoch, c1, c2, span1, span2 },
        live: live.map(([e, hex], j) => [e, hexToBits(hex, `state.discovery.prefixes[${i}][6][${j}]`)] as [number, Uint32Array]),
        hash: hashPrefix(prefix),
      });
    });
    this.knownVersion++;
  }

  /** The floor of a host that answered nothing last time, for an average budget `b`. */
  deadFloor(b: number): number {
    return Math.min(b, this.params.firstVisitCap, Math.max(1, Math.ceil(this.params.deadAllowance * b)));
  }

  /** The most one host-visit can use: `maxPerHost`, and the host's probeable port count. */
  private room(probeable: number = MAX_PORT): number {
    return Math.min(this.options.maxPerHost, probeable);
  }

  /** Hosts that answered and hosts that did not in the latest epoch before `epoch`. */
  private liveness(epoch: number): [number, number] | null {
    let best = -1;
    for (const e of this.hosts.keys()) if (e < epoch && e > best) best = e;
    return best < 0 ? null : this.hosts.get(best)!;
  }

  /** (b (L + D) - floor D) / L, what an answering host would get with no cap; null without answering hosts. */
  private liveShare(epoch: number, b: number): number | null {
    const counts = this.liveness(epoch);
    if (counts === null || counts[0] === 0) return null;
    const [l, d] = counts;
    return Math.max(b, (b * (l + d) - this.deadFloor(b) * d) / l);
  }

  /**
   * Average allowance of a host that answered at its last visit, for an average budget `b`:
   * (b (L + D) - floor D) / L with L and D the answering and silent hosts of the latest epoch
   * before `epoch`, so that the epoch's average is b; capped at `room` (maxPerHost, the
   * probeable port count).
   */
  liveAllowance(epoch: number, b: number = this.budget, room: number = this.room()): number {
    const share = this.liveShare(epoch, b);
    return Math.min(room, share ?? b);
  }

  /**
   * Average allowance of a host that answered nothing at its last visit, for an average budget
   * `b` (budget conservation): the floor, or more when the answering hosts cannot use their share
   * of the epoch's budget b (L + D) because it exceeds `room` (maxPerHost, the probeable port
   * count): then the silent hosts get what is left, (b (L + D) - room L) / D, capped at `room`.
   * Under a budget that covers the port space that is every port: under a firewall that drops
   * closed ports, a live host whose services sit outside a first look cannot be told from a dead
   * address, and the budget funds finding it.
   */
  silentAllowance(epoch: number, b: number = this.budget, room: number = this.room()): number {
    const floor = this.deadFloor(b);
    if (b >= room) return room;
    const counts = this.liveness(epoch);
    if (counts === null || counts[1] === 0) return floor;
    const [l, d] = counts;
    const share = this.liveShare(epoch, b);
    // Nobody answered: the whole epoch's budget is the silent hosts'.
    if (share === null) return Math.min(room, Math.max(floor, b));
    if (share <= room) return floor;
    return Math.min(room, Math.max(floor, (b * (l + d) - room * l) / d));
  }

  /** Allowance of a host never visited: a first look of at most `firstVisitCap`, or every port when the budget covers them. */
  newAllowance(b: number = this.budget, room: number = this.room()): number {
    return b >= room ? room : Math.min(b, this.params.firstVisitCap);
  }

  /** How a host is treated: never visited, silent last time, answering, or a pseudo-service host. */
  classify(host: Pick<HostContext, 'previousEpoch' | 'previousOpen'>): 'new' | 'dead' | 'live' | 'pseudo' {
    if (host.previousEpoch < 0) return 'new';
    const n = host.previousOpen.length;
    if (n === 0) return 'dead';
    return n >= this.pseudoLimit ? 'pseudo' : 'live';
  }

  /**
   * The allowance of a host-visit: every probeable port when the sweep tier picked this host (a
   * live one), else by liveness from what the sweeps leave the others, rounded stochastically so
   * the average is exact.
   */
  allowance(host: HostContext, rng: Rng): number {
    const odds = this.sweepOdds(host.epoch, host.prefix, host.ip, host.probeable.size);
    const kind = this.classify(host);
    if (odds.sweep && kind === 'live') return host.probeable.size;
    const b = odds.others;
    const room = this.room(host.probeable.size);
    let x: number;
    switch (kind) {
      case 'new':
        x = this.newAllowance(b, room);
        break;
      case 'dead':
        x = this.silentAllowance(host.epoch, b, room);
        break;
      case 'pseudo':
        x = b;
        break;
      default:
        x = this.liveAllowance(host.epoch, b, room);
    }
    const whole = Math.floor(x);
    return Math.min(this.options.maxPerHost, whole + (x > whole && rng.next() < x - whole ? 1 : 0));
  }

  /**
   * Whether a host's first look this visit is capped by `firstVisitCap` below what an answering
   * host gets (never visited, or silent last time, under a budget above the cap): then the
   * strategy asks for a follow-up round, and `followUpAllowance` lifts the cap if it answered.
   */
  capped(host: HostContext): boolean {
    const kind = this.classify(host);
    if (kind !== 'new' && kind !== 'dead') return false;
    const b = this.budgetOf(host.epoch);
    const room = this.room(host.probeable.size);
    const cap = this.params.firstVisitCap;
    if (kind === 'new') return this.newAllowance(b, room) < Math.min(b, room);
    return this.deadFloor(b) === cap && this.silentAllowance(host.epoch, b, room) < this.liveAllowance(host.epoch, b, room);
  }

  /**
   * The allowance of a capped host's follow-up rounds: an answering host's (rounded
   * stochastically) once an earlier round found a port open, else unchanged.
   */
  followUpAllowance(host: HostContext, found: readonly number[], allowance: number, rng: Rng): number {
    if (found.length === 0 || !this.capped(host)) return allowance;
    const x = this.liveAllowance(host.epoch, this.budgetOf(host.epoch), this.room(host.probeable.size));
    const whole = Math.floor(x);
    return Math.max(allowance, Math.min(this.options.maxPerHost, whole + (x > whole && rng.next() < x - whole ? 1 : 0)));
  }

  /** Discovery probes per answering host in `epoch`. */
  width(epoch: number): number {
    return Math.floor(this.params.discoveryShare * this.sliceFactor(epoch) * this.liveAllowance(epoch, this.budgetOf(epoch)));
  }

  /**
   * With `sliceYield`, the factor on discoveryShare in `epoch`: hits per port a slice found first
   * (other hosts of its prefix found with it the epoch after) over SLICE_YIELD_TARGET, in
   * [SLICE_YIELD_FLOOR, 1], each epoch weighing 0.5^age, with a prior of one find at the target
   * (full share until measured); the sweep tier's rule (SweepYield) applied to slices, one epoch
   * later.
   */
  sliceFactor(epoch: number): number {
    if (!this.params.sliceYield) return 1;
    // One epoch later than the sweeps' rule: every count it uses is of epochs before epoch - 1,
    // complete before `epoch` starts even when results stream in late, so the width (and the
    // hosts' disjoint positions) does not change while an epoch runs.
    return Math.max(SLICE_YIELD_FLOOR, this.sliceSpread.factor(epoch - 1, SLICE_YIELD_TARGET, 0.5, 1));
  }

  /** A teaching result's slice finds: the ports of its slice found open that nobody had seen open in the scope before. */
  private countSlice(r: HostResult): void {
    if (r.sweep) return;
    this.sliceSpread.observeHost(r.prefix, r.epoch, r.open);
    if (r.previousOpen.length === 0 || r.previousOpen.length >= this.pseudoLimit || r.open.length === 0) return;
    const fresh = r.open.filter((p) => !this.known.has(p));
    if (fresh.length === 0) return;
    const slice = this.slice({
      ip: r.ip,
      tags: r.tags,
      prefix: r.prefix,
      epoch: r.epoch,
      previousOpen: r.previousOpen,
      previousEpoch: r.epoch - 1,
      probeable: PortRanges.ALL,
    });
    for (const p of fresh) if (slice.includes(p)) this.sliceSpread.observeSweep(r.prefix, r.epoch, [p]);
  }

  /** Ports seen open in the scope before `epoch`, in (first epoch, port) order: tier 1. */
  knownBefore(epoch: number): readonly number[] {
    const c = this.knownCache;
    if (c !== null && c.epoch === epoch && c.version === this.knownVersion) return c.ports;
    const rows: Array<[number, number]> = [];
    for (const [p, e] of this.known) if (e < epoch) rows.push([e, p]);
    rows.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const ports = rows.map((r) => r[1]);
    this.knownCache = { epoch, version: this.knownVersion, ports };
    return ports;
  }

  /** The live map of the latest epoch before `epoch`, or null. */
  private liveMap(info: PrefixInfo, epoch: number): Uint32Array | null {
    for (let i = info.live.length - 1; i >= 0; i--) if (info.live[i]![0] < epoch) return info.live[i]![1];
    return null;
  }

  /** The plan of `epoch` for a prefix: stored when it is the latest, else derived from the latest. */
  private planOf(info: PrefixInfo, epoch: number): Plan {
    const p = info.plan;
    if (p.epoch >= epoch) return p;
    const map = this.liveMap(info, epoch);
    const live = map === null ? 0 : countBits(map);
    const span = live * this.width(epoch);
    const known = this.knownBefore(epoch).length;
    const span1 = known === 0 ? 0 : Math.min(Math.floor(this.params.knownShare * span), Math.min(this.params.measureHosts, live) * known);
    // More than one full pass per epoch would only repeat ports: the untargeted span is capped.
    return {
      epoch,
      c1: p.c1 + p.span1,
      c2: (p.c2 + p.span2) % (this.order.length * 1024),
      span1,
      span2: Math.min(span - span1, this.order.length),
    };
  }

  /**
   * The discovery ports of a host-visit: its disjoint slice of its prefix's candidate order for
   * this epoch (empty unless the host answered in the prefix's previous epoch).
   */
  slice(host: HostContext): readonly number[] {
    const kind = this.classify(host);
    if (kind === 'dead') return this.silentSlice(host);
    if (this.params.discoveryShare <= 0 || kind !== 'live') return EMPTY;
    const info = this.prefixes.get(host.prefix);
    if (info === undefined) return EMPTY;
    const map = this.liveMap(info, host.epoch);
    if (map === null) return EMPTY;
    const pos = hostPosition(host.ip);
    if (((map[pos >>> 5]! >>> (pos & 31)) & 1) === 0) return EMPTY;
    const rank = rankBelow(map, pos);
    const w = this.width(host.epoch);
    const plan = this.planOf(info, host.epoch);
    const known = this.knownBefore(host.epoch);
    const out: number[] = [];
    for (let k = rank * w, end = (rank + 1) * w; k < end; k++) {
      if (k < plan.span1) out.push(known[(plan.c1 + k) % known.length]!);
      else if (k - plan.span1 < plan.span2) out.push(this.order.at(info.hash, plan.c2 + (k - plan.span1)));
      else break;
    }
    return out;
  }

  /**
   * A silent host's probes beyond its floor (what the answering hosts could not use, see
   * silentAllowance): successive stretches of the candidate order (nmap's whole table, then the
   * rest of the port space in a per-host permutation), epoch after epoch, so that a live host
   * behind a firewall that drops closed ports, whose services no list holds, is reached within
   * 65,535 / extra epochs instead of repeating the same ports. Empty at budgets where the
   * answering hosts use their share (the silent hosts get the floor) and when the allowance
   * covers every port anyway.
   */
  private silentSlice(host: HostContext): readonly number[] {
    const b = this.budgetOf(host.epoch);
    const room = this.room(host.probeable.size);
    const floor = this.deadFloor(b);
    const silent = Math.floor(this.silentAllowance(host.epoch, b, room));
    const extra = silent - floor;
    if (extra <= 0 || silent >= room) return EMPTY;
    const h = hashPrefix(host.ip);
    const out: number[] = [];
    for (let k = host.epoch * extra, end = k + extra; k < end; k++) out.push(this.order.at(h, k));
    return out;
  }

  /**
   * Learn liveness and the prefixes' plans from a batch (`all` results unless the batch looked
   * lossy: packet loss would make every host look silent), and the ports open in the scope from
   * the teaching results.
   */
  observe(all: readonly HostResult[], teach: readonly HostResult[], lossy: boolean): void {
    if (!lossy) {
      for (const r of all) {
        const n = r.open.length;
        // Pseudo-service hosts are neither counted nor given slices (they get the plain budget).
        if (n >= this.pseudoLimit) continue;
        const live = n > 0;
        this.count(r.epoch, live);
        let info = this.prefixes.get(r.prefix);
        if (info === undefined) {
          info = { plan: NO_PLAN, live: [], hash: hashPrefix(r.prefix) };
          this.prefixes.set(r.prefix, info);
        }
        // Fix this epoch's plan from what was known before it, before its results change that.
        if (info.plan.epoch < r.epoch) info.plan = this.planOf(info, r.epoch);
        if (live) this.markLive(info, r.epoch, hostPosition(r.ip));
      }
    }
    for (const r of teach) {
      const n = r.open.length;
      if (this.params.sliceYield) this.countSlice(r);
      this.planner.observe(r.epoch, r.ip, r.prefix, r.sweep, n > 0 && n < this.pseudoLimit);
      // A sweep's yield: the ports nobody had seen open in the scope before it, watched for the
      // next epoch's hits on the prefix's other hosts.
      if (r.sweep)
        this.sweepYield.observeSweep(
          r.prefix,
          r.epoch,
          r.open.filter((p) => !this.known.has(p)),
        );
      else this.sweepYield.observeHost(r.prefix, r.epoch, r.open);
      for (const p of r.open) {
        const e = this.known.get(p);
        if (e === undefined || r.epoch < e) {
          this.known.set(p, r.epoch);
          this.knownVersion++;
        }
      }
    }
  }

  private count(epoch: number, live: boolean): void {
    let c = this.hosts.get(epoch);
    if (c === undefined) {
      const epochs = [...this.hosts.keys()];
      if (epochs.length >= 2 && epochs.every((e) => e > epoch)) return;
      c = [0, 0];
      this.hosts.set(epoch, c);
      if (this.hosts.size > 2) this.hosts.delete(Math.min(...this.hosts.keys()));
    }
    c[live ? 0 : 1] += 1;
  }

  private markLive(info: PrefixInfo, epoch: number, pos: number): void {
    let entry = info.live.find((x) => x[0] === epoch);
    if (entry === undefined) {
      if (info.live.length >= 2 && info.live.every((x) => x[0] > epoch)) return;
      entry = [epoch, new Uint32Array(8)];
      info.live.push(entry);
      info.live.sort((a, b) => a[0] - b[0]);
      if (info.live.length > 2) info.live.shift();
    }
    entry[1][pos >>> 5]! |= 1 << (pos & 31);
  }

  /** Figures for explain(): discovery of an average prefix in `epoch`. */
  describe(epoch: number): string[] {
    const counts = this.liveness(epoch);
    const odds = this.sweepOdds(epoch, '', '', MAX_PORT);
    if (this.budgetOf(epoch) >= this.room()) {
      // Every host gets every port (silent ones by budget conservation): no sweeps to plan, no
      // slices, no discovery share; what the other lines would say does not apply.
      return [
        this.describeAllowance(epoch, odds.others, counts),
        `full pass over all ${this.order.length} ports: every epoch, on every host (the budget covers the port space)`,
      ];
    }
    const y = this.sweepTotals(epoch);
    const w = this.width(epoch);
    const known = this.knownBefore(epoch).length;
    let spans = 0;
    let n = 0;
    let minSpan = Infinity;
    for (const info of this.prefixes.values()) {
      const plan = this.planOf(info, epoch);
      spans += plan.span2;
      minSpan = Math.min(minSpan, plan.span2);
      n++;
    }
    const avg = n === 0 ? 0 : spans / n;
    const lines = [
      `full sweeps in epoch ${epoch}: ${odds.sweeps} sweeps of all ${MAX_PORT} ports for ${odds.due} due prefixes (not swept for more than ${this.params.resweepEpochs} epochs${odds.sweeps > 0 ? `; at this rate every due prefix within ${Math.ceil(odds.due / odds.sweeps)} epochs` : ''}); share ${y.share.toFixed(3)} of ${this.params.sweepShare} (yield so far: ${y.hits} hits on the new ports of ${y.sweeps} sweeps, target ${this.params.sweepTarget} per sweep, memory ${this.params.yieldMemory}); the other hosts get ${formatCount(Math.round(odds.others * 10) / 10)} probes on average`,
      this.describeAllowance(epoch, odds.others, counts),
      `coordinated discovery: ${w} probes per answering host (share ${this.params.discoveryShare}${this.params.sliceYield ? ` x ${this.sliceFactor(epoch).toFixed(2)} for the slices' measured yield: ${this.sliceSpread.totals(epoch).hits} hits on ${this.sliceSpread.totals(epoch).sweeps} ports slices found first, target ${SLICE_YIELD_TARGET} per port` : ''}); ${known} ports open elsewhere in the scope measured on ${this.params.measureHosts} hosts of each prefix`,
    ];
    if (n > 0) {
      const full = avg > 0 ? this.order.length / avg : Infinity;
      const slowest = minSpan > 0 ? this.order.length / minSpan : Infinity;
      lines.push(
        `full pass over all ${this.order.length} ports: ${Number.isFinite(full) ? full.toFixed(1) : 'never (no answering hosts)'} epochs for an average prefix (${avg.toFixed(0)} untargeted probes per epoch over ${n} prefixes; slowest ${Number.isFinite(slowest) ? slowest.toFixed(1) : 'never'})`,
      );
    }
    return lines;
  }

  /** The allowance line of explain(): what answering, silent and never-visited hosts get, and why. */
  private describeAllowance(epoch: number, b: number, counts: [number, number] | null): string {
    const live = this.liveAllowance(epoch, b);
    const silent = this.silentAllowance(epoch, b);
    const floor = this.deadFloor(b);
    const room = this.room();
    const why =
      b >= room
        ? ` (the budget covers all ${room} ports)`
        : silent > floor
          ? ` (floor ${floor} + what the answering hosts, capped at ${room}, cannot use of the epoch's budget)`
          : ` (the floor: ${this.params.deadAllowance} of the budget, at most firstVisitCap ${this.params.firstVisitCap})`;
    const fresh = this.newAllowance(b);
    const one = (x: number): string => formatCount(Math.round(x * 10) / 10);
    return `allowance by liveness in epoch ${epoch}: answering hosts ${one(live)}, silent hosts ${one(silent)}${why}, never visited ${one(fresh)}${fresh === room ? ' (every port)' : ''} (budget ${this.budget}; last epoch ${counts ? `${counts[0]} answered, ${counts[1]} silent` : 'unknown'})`;
  }

  /** Epochs a full pass over the port space takes in `prefix` at `epoch` (Infinity when it never ends). */
  passEpochs(prefix: string, epoch: number): number {
    const info = this.prefixes.get(prefix);
    if (info === undefined) return Infinity;
    const span2 = this.planOf(info, epoch).span2;
    return span2 > 0 ? this.order.length / span2 : Infinity;
  }

  toJSON(): DiscoveryState {
    const hosts = [...this.hosts].sort((a, b) => a[0] - b[0]).map(([e, [l, d]]) => [e, l, d] as const);
    const known = [...this.known].sort((a, b) => a[0] - b[0]).map(([p, e]) => [p, e] as const);
    const prefixes = [...this.prefixes.keys()].sort().map((prefix) => {
      const { plan, live } = this.prefixes.get(prefix)!;
      return [
        prefix,
        plan.epoch,
        plan.c1,
        plan.c2,
        plan.span1,
        plan.span2,
        live.map(([e, bits]) => [e, bitsToHex(bits)] as const),
      ] as const;
    });
    const out: DiscoveryState = { version: 1, hosts, known, prefixes, sweeps: this.planner.toJSON(), sweepYield: this.sweepYield.toJSON() };
    const sliceYield = this.sliceSpread.toJSON();
    return sliceYield.counts.length === 0 && sliceYield.watch.length === 0 ? out : { ...out, sliceYield };
  }
}

function isInt(x: unknown, min = 0): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= min;
}

/** Check a restored discovery state; throws PB_ERR_STRATEGY_STATE naming the field. */
export function validateDiscoveryState(state: unknown, where: string): DiscoveryState {
  const s = state as DiscoveryState;
  const ok =
    s !== null &&
    typeof s === 'object' &&
    s.version === 1 &&
    Array.isArray(s.hosts) &&
    s.hosts.every((r) => Array.isArray(r) && r.length === 3 && isInt(r[0]) && isInt(r[1]) && isInt(r[2])) &&
    Array.isArray(s.known) &&
    s.known.every((r) => Array.isArray(r) && isInt(r[0], 1) && r[0] <= 65535 && isInt(r[1])) &&
    Array.isArray(s.prefixes) &&
    s.prefixes.every(
      (r) =>
        Array.isArray(r) &&
        r.length === 7 &&
        typeof r[0] === 'string' &&
        isInt(r[1], -1) &&
        [2, 3, 4, 5].every((i) => isInt(r[i])) &&
        Array.isArray(r[6]),
    );
  if (ok && s.sliceYield !== undefined) validateSweepYield(s.sliceYield, `${where}.sliceYield`);
  if (ok && s.sweeps !== undefined) validateSweepPlanner(s.sweeps, `${where}.sweeps`);
  if (ok && s.sweepYield !== undefined) validateSweepYield(s.sweepYield, `${where}.sweepYield`);
  if (!ok) {
    throw new PortbanditError(
      'PB_ERR_STRATEGY_STATE',
      'expected {version: 1, hosts: [[epoch, live, dead]], known: [[port, epoch]], prefixes: [[prefix, epoch, c1, c2, span1, span2, [[epoch, hex]]]], sweeps?, sweepYield?}',
      {
        where,
      },
    );
  }
  return s;
}

/** Merge discovery states learned on disjoint results (order-independent). */
export function mergeDiscoveryStates(a: DiscoveryState | undefined, b: DiscoveryState | undefined): DiscoveryState {
  const x = a ?? emptyDiscoveryState();
  const y = b ?? emptyDiscoveryState();
  const hosts = new Map<number, [number, number]>();
  for (const [e, l, d] of [...x.hosts, ...y.hosts]) {
    const c = hosts.get(e);
    hosts.set(e, c === undefined ? [l, d] : [c[0] + l, c[1] + d]);
  }
  const latest = [...hosts.keys()].sort((p, q) => q - p).slice(0, 2);
  const known = new Map<number, number>();
  for (const [p, e] of [...x.known, ...y.known]) known.set(p, Math.min(e, known.get(p) ?? Infinity));
  const prefixes = new Map<string, { plan: [number, number, number, number, number]; live: Map<number, Uint32Array> }>();
  for (const rows of [x.prefixes, y.prefixes]) {
    for (const [prefix, epoch, c1, c2, s1, s2, live] of rows) {
      const cur = prefixes.get(prefix);
      const plan: [number, number, number, number, number] = [epoch, c1, c2, s1, s2];
      if (cur === undefined) {
        prefixes.set(prefix, { plan, live: new Map(live.map(([e, hex]) => [e, hexToBits(hex, 'state.discovery')])) });
        continue;
      }
      // The later plan wins; plans of the same epoch combine field by field (symmetric).
      if (plan[0] > cur.plan[0]) cur.plan = plan;
      else if (plan[0] === cur.plan[0]) cur.plan = cur.plan.map((v, i) => Math.max(v, plan[i]!)) as typeof plan;
      for (const [e, hex] of live) {
        const bits = hexToBits(hex, 'state.discovery');
        const have = cur.live.get(e);
        if (have === undefined) cur.live.set(e, bits);
        else for (let i = 0; i < 8; i++) have[i] = (have[i]! | bits[i]!) >>> 0;
      }
    }
  }
  const sliceYield = mergeSweepYields(x.sliceYield ?? { counts: [], watch: [] }, y.sliceYield ?? { counts: [], watch: [] });
  return {
    ...(sliceYield.counts.length > 0 || sliceYield.watch.length > 0 ? { sliceYield } : {}),
    version: 1,
    hosts: latest.sort((p, q) => p - q).map((e) => [e, ...hosts.get(e)!] as const),
    known: [...known].sort((p, q) => p[0] - q[0]).map(([p, e]) => [p, e] as const),
    prefixes: [...prefixes.keys()].sort().map((prefix) => {
      const { plan, live } = prefixes.get(prefix)!;
      const epochs = [...live.keys()].sort((p, q) => p - q).slice(-2);
      return [prefix, ...plan, epochs.map((e) => [e, bitsToHex(live.get(e)!)] as const)] as const;
    }),
    sweeps: mergeSweepPlanners(x.sweeps ?? { hosts: [], prefixes: [] }, y.sweeps ?? { hosts: [], prefixes: [] }),
    sweepYield: mergeSweepYields(x.sweepYield ?? { counts: [], watch: [] }, y.sweepYield ?? { counts: [], watch: [] }),
  };
}

/**
 * The discovery slice of a decision and the limit left for the strategy's own ranking: the slice
 * goes after the ranked ports, but its room is reserved first (never squeezing must-have ports).
 */
export function discoveryRoom(
  discovery: Discovery,
  round: RoundContext,
  options: CommonOptions,
  limit: number = round.remaining,
): { slice: readonly number[]; rankLimit: number } {
  const slice = discovery.slice(round);
  const must = round.round === 0 ? options.mustHave.length : 0;
  const reserve = Math.min(slice.length, Math.max(0, limit - must));
  return { slice, rankLimit: limit - reserve };
}

/**
 * The decision of a full sweep (the sweep tier chose the host, or its allowance covers every
 * probeable port): everything probeable in one round, must-have ports first; follow-up rounds
 * would only add latency.
 */
export function sweepDecision(round: RoundContext, options: CommonOptions): Decision | null {
  if (round.round !== 0 || round.probed.length + round.remaining < round.probeable.size) return null;
  const picker = new PortPicker(round, options);
  picker.addSweep();
  return { ports: picker.ports, followUp: false };
}

/**
 * explain()'s budget split when the allowance covers the port space: every visit is a sweep
 * (sweepDecision), which the split counts as exploration beside the must-have ports; nothing is
 * chosen by a ranking. Null when the allowance is smaller.
 */
export function sweepSplit(options: CommonOptions): BudgetSplit | null {
  if (Math.min(options.budget, options.maxPerHost) < MAX_PORT) return null;
  const mustHave = Math.min(options.mustHave.length, MAX_PORT);
  return { mustHave, fixed: 0, history: 0, learned: 0, exploration: MAX_PORT - mustHave };
}
