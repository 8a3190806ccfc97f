import type { PortCatalog } from '../../src/catalog/index.js';
import { PortbanditError, isPort } from '../../src/core/index.js';
import type { ExplainedPort, HostResult, ParameterSpec } from '../types.js';

/**
 * Sparse, discounted Beta-Bernoulli statistics of "port open on a host" per scope tag, with a
 * hierarchical prior: the estimate for (tag, port) shrinks toward the whole-scope estimate, which
 * shrinks toward nmap's open frequency for the port.
 *
 *   scope:  Beta(k0 * m0 + S*, k0 * (1 - m0) + F*)        m0 = max(nmap frequency, priorFloor)
 *   tag:    Beta(kT * ms + St, kT * (1 - ms) + Ft)         ms = the scope posterior mean
 *
 * S = discounted hosts on which the port was found open, F = discounted probes that found it
 * closed. Only ports that were probed are stored, and of those only nmap's top 1,000 and ports
 * seen open: failed probes of other ports before they are first seen open are not counted (their
 * prior stands for them), so exploring random ports keeps the state sparse; a seed sweep (HostResult.sweep) counts as one
 * probe of every port through a per-group `sweeps` counter, so a sweep costs its open ports, not
 * 65,535 updates. Every count is multiplied by `discount` per epoch, so services that went away
 * are unlearned and stale entries fade out and are pruned.
 */

/** Tunables of the statistics, shared by every strategy that learns with them. */
export interface PortStatsParams {
  /** Pseudo-hosts behind nmap's frequency prior at the scope level (k0). */
  readonly priorStrength: number;
  /** Pseudo-hosts behind the scope estimate at the tag level (kT). */
  readonly tagStrength: number;
  /** Per-epoch multiplier on all counts, in (0, 1]; 1 never forgets. */
  readonly discount: number;
  /** Prior mean for ports nmap has no (or a smaller) frequency for. */
  readonly priorFloor: number;
}

/** Defaults of PortStatsParams. */
export const portStatsDefaults: PortStatsParams = Object.freeze({
  priorStrength: 10,
  tagStrength: 5,
  discount: 0.85,
  priorFloor: 1e-5,
});

/** ParameterSpecs of PortStatsParams, for strategies to include in their own `parameters`. */
export const portStatsParameters: readonly ParameterSpec[] = Object.freeze([
  {
    name: 'priorStrength',
    type: 'number',
    default: portStatsDefaults.priorStrength,
    min: 0.001,
    max: 1e6,
    description: "Weight, in pseudo-hosts, of nmap's open-frequency prior behind each scope-wide port estimate.",
  },
  {
    name: 'tagStrength',
    type: 'number',
    default: portStatsDefaults.tagStrength,
    min: 0.001,
    max: 1e6,
    description:
      'Weight, in pseudo-hosts, of the scope-wide estimate behind each per-tag port estimate (how fast a tag departs from the scope).',
  },
  {
    name: 'discount',
    type: 'number',
    default: portStatsDefaults.discount,
    min: 0.01,
    max: 1,
    description: 'Per-epoch multiplier on all learned counts (1 = never forget); lower unlearns closed services faster.',
  },
  {
    name: 'priorFloor',
    type: 'number',
    default: portStatsDefaults.priorFloor,
    min: 1e-9,
    max: 0.5,
    description: 'Prior open probability of ports nmap has no frequency for.',
  },
]);

/** Counts of one group, as stored: ports ascending, as [port, successes, trials]. */
export interface GroupStatsState {
  /** Discounted number of host results observed in the group. */
  readonly hosts: number;
  /** Discounted number of sweeps: probes of every port not listed in `ports[i][2]`. */
  readonly sweeps: number;
  readonly ports: ReadonlyArray<readonly [port: number, successes: number, trials: number]>;
}

/** The plain-JSON state of PortStats. */
export interface PortStatsState {
  readonly version: 1;
  /** The epoch all counts are discounted to; -1 before any observation. */
  readonly epoch: number;
  /** The discount the counts were learned with (merging needs it). */
  readonly discount: number;
  readonly scope: GroupStatsState;
  /** Per scope tag, keys ascending. */
  readonly tags: Readonly<Record<string, GroupStatsState>>;
}

/** Discounted successes and trials for one port in one group. */
export interface PortCounts {
  readonly successes: number;
  readonly trials: number;
}

/** A Beta posterior. */
export interface BetaParams {
  readonly alpha: number;
  readonly beta: number;
}

/** Posteriors of a host context's candidate ports, column-wise (index i = ports[i]). */
export interface PosteriorTable {
  readonly ports: readonly number[];
  readonly alpha: Float64Array;
  readonly beta: Float64Array;
  readonly mean: Float64Array;
}

// Entries whose discounted counts fall below this are forgotten (keeps the state sparse).
const PRUNE_BELOW = 1e-3;
// Failure-only entries below this many discounted probes are forgotten at each epoch change.
const PRUNE_FAILURES_BELOW = 1;
// nmap's top ports whose failed probes are always counted (see PortStats.isTracked).
const TRACKED_TOP = 1000;

// A group switches from a Map index to a dense port -> slot table past this many ports: lookups
// are then one array read, at 256 KiB per large group (scope and tags; feature groups stay small).
const DENSE_ABOVE = 1024;

/** The counts of one group: parallel arrays of ports, successes and trials, indexed by port. */
class Group {
  hosts = 0;
  sweeps = 0;
  readonly ports: number[] = [];
  readonly s: number[] = [];
  readonly t: number[] = [];
  /** Ports with successes > 0, unsorted; `openVersion` changes whenever the set changes. */
  private open: number[] = [];
  openVersion = 0;
  private sparse: Map<number, number> | null = new Map();
  private dense: Int32Array | null = null;

  get size(): number {
    return this.ports.length;
  }

  /** The slot of `port`, or -1. */
  find(port: number): number {
    if (this.dense) return this.dense[port]!;
    return this.sparse!.get(port) ?? -1;
  }

  /** The slot of `port`, created empty when missing. */
  slot(port: number): number {
    const i = this.find(port);
    if (i >= 0) return i;
    const j = this.ports.length;
    this.ports.push(port);
    this.s.push(0);
    this.t.push(0);
    if (this.dense) this.dense[port] = j;
    else {
      this.sparse!.set(port, j);
      if (j + 1 > DENSE_ABOVE) this.reindex();
    }
    return j;
  }

  /** Add a success to slot i (keeps the open list current). */
  succeed(i: number, w: number): void {
    if (this.s[i] === 0 && w > 0) {
      this.open.push(this.ports[i]!);
      this.openVersion++;
    }
    this.s[i]! += w;
  }

  openPorts(): readonly number[] {
    return this.open;
  }

  private reindex(): void {
    if (this.ports.length > DENSE_ABOVE) {
      this.dense = new Int32Array(65536).fill(-1);
      this.sparse = null;
      this.ports.forEach((p, i) => (this.dense![p] = i));
    } else {
      this.dense = null;
      this.sparse = new Map(this.ports.map((p, i) => [p, i]));
    }
  }

  scale(f: number): void {
    this.hosts *= f;
    this.sweeps *= f;
    if (this.sweeps < PRUNE_BELOW) this.sweeps = 0;
    let k = 0;
    const n = this.ports.length;
    for (let i = 0; i < n; i++) {
      const si = this.s[i]! * f;
      const ti = this.t[i]! * f;
      // A port never seen open with less than one (discounted) failed probe is worth less than
      // the prior's pseudo-hosts: forget it, or exploration probes of random ports would make
      // every group dense within a few epochs.
      if (si + ti < PRUNE_BELOW || (si === 0 && ti < PRUNE_FAILURES_BELOW)) continue;
      this.ports[k] = this.ports[i]!;
      this.s[k] = si;
      this.t[k] = ti;
      k++;
    }
    if (k !== n) {
      this.ports.length = k;
      this.s.length = k;
      this.t.length = k;
      this.reindex();
      const before = this.open.length;
      this.open = this.ports.filter((_, i) => this.s[i]! > 0);
      if (this.open.length !== before) this.openVersion++;
    }
  }

  toJSON(): GroupStatsState {
    const order = this.ports.map((_, i) => i).sort((a, b) => this.ports[a]! - this.ports[b]!);
    return { hosts: this.hosts, sweeps: this.sweeps, ports: order.map((i) => [this.ports[i]!, this.s[i]!, this.t[i]!] as const) };
  }

  static from(state: GroupStatsState, where: string): Group {
    const g = new Group();
    if (!isCount(state?.hosts) || !isCount(state.sweeps) || !Array.isArray(state.ports)) {
      throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected {hosts, sweeps, ports: [[port, successes, trials], ...]}', { where });
    }
    g.hosts = state.hosts;
    g.sweeps = state.sweeps;
    state.ports.forEach((row, i) => {
      if (!Array.isArray(row) || !isPort(row[0]) || !isCount(row[1]) || !isCount(row[2]) || g.find(row[0]) >= 0) {
        throw new PortbanditError(
          'PB_ERR_STRATEGY_STATE',
          `expected [port, successes, trials] with each port once, got ${JSON.stringify(row)}`,
          {
            where: `${where}.ports[${i}]`,
          },
        );
      }
      const j = g.slot(row[0]);
      g.succeed(j, row[1]);
      g.t[j] = row[2];
    });
    return g;
  }
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0;
}

/** The state of statistics that have observed nothing. */
export function emptyPortStatsState(discount: number = portStatsDefaults.discount): PortStatsState {
  return { version: 1, epoch: -1, discount, scope: { hosts: 0, sweeps: 0, ports: [] }, tags: {} };
}

/** Whether a state has observed anything. */
export function isEmptyPortStatsState(state: PortStatsState): boolean {
  return state.epoch < 0 && state.scope.hosts === 0 && Object.keys(state.tags).length === 0;
}

function mergeGroups(a: GroupStatsState | undefined, fa: number, b: GroupStatsState | undefined, fb: number): GroupStatsState {
  const ga = a ? Group.from(a, 'state') : new Group();
  const gb = b ? Group.from(b, 'state') : new Group();
  if (fa !== 1) ga.scale(fa);
  if (fb !== 1) gb.scale(fb);
  // Sum in a fixed order (a-side, b-side sorted by port): x + y === y + x in IEEE arithmetic, so
  // merge(a, b) and merge(b, a) are bit-identical.
  const out = new Group();
  out.hosts = ga.hosts + gb.hosts;
  out.sweeps = ga.sweeps + gb.sweeps;
  for (const g of [ga, gb]) {
    for (let i = 0; i < g.size; i++) {
      const j = out.slot(g.ports[i]!);
      out.succeed(j, g.s[i]!);
      out.t[j] = out.t[j]! + g.t[i]!;
    }
  }
  return out.toJSON();
}

/**
 * Combine two states learned on disjoint results: both are discounted to the later epoch, then
 * counts add. Order-independent; merging with an empty state returns an equal state.
 */
export function mergePortStatsStates(a: PortStatsState, b: PortStatsState): PortStatsState {
  const aEmpty = isEmptyPortStatsState(a);
  const bEmpty = isEmptyPortStatsState(b);
  if (!aEmpty && !bEmpty && a.discount !== b.discount) {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', `cannot merge statistics learned with discount ${a.discount} and ${b.discount}`, {
      where: 'discount',
    });
  }
  const discount = aEmpty ? b.discount : bEmpty ? a.discount : a.discount;
  const epoch = Math.max(a.epoch, b.epoch);
  const fa = a.epoch < 0 ? 1 : discount ** (epoch - a.epoch);
  const fb = b.epoch < 0 ? 1 : discount ** (epoch - b.epoch);
  const tags: Record<string, GroupStatsState> = {};
  const names = [...new Set([...Object.keys(a.tags), ...Object.keys(b.tags)])].sort();
  for (const name of names) tags[name] = mergeGroups(a.tags[name], fa, b.tags[name], fb);
  return { version: 1, epoch, discount, scope: mergeGroups(a.scope, fa, b.scope, fb), tags };
}

/** Validate a PortStatsParams-shaped object (already parsed by parseParameters) at the edge. */
export function pickPortStatsParams(params: Partial<PortStatsParams>): PortStatsParams {
  return {
    priorStrength: params.priorStrength ?? portStatsDefaults.priorStrength,
    tagStrength: params.tagStrength ?? portStatsDefaults.tagStrength,
    discount: params.discount ?? portStatsDefaults.discount,
    priorFloor: params.priorFloor ?? portStatsDefaults.priorFloor,
  };
}

/**
 * Live, mutable port statistics (see the file comment for the model). `observe` applies no
 * guard rails: callers screen batches with strategies/guards.ts first.
 */
export class PortStats {
  readonly params: PortStatsParams;
  private readonly catalog: PortCatalog;
  private epochValue: number;
  private readonly scope: Group;
  private readonly tagGroups: Map<string, Group>;
  private versionValue = 0;
  private cacheVersion = -1;
  private readonly candidateCache = new Map<string, { readonly signature: string; readonly ports: readonly number[] }>();
  private readonly openCache = new WeakMap<Group, { readonly version: number; readonly ports: readonly number[] }>();
  private readonly tableCache = new Map<string, PosteriorTable>();

  constructor(catalog: PortCatalog, params: PortStatsParams = portStatsDefaults, state?: PortStatsState) {
    this.catalog = catalog;
    this.params = params;
    if (state !== undefined) {
      if (
        state === null ||
        typeof state !== 'object' ||
        state.version !== 1 ||
        typeof state.epoch !== 'number' ||
        typeof state.tags !== 'object' ||
        state.tags === null
      ) {
        throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected port statistics {version: 1, epoch, discount, scope, tags}', {
          where: 'state.stats',
        });
      }
      this.epochValue = state.epoch;
      this.scope = Group.from(state.scope, 'state.stats.scope');
      this.tagGroups = new Map(Object.entries(state.tags).map(([k, g]) => [k, Group.from(g, `state.stats.tags.${k}`)]));
    } else {
      this.epochValue = -1;
      this.scope = new Group();
      this.tagGroups = new Map();
    }
  }

  /** Increments on every change; caches keyed on it stay valid until the next observation. */
  get version(): number {
    return this.versionValue;
  }

  /** The epoch all counts are discounted to (-1 before any observation). */
  get epoch(): number {
    return this.epochValue;
  }

  /** Scope tags with statistics, ascending. */
  tags(): string[] {
    return [...this.tagGroups.keys()].sort();
  }

  /** Discounted host results observed in a tag's group, or in the whole scope for null. */
  observations(tag: string | null): number {
    const g = tag === null ? this.scope : this.tagGroups.get(tag);
    return g ? g.hosts : 0;
  }

  /** Discount every count to `epoch` (no-op when not later than the current epoch). */
  advance(epoch: number): void {
    if (epoch <= this.epochValue) return;
    if (this.epochValue >= 0 && this.params.discount !== 1) {
      const f = this.params.discount ** (epoch - this.epochValue);
      this.scope.scale(f);
      for (const g of this.tagGroups.values()) g.scale(f);
    }
    this.epochValue = epoch;
    this.versionValue++;
  }

  /**
   * Learn from one finished host-epoch: every probed port is a trial, every open port a
   * success, in the scope group and in each of the host's tag groups. Cost is O(probes)
   * (O(open ports) for a sweep). A result from an earlier epoch than the current one counts
   * with the discount it would have accumulated since.
   */
  observe(result: HostResult): void {
    this.advance(result.epoch);
    const w = result.epoch < this.epochValue ? this.params.discount ** (this.epochValue - result.epoch) : 1;
    const groups: Group[] = [this.scope];
    for (const tag of new Set(result.tags)) {
      let g = this.tagGroups.get(tag);
      if (!g) {
        g = new Group();
        this.tagGroups.set(tag, g);
      }
      groups.push(g);
    }
    for (const g of groups) {
      g.hosts += w;
      if (result.sweep) {
        g.sweeps += w;
      } else {
        // Open ports get their entry first so that their probe counts as a trial below.
        for (const p of result.open) g.slot(p);
        for (const p of result.probed) {
          let i = g.find(p);
          if (i < 0) {
            if (!this.isTracked(p)) continue;
            i = g.slot(p);
          }
          g.t[i]! += w;
        }
      }
      for (const p of result.open) g.succeed(g.slot(p), w);
    }
    this.versionValue++;
  }

  /**
   * Whether failed probes of a port with no entry are recorded: for nmap's top TRACKED_TOP ports
   * and for ports seen open somewhere in the scope. Elsewhere a port gets an entry when first
   * seen open, and failures before that are not counted (the prior stands for them), so
   * exploration of random ports keeps the state sparse.
   */
  private isTracked(port: number): boolean {
    const r = this.catalog.rank(port);
    if (r >= 0 && r < TRACKED_TOP) return true;
    // A port seen open anywhere in the scope: its failures in a tag or prefix are evidence
    // (a subnet's own port must be able to lose against the subnets that do not run it).
    const i = this.scope.find(port);
    return i >= 0 && this.scope.s[i]! > 0;
  }

  /** Discounted successes and trials of `port` in a tag's group (null = whole scope). */
  counts(tag: string | null, port: number): PortCounts {
    const g = tag === null ? this.scope : this.tagGroups.get(tag);
    if (!g) return { successes: 0, trials: 0 };
    const i = g.find(port);
    return i < 0 ? { successes: 0, trials: g.sweeps } : { successes: g.s[i]!, trials: g.t[i]! + g.sweeps };
  }

  /** nmap's prior open probability for `port` (floored). */
  priorMean(port: number): number {
    return Math.max(this.catalog.frequency(port), this.params.priorFloor);
  }

  /** The scope-wide Beta posterior of `port`. */
  scopePosterior(port: number): BetaParams {
    const m0 = this.priorMean(port);
    const k0 = this.params.priorStrength;
    const { successes, trials } = this.counts(null, port);
    return { alpha: k0 * m0 + successes, beta: k0 * (1 - m0) + Math.max(0, trials - successes) };
  }

  /** The Beta posterior of `port` in one tag (prior: the scope posterior mean). */
  tagPosterior(tag: string, port: number, scopeMean = betaMean(this.scopePosterior(port))): BetaParams {
    const kT = this.params.tagStrength;
    const { successes, trials } = this.counts(tag, port);
    return { alpha: kT * scopeMean + successes, beta: kT * (1 - scopeMean) + Math.max(0, trials - successes) };
  }

  /**
   * The posterior of `port` for a host with these tags: the scope posterior when it has none,
   * the tag posterior for one tag, the average of the tags' Beta parameters for several.
   */
  posterior(tags: readonly string[], port: number): BetaParams {
    const scope = this.scopePosterior(port);
    if (tags.length === 0) return scope;
    const ms = betaMean(scope);
    if (tags.length === 1) return this.tagPosterior(tags[0]!, port, ms);
    let a = 0;
    let b = 0;
    for (const tag of tags) {
      const t = this.tagPosterior(tag, port, ms);
      a += t.alpha;
      b += t.beta;
    }
    return { alpha: a / tags.length, beta: b / tags.length };
  }

  /**
   * Posterior mean open probability of `port` for a host with these tags: `betaMean(posterior())`
   * with the same arithmetic, step for step (so the same bits), without allocating the
   * intermediate posteriors. Rankings call this for every candidate port after each batch.
   */
  mean(tags: readonly string[], port: number): number {
    const m0 = this.priorMean(port);
    const k0 = this.params.priorStrength;
    let g = this.scope;
    let i = g.find(port);
    let successes = i < 0 ? 0 : g.s[i]!;
    let trials = i < 0 ? g.sweeps : g.t[i]! + g.sweeps;
    const alpha0 = k0 * m0 + successes;
    const beta0 = k0 * (1 - m0) + Math.max(0, trials - successes);
    if (tags.length === 0) return alpha0 / (alpha0 + beta0);
    const ms = alpha0 / (alpha0 + beta0);
    const kT = this.params.tagStrength;
    let a = 0;
    let b = 0;
    for (const tag of tags) {
      const tg = this.tagGroups.get(tag);
      if (tg === undefined) {
        successes = 0;
        trials = 0;
      } else {
        g = tg;
        i = g.find(port);
        successes = i < 0 ? 0 : g.s[i]!;
        trials = i < 0 ? g.sweeps : g.t[i]! + g.sweeps;
      }
      const alpha = kT * ms + successes;
      const beta = kT * (1 - ms) + Math.max(0, trials - successes);
      if (tags.length === 1) return alpha / (alpha + beta);
      a += alpha;
      b += beta;
    }
    const alpha = a / tags.length;
    const beta = b / tags.length;
    return alpha / (alpha + beta);
  }

  /** Every port with counts in a tag's group (probed and tracked, or seen open), unordered. */
  entries(tag: string): readonly number[] {
    return this.tagGroups.get(tag)?.ports ?? [];
  }

  /**
   * Every entry of a tag's group with its discounted successes and trials (sweeps included, as
   * `counts` gives them), in slot order, without allocating per entry.
   */
  forEachEntry(tag: string, visit: (port: number, successes: number, trials: number) => void): void {
    const g = this.tagGroups.get(tag);
    if (!g) return;
    const { ports, s, t, sweeps } = g;
    for (let i = 0; i < ports.length; i++) visit(ports[i]!, s[i]!, t[i]! + sweeps);
  }

  /** Discounted sweeps of a tag's group (probes of every port without an entry). */
  sweeps(tag: string): number {
    return this.tagGroups.get(tag)?.sweeps ?? 0;
  }

  /** Ports ever seen open (still remembered) in a tag's group (null = whole scope), ascending. */
  openPorts(tag: string | null): readonly number[] {
    const g = tag === null ? this.scope : this.tagGroups.get(tag);
    if (!g) return [];
    let hit = this.openCache.get(g);
    if (!hit || hit.version !== g.openVersion) {
      hit = { version: g.openVersion, ports: [...g.openPorts()].sort((a, b) => a - b) };
      this.openCache.set(g, hit);
    }
    return hit.ports;
  }

  /**
   * The ports worth scoring for a host with these tags: every port remembered open in the
   * scope or in one of the tags, plus nmap's `priorTop` most frequent ports. Ascending, cached
   * until a port is first seen open or forgotten, so scoring never loops over the 65,535-port
   * universe and the list is not rebuilt for every batch.
   */
  candidates(tags: readonly string[], priorTop: number): readonly number[] {
    const key = `${priorTop}\u0000${tags.join('\u0000')}`;
    const signature = [this.scope, ...tags.map((t) => this.tagGroups.get(t))].map((g) => (g ? g.openVersion : -1)).join(',');
    let hit = this.candidateCache.get(key);
    if (!hit || hit.signature !== signature) {
      const set = new Set<number>(this.openPorts(null));
      for (const tag of tags) for (const p of this.openPorts(tag)) set.add(p);
      for (const p of this.catalog.top(priorTop)) set.add(p);
      hit = { signature, ports: [...set].sort((a, b) => a - b) };
      this.candidateCache.set(key, hit);
    }
    return hit.ports;
  }

  /**
   * The posteriors of `candidates(tags, priorTop)` for a host with these tags, cached until the
   * next observation: hosts sharing tags share the table, so per-host scoring is array reads.
   */
  table(tags: readonly string[], priorTop: number): PosteriorTable {
    this.checkCache();
    const key = `${priorTop}\u0000${tags.join('\u0000')}`;
    let t = this.tableCache.get(key);
    if (!t) {
      const ports = this.candidates(tags, priorTop);
      const alpha = new Float64Array(ports.length);
      const beta = new Float64Array(ports.length);
      const mean = new Float64Array(ports.length);
      ports.forEach((port, i) => {
        const p = this.posterior(tags, port);
        alpha[i] = p.alpha;
        beta[i] = p.beta;
        mean[i] = p.alpha / (p.alpha + p.beta);
      });
      t = { ports, alpha, beta, mean };
      this.tableCache.set(key, t);
    }
    return t;
  }

  /** The `limit` ports with the highest posterior mean in a group (null = scope), for explain(). */
  top(tag: string | null, limit: number, priorTop = limit): ExplainedPort[] {
    const ports = this.candidates(tag === null ? [] : [tag], priorTop);
    const rows = ports.map((port) => ({
      port,
      estimate: tag === null ? betaMean(this.scopePosterior(port)) : betaMean(this.tagPosterior(tag, port)),
      trials: this.counts(tag, port).trials,
    }));
    rows.sort((a, b) => b.estimate - a.estimate || a.port - b.port);
    return rows.slice(0, limit);
  }

  /** The plain-JSON state; `new PortStats(catalog, params, state)` restores it exactly. */
  toJSON(): PortStatsState {
    const tags: Record<string, GroupStatsState> = {};
    for (const name of this.tags()) tags[name] = this.tagGroups.get(name)!.toJSON();
    return { version: 1, epoch: this.epochValue, discount: this.params.discount, scope: this.scope.toJSON(), tags };
  }

  private checkCache(): void {
    if (this.cacheVersion !== this.versionValue) {
      this.tableCache.clear();
      this.cacheVersion = this.versionValue;
    }
  }
}

/** Mean of a Beta distribution. */
export function betaMean(p: BetaParams): number {
  return p.alpha / (p.alpha + p.beta);
}
