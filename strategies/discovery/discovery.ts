import type { PortCatalog } from '../../src/catalog/index.js';
import { PortbanditError } from '../../src/core/errors.js';
import type { Rng } from '../../src/core/rng.js';
import type { CommonOptions, HostContext, HostResult, ParameterSpec, RoundContext } from '../types.js';
import { CandidateOrder, hashPrefix } from './candidate-order.js';

/**
 * The discovery layer every learning strategy composes with (docs/strategies.md, "Discovery").
 * A strategy = a ranking (what it believes, exploitation) + this layer, which decides
 *
 * 1. how large a host-visit's allowance is, from liveness: a host that answered nothing at its
 *    last visit gets a floor (`deadAllowance` of the budget), a never-visited host at most
 *    `firstVisitCap` probes (nmap's top 1,000 when budgets are huge), and hosts that answered get
 *    the rest, so that the AVERAGE over the previous epoch's hosts stays at the budget;
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
}

/** ParameterSpecs of the discovery layer (the default share differs per strategy). */
export function discoveryParameters(discoveryShare: number): ParameterSpec[] {
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
      description: 'Allowance of a host that answered nothing at its last visit, as a share of the budget (at least 1 probe, so a host that comes back is seen); live hosts get the rest, so the average stays at the budget.',
    },
    {
      name: 'firstVisitCap',
      type: 'integer',
      default: 1000,
      min: 1,
      max: 65535,
      description: "Allowance cap of a host never visited before (nmap's top 1,000 when the budget is huge): a mostly-dead scope is not swept on every address at its first visit.",
    },
    {
      name: 'knownShare',
      type: 'number',
      default: 0.5,
      min: 0,
      max: 1,
      description: "At most this share of a prefix's discovery probes goes to ports seen open elsewhere in the scope (tier 1) before nmap's table and the rest of the port space.",
    },
    {
      name: 'measureHosts',
      type: 'integer',
      default: 3,
      min: 1,
      max: 256,
      description: 'Live hosts of a prefix that probe each port open elsewhere in the scope per pass: a port is "measured" in a prefix when this many of its hosts were probed for it.',
    },
  ];
}

/** Pick DiscoveryParams out of a strategy's parsed parameters. */
export function pickDiscoveryParams(p: DiscoveryParams): DiscoveryParams {
  return { discoveryShare: p.discoveryShare, deadAllowance: p.deadAllowance, firstVisitCap: p.firstVisitCap, knownShare: p.knownShare, measureHosts: p.measureHosts };
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
    readonly [prefix: string, planEpoch: number, c1: number, c2: number, span1: number, span2: number, live: ReadonlyArray<readonly [number, string]>]
  >;
}

/** The empty discovery state. */
export function emptyDiscoveryState(): DiscoveryState {
  return { version: 1, hosts: [], known: [], prefixes: [] };
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
  if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex)) throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected 64 lowercase hex digits', { where });
  const bits = new Uint32Array(8);
  for (let i = 0; i < 8; i++) bits[i] = parseInt(hex.slice(8 * i, 8 * i + 8), 16);
  return bits;
}

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
  /** The average budget of the hosts that are not swept, per epoch (a strategy with sweeps lowers it). */
  private budgetOf: (epoch: number) => number;
  private knownCache: { epoch: number; version: number; ports: number[] } | null = null;

  /** `pseudoLimit`: a host with at least this many open ports is a pseudo-service host (no discovery, not counted). */
  constructor(options: CommonOptions, params: DiscoveryParams, catalog: PortCatalog, pseudoLimit: number, state?: DiscoveryState) {
    this.options = options;
    this.params = params;
    this.order = CandidateOrder.of(catalog);
    this.pseudoLimit = Math.max(1, pseudoLimit);
    this.budget = Math.min(options.budget, options.maxPerHost);
    this.budgetOf = () => this.budget;
    if (state !== undefined && state !== null) this.restore(validateDiscoveryState(state, 'state.discovery'));
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

  /**
   * Tell the layer the average budget left to the hosts of `epoch` that are not swept (a strategy
   * that funds full sweeps, like adaptive, lowers it), so discovery widths follow what answering
   * hosts really get. Must depend only on what was learned before the epoch.
   */
  setBudget(budgetOf: (epoch: number) => number): void {
    this.budgetOf = budgetOf;
  }

  /** The allowance of a host that answered nothing last time, for an average budget `b`. */
  deadFloor(b: number): number {
    return Math.min(b, this.params.firstVisitCap, Math.max(1, Math.ceil(this.params.deadAllowance * b)));
  }

  /** Hosts that answered and hosts that did not in the latest epoch before `epoch`. */
  private liveness(epoch: number): [number, number] | null {
    let best = -1;
    for (const e of this.hosts.keys()) if (e < epoch && e > best) best = e;
    return best < 0 ? null : this.hosts.get(best)!;
  }

  /**
   * Average allowance of a host that answered at its last visit, for an average budget `b`:
   * (b (L + D) - floor D) / L with L and D the answering and silent hosts of the latest epoch
   * before `epoch`, so that the epoch's average is b; capped at maxPerHost.
   */
  liveAllowance(epoch: number, b: number = this.budget): number {
    const counts = this.liveness(epoch);
    if (counts === null || counts[0] === 0) return b;
    const [l, d] = counts;
    return Math.min(this.options.maxPerHost, Math.max(b, (b * (l + d) - this.deadFloor(b) * d) / l));
  }

  /** How a host is treated: never visited, silent last time, answering, or a pseudo-service host. */
  classify(host: Pick<HostContext, 'previousEpoch' | 'previousOpen'>): 'new' | 'dead' | 'live' | 'pseudo' {
    if (host.previousEpoch < 0) return 'new';
    const n = host.previousOpen.length;
    if (n === 0) return 'dead';
    return n >= this.pseudoLimit ? 'pseudo' : 'live';
  }

  /**
   * The allowance of a host-visit for an average budget `b` (a strategy that funds sweeps passes
   * the other hosts' share), rounded stochastically so the average is exact.
   */
  allowance(host: HostContext, rng: Rng, b: number = this.budget): number {
    let x: number;
    switch (this.classify(host)) {
      case 'new':
        x = Math.min(b, this.params.firstVisitCap);
        break;
      case 'dead':
        x = this.deadFloor(b);
        break;
      case 'pseudo':
        x = b;
        break;
      default:
        x = this.liveAllowance(host.epoch, b);
    }
    const whole = Math.floor(x);
    return Math.min(this.options.maxPerHost, whole + (x > whole && rng.next() < x - whole ? 1 : 0));
  }

  /** Discovery probes per answering host in `epoch`. */
  width(epoch: number): number {
    return Math.floor(this.params.discoveryShare * this.liveAllowance(epoch, this.budgetOf(epoch)));
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
    return { epoch, c1: p.c1 + p.span1, c2: (p.c2 + p.span2) % (this.order.length * 1024), span1, span2: Math.min(span - span1, this.order.length) };
  }

  /**
   * The discovery ports of a host-visit: its disjoint slice of its prefix's candidate order for
   * this epoch (empty unless the host answered in the prefix's previous epoch).
   */
  slice(host: HostContext): readonly number[] {
    if (this.params.discoveryShare <= 0 || this.classify(host) !== 'live') return EMPTY;
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
    const counts = this.liveness(epoch);
    const lines = [
      `allowance by liveness in epoch ${epoch}: answering hosts ${this.liveAllowance(epoch).toFixed(1)}, silent hosts ${this.deadFloor(this.budget)}, never visited ${Math.min(this.budget, this.params.firstVisitCap)} (budget ${this.budget}; last epoch ${counts ? `${counts[0]} answered, ${counts[1]} silent` : 'unknown'})`,
      `coordinated discovery: ${w} probes per answering host (share ${this.params.discoveryShare}); ${known} ports open elsewhere in the scope measured on ${this.params.measureHosts} hosts of each prefix`,
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
      return [prefix, plan.epoch, plan.c1, plan.c2, plan.span1, plan.span2, live.map(([e, bits]) => [e, bitsToHex(bits)] as const)] as const;
    });
    return { version: 1, hosts, known, prefixes };
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
    s.prefixes.every((r) => Array.isArray(r) && r.length === 7 && typeof r[0] === 'string' && isInt(r[1], -1) && [2, 3, 4, 5].every((i) => isInt(r[i])) && Array.isArray(r[6]));
  if (!ok) {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected {version: 1, hosts: [[epoch, live, dead]], known: [[port, epoch]], prefixes: [[prefix, epoch, c1, c2, span1, span2, [[epoch, hex]]]]}', {
      where,
    });
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
  return {
    version: 1,
    hosts: latest.sort((p, q) => p - q).map((e) => [e, ...hosts.get(e)!] as const),
    known: [...known].sort((p, q) => p[0] - q[0]).map(([p, e]) => [p, e] as const),
    prefixes: [...prefixes.keys()].sort().map((prefix) => {
      const { plan, live } = prefixes.get(prefix)!;
      const epochs = [...live.keys()].sort((p, q) => p - q).slice(-2);
      return [prefix, ...plan, epochs.map((e) => [e, bitsToHex(live.get(e)!)] as const)] as const;
    }),
  };
}

/**
 * The discovery slice of a decision and the limit left for the strategy's own ranking: the slice
 * goes after the ranked ports, but its room is reserved first (never squeezing must-have ports).
 */
export function discoveryRoom(discovery: Discovery, round: RoundContext, options: CommonOptions, limit: number = round.remaining): { slice: readonly number[]; rankLimit: number } {
  const slice = discovery.slice(round);
  const must = round.round === 0 ? options.mustHave.length : 0;
  const reserve = Math.min(slice.length, Math.max(0, limit - must));
  return { slice, rankLimit: limit - reserve };
}
