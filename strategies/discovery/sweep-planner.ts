import { hashText as hash, PortbanditError } from '../../src/core/index.js';

/**
 * Seed sweeps targeted at network prefixes, paced so that every epoch stays at the budget.
 *
 * A prefix is "due" when none of its hosts was swept in the last `resweepEpochs` epochs. The
 * budget funds f = sweepShare * B * H / S sweeps per epoch (B budget, H hosts seen last epoch,
 * S sweep size); epoch e runs k_e = floor(f * (e + 1)) - floor(f * e) of them (f on average,
 * whole sweeps), capped by the due prefixes and by what the epoch's budget can hold. The due
 * prefixes never swept go first, then the longest unswept; ties are broken by a hash of
 * (prefix, epoch). In each chosen prefix exactly one host is swept: the live host (open ports
 * last epoch, not a pseudo-service) with the smallest hash of (ip, epoch), remembered while the
 * previous epoch's results were learned. Every other host-epoch gets
 *
 *   b' = (B * H - k_e * S) / (H - k_e)
 *
 * so the epoch's probes, k_e * S + (H - k_e) * b', are B * H: the average allowance is exactly
 * the budget. In the first epoch nothing is known, nobody is swept and every host gets B;
 * once every prefix has been swept recently b' is B again, until prefixes fall due.
 */

/** The planner's plain-JSON state. */
export interface SweepPlannerState {
  /** Host results of the two latest epochs: [[epoch, count], ...], latest first. */
  readonly hosts: ReadonlyArray<readonly [epoch: number, count: number]>;
  /**
   * Per prefix, ascending: the epochs of its two latest sweeps (-1 = none, latest first), and
   * the host to sweep in epoch `target` if the prefix is chosen: [target, ip, hash], for the
   * latest target and (optional, for states written before it existed) the one before it.
   */
  readonly prefixes: ReadonlyArray<
    readonly [
      prefix: string,
      swept: readonly [number, number],
      candidate: readonly [number, string, number] | null,
      earlier?: readonly [number, string, number] | null,
    ]
  >;
}

/** What the planner says about one host-epoch. */
export interface SweepOdds {
  /** Sweep this host. */
  readonly sweep: boolean;
  /** Allowance of the hosts that are not swept (average; round stochastically). */
  readonly others: number;
  /** Sweeps this epoch runs, and prefixes due, for explain(). */
  readonly sweeps: number;
  readonly due: number;
}

type Candidate = [target: number, ip: string, hash: number];

/**
 * Both candidates are kept because results arrive while an epoch runs (the coordinator learns
 * online): a result of epoch e nominates a host for e + 1, and must not replace the host
 * chosen for e before e's sweep has run. Keeping the best candidate of each of the two latest
 * targets is order-independent, so merged and restored states agree.
 */
interface PrefixInfo {
  swept: [number, number];
  candidate: Candidate | null;
  earlier: Candidate | null;
}

function addCandidate(info: PrefixInfo, c: readonly [number, string, number] | null | undefined): void {
  if (c === null || c === undefined) return;
  const latest = info.candidate;
  if (latest === null || c[0] > latest[0]) {
    info.earlier = latest;
    info.candidate = [c[0], c[1], c[2]];
  } else if (c[0] === latest[0]) {
    info.candidate = better(latest, c);
  } else if (info.earlier === null || c[0] > info.earlier[0]) {
    info.earlier = [c[0], c[1], c[2]];
  } else if (c[0] === info.earlier[0]) {
    info.earlier = better(info.earlier, c);
  }
}

function candidateFor(info: PrefixInfo, epoch: number): Candidate | null {
  if (info.candidate?.[0] === epoch) return info.candidate;
  if (info.earlier?.[0] === epoch) return info.earlier;
  return null;
}

function newInfo(swept: readonly [number, number] = [-1, -1]): PrefixInfo {
  return { swept: [swept[0], swept[1]], candidate: null, earlier: null };
}

type EpochCount = readonly [number, number];

function bump(list: readonly EpochCount[], epoch: number, count: number): EpochCount[] {
  const out: EpochCount[] = list.map(([e, c]) => (e === epoch ? [e, c + count] : [e, c]));
  if (!out.some(([e]) => e === epoch)) out.push([epoch, count]);
  out.sort((a, b) => b[0] - a[0]);
  return out.slice(0, 2);
}

function recordSweep(swept: readonly [number, number], epoch: number): [number, number] {
  if (epoch === swept[0] || epoch === swept[1]) return [swept[0], swept[1]];
  if (epoch > swept[0]) return [epoch, swept[0]];
  if (epoch > swept[1]) return [swept[0], epoch];
  return [swept[0], swept[1]];
}

/** A candidate for `target` with a smaller hash wins (ties by ip): order-independent. */
function better(a: readonly [number, string, number] | null, b: readonly [number, string, number] | null): [number, string, number] | null {
  if (a === null) return b === null ? null : [b[0], b[1], b[2]];
  if (b === null) return [a[0], a[1], a[2]];
  if (a[0] !== b[0]) return a[0] > b[0] ? [a[0], a[1], a[2]] : [b[0], b[1], b[2]];
  const aWins = a[2] < b[2] || (a[2] === b[2] && a[1] <= b[1]);
  return aWins ? [a[0], a[1], a[2]] : [b[0], b[1], b[2]];
}

export class SweepPlanner {
  private hosts: EpochCount[];
  private readonly prefixes = new Map<string, PrefixInfo>();
  private planKey = '';
  /** The epoch's plan: per chosen prefix, the host to sweep (fixed when the plan is made). */
  private plan: { chosen: Map<string, string>; due: number; k: number; h: number } | null = null;

  constructor(state?: SweepPlannerState) {
    this.hosts = state ? state.hosts.map(([e, c]) => [e, c] as const) : [];
    for (const [prefix, swept, candidate, earlier] of state?.prefixes ?? []) {
      const info = newInfo(swept);
      addCandidate(info, candidate);
      addCandidate(info, earlier);
      this.prefixes.set(prefix, info);
    }
  }

  /** Learn from one teaching result: was it a sweep, and may the host be swept next epoch. */
  observe(epoch: number, ip: string, prefix: string, sweep: boolean, eligibleNext: boolean): void {
    this.hosts = bump(this.hosts, epoch, 1);
    let info = this.prefixes.get(prefix);
    if (info === undefined) {
      info = newInfo();
      this.prefixes.set(prefix, info);
    }
    if (sweep) info.swept = recordSweep(info.swept, epoch);
    if (eligibleNext) addCandidate(info, [epoch + 1, ip, hash(`${ip}\u0000${epoch + 1}`)]);
  }

  /** Whether the host `ip` of `prefix` is swept in `epoch`, and the others' allowance. */
  odds(
    epoch: number,
    prefix: string,
    ip: string,
    budget: number,
    size: number,
    sweepShare: number,
    resweepEpochs: number,
    wholeWithinShare = false,
  ): SweepOdds {
    const none: SweepOdds = { sweep: false, others: budget, sweeps: 0, due: 0 };
    if (sweepShare <= 0 || size <= budget) return none;
    const key = `${epoch}\u0000${budget}\u0000${size}\u0000${sweepShare}\u0000${resweepEpochs}\u0000${wholeWithinShare}`;
    // The plan of an epoch depends only on what was learned before it, so it is computed once.
    if (this.planKey !== key || this.plan === null) {
      this.plan = this.planEpoch(epoch, budget, size, sweepShare, resweepEpochs, wholeWithinShare);
      this.planKey = key;
    }
    const { chosen, due, k, h } = this.plan;
    if (k === 0) return { ...none, due };
    const others = Math.max(0, (budget * h - k * size) / (h - k));
    return { sweep: chosen.get(prefix) === ip, others, sweeps: k, due };
  }

  private planEpoch(epoch: number, budget: number, size: number, sweepShare: number, resweepEpochs: number, wholeWithinShare: boolean) {
    let h = 0;
    for (const [e, c] of this.hosts) {
      if (e < epoch) {
        h = c;
        break;
      }
    }
    const due: Array<{ prefix: string; ip: string; last: number; tie: number }> = [];
    for (const [prefix, info] of this.prefixes) {
      // Sweeps of this epoch itself do not count: the plan must not change while it runs.
      const last = info.swept[0] < epoch ? info.swept[0] : info.swept[1];
      const candidate = candidateFor(info, epoch);
      if (candidate === null) continue;
      if (last < 0 || epoch - last > resweepEpochs) due.push({ prefix, ip: candidate[1], last, tie: hash(`${prefix}\u0000${epoch}`) });
    }
    const funded = h > 0 ? (sweepShare * budget * h) / size : 0;
    const paced = Math.floor(funded * (epoch + 1)) - Math.floor(funded * epoch);
    // Never plan sweeps the epoch's budget cannot hold (leave the others at least one probe).
    const fits = Math.max(0, Math.floor((budget * h - h) / Math.max(1, size - 1)));
    // wholeWithinShare: no epoch spends more than the share on sweeps (pacing alone lets an
    // epoch of a small scope run one whole sweep that is most of its budget).
    const within = wholeWithinShare ? Math.floor(funded) : Infinity;
    const k = Math.max(0, Math.min(paced, due.length, fits, h - 1, within));
    due.sort((a, b) => a.last - b.last || a.tie - b.tie || (a.prefix < b.prefix ? -1 : 1));
    return { chosen: new Map(due.slice(0, k).map((d) => [d.prefix, d.ip])), due: due.length, k, h };
  }

  /** Plain JSON, sorted. */
  toJSON(): SweepPlannerState {
    const prefixes = [...this.prefixes.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([p, info]) => {
        const copy = (c: Candidate | null) => (c === null ? null : ([...c] as const));
        return [p, [info.swept[0], info.swept[1]] as const, copy(info.candidate), copy(info.earlier)] as const;
      });
    return { hosts: this.hosts.map(([e, c]) => [e, c] as const), prefixes };
  }
}

/** Check a restored planner state; throws PB_ERR_STRATEGY_STATE naming the field. */
export function validateSweepPlanner(state: unknown, where: string): SweepPlannerState {
  const s = state as SweepPlannerState | null;
  const pairs = (x: unknown) =>
    Array.isArray(x) && x.every((r) => Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number');
  if (s === null || typeof s !== 'object' || !pairs(s.hosts) || !Array.isArray(s.prefixes)) {
    throw new PortbanditError(
      'PB_ERR_STRATEGY_STATE',
      'expected {hosts: [[epoch, count]], prefixes: [[prefix, [swept, swept], candidate]]}',
      { where },
    );
  }
  const okCandidate = (c: unknown) =>
    c === null || (Array.isArray(c) && typeof c[0] === 'number' && typeof c[1] === 'string' && typeof c[2] === 'number');
  s.prefixes.forEach((row, i) => {
    const ok =
      Array.isArray(row) &&
      typeof row[0] === 'string' &&
      Array.isArray(row[1]) &&
      typeof row[1][0] === 'number' &&
      typeof row[1][1] === 'number';
    if (!ok || !okCandidate(row[2]) || (row.length > 3 && !okCandidate(row[3]))) {
      throw new PortbanditError(
        'PB_ERR_STRATEGY_STATE',
        'expected [prefix, [lastSweep, previousSweep], [targetEpoch, ip, hash] | null, earlier candidate | null]',
        {
          where: `${where}.prefixes[${i}]`,
        },
      );
    }
  });
  return s;
}

/** Merge planner states learned on disjoint results (order-independent). */
export function mergeSweepPlanners(a: SweepPlannerState, b: SweepPlannerState): SweepPlannerState {
  let hosts: EpochCount[] = a.hosts.map(([e, c]) => [e, c] as const);
  for (const [e, c] of b.hosts) hosts = bump(hosts, e, c);
  const map = new Map<string, PrefixInfo>();
  for (const s of [a, b]) {
    for (const [p, swept, candidate, earlier] of s.prefixes) {
      let cur = map.get(p);
      if (cur === undefined) map.set(p, (cur = newInfo(swept)));
      else cur.swept = recordSweep(recordSweep(cur.swept, swept[0]), swept[1]);
      addCandidate(cur, candidate);
      addCandidate(cur, earlier);
    }
  }
  const planner = new SweepPlanner({ hosts, prefixes: [...map].map(([p, i]) => [p, i.swept, i.candidate, i.earlier] as const) });
  return planner.toJSON();
}

/** The yield tracker's plain-JSON state. */
export interface SweepYieldState {
  /** Sweeps that were learned, and later hits on the ports they found first, per result epoch: [epoch, sweeps, hits], ascending. */
  readonly counts: ReadonlyArray<readonly [number, number, number]>;
  /** Ports a sweep found first, watched for one epoch: [prefix, port, epoch of the sweep], sorted. */
  readonly watch: ReadonlyArray<readonly [string, number, number]>;
}

/**
 * Whether sweeps pay: a sweep's new ports (never seen open before) are watched for the next
 * epoch, and every time another host of the same prefix is found with one of them it counts
 * as a hit. An organisation's own subnet ports give hundreds of hits per sweep; on a scope
 * that follows nmap's table (nothing subnet-specific to find) a sweep's finds are one-offs and
 * the hits stay near zero, so the sweep share is scaled down by (hits per sweep) / target.
 * Only results of earlier epochs count, so an epoch's sweep plan does not change while it runs.
 */
export class SweepYield {
  private readonly counts = new Map<number, [number, number]>();
  private readonly watch = new Map<string, Map<number, number>>();
  /** Bumped whenever `counts` changes; `factor` is asked once per host decision, and recomputed only then. */
  private version = 0;
  private readonly memo = { version: -1, epoch: 0, target: 0, memory: 0, prior: 0, value: 0 };

  constructor(state?: SweepYieldState) {
    for (const [epoch, sweeps, hits] of state?.counts ?? []) this.counts.set(epoch, [sweeps, hits]);
    for (const [prefix, port, epoch] of state?.watch ?? []) this.watched(prefix).set(port, epoch);
  }

  private watched(prefix: string): Map<number, number> {
    let m = this.watch.get(prefix);
    if (m === undefined) {
      m = new Map();
      this.watch.set(prefix, m);
    }
    return m;
  }

  /** The counts of `epoch`, for the caller to change. */
  private bucket(epoch: number): [number, number] {
    this.version++;
    let b = this.counts.get(epoch);
    if (b === undefined) {
      b = [0, 0];
      this.counts.set(epoch, b);
    }
    return b;
  }

  /** A sweep of `prefix` in `epoch` found `fresh` ports nobody had seen open before. */
  observeSweep(prefix: string, epoch: number, fresh: readonly number[]): void {
    this.bucket(epoch)[0] += 1;
    const m = this.watched(prefix);
    for (const p of fresh) m.set(p, epoch);
  }

  /** A non-sweep result: count hits on watched ports of its prefix (one epoch after the sweep). */
  observeHost(prefix: string, epoch: number, open: readonly number[]): void {
    const m = this.watch.get(prefix);
    if (m === undefined) return;
    for (const p of open) {
      const at = m.get(p);
      if (at !== undefined && epoch === at + 1) this.bucket(epoch)[1] += 1;
    }
    for (const [p, at] of m) if (epoch > at + 1) m.delete(p);
    if (m.size === 0) this.watch.delete(prefix);
  }

  /** Sweeps and hits learned from results of epochs before `epoch`. */
  totals(epoch: number): { sweeps: number; hits: number } {
    let sweeps = 0;
    let hits = 0;
    for (const [e, [s, h]] of this.counts) {
      if (e < epoch) {
        sweeps += s;
        hits += h;
      }
    }
    return { sweeps, hits };
  }

  /**
   * The factor in [0, 1] applied to the sweep share in `epoch`: hits per sweep over `target`.
   * Sweeps of epoch e weigh `memory`^(epoch - 2 - e) and their hits (counted the epoch after the
   * sweep) the same, so memory 1 = the cumulative yield since the first sweep, memory < 1 = the
   * recent yield. A prior of one sweep at `prior` x target, as old as epoch -1, starts the tier
   * at `prior` of its share before any yield is measured (1 = full share from epoch 0) and fades
   * like data. Sweeps of the last epoch have had no time to earn hits yet, so they are left out;
   * only results of earlier epochs count, so the factor does not change while an epoch runs.
   * With memory 1 and prior 1 this is (hits + target) / (sweeps + 1) / target, adaptive's rule
   * before the tier was shared.
   */
  factor(epoch: number, target: number, memory = 1, prior = 1): number {
    if (target <= 0) return 1;
    const m = this.memo;
    if (m.version === this.version && m.epoch === epoch && m.target === target && m.memory === memory && m.prior === prior) return m.value;
    m.version = this.version;
    m.epoch = epoch;
    m.target = target;
    m.memory = memory;
    m.prior = prior;
    m.value = this.computeFactor(epoch, target, memory, prior);
    return m.value;
  }

  private computeFactor(epoch: number, target: number, memory: number, prior: number): number {
    const w0 = memory === 1 ? 1 : Math.pow(memory, Math.max(0, epoch - 1));
    let sweeps = w0;
    let hits = w0 * target * prior;
    for (const [e, [s, h]] of this.counts) {
      // Sweeps are booked to their epoch, hits to the epoch of the result (the sweep's + 1).
      if (e < epoch - 1) sweeps += memory === 1 ? s : Math.pow(memory, epoch - 2 - e) * s;
      if (e < epoch) hits += memory === 1 ? h : Math.pow(memory, epoch - 1 - e) * h;
    }
    return Math.min(1, hits / sweeps / target);
  }

  toJSON(): SweepYieldState {
    const counts = [...this.counts].sort((a, b) => a[0] - b[0]).map(([e, [s, h]]) => [e, s, h] as const);
    const watch: Array<readonly [string, number, number]> = [];
    for (const prefix of [...this.watch.keys()].sort()) {
      for (const [port, epoch] of [...this.watch.get(prefix)!].sort((a, b) => a[0] - b[0])) watch.push([prefix, port, epoch]);
    }
    return { counts, watch };
  }
}

/** Check a restored yield state; throws PB_ERR_STRATEGY_STATE naming the field. */
export function validateSweepYield(state: unknown, where: string): SweepYieldState {
  const s = state as SweepYieldState | null;
  const ok =
    s !== null &&
    typeof s === 'object' &&
    Array.isArray(s.counts) &&
    s.counts.every((r) => Array.isArray(r) && r.length === 3 && r.every((x) => typeof x === 'number')) &&
    Array.isArray(s.watch) &&
    s.watch.every((r) => Array.isArray(r) && typeof r[0] === 'string' && typeof r[1] === 'number' && typeof r[2] === 'number');
  if (!ok)
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', 'expected {counts: [[epoch, sweeps, hits]], watch: [[prefix, port, epoch]]}', {
      where,
    });
  return s!;
}

/** Merge yield states learned on disjoint results (order-independent). */
export function mergeSweepYields(a: SweepYieldState, b: SweepYieldState): SweepYieldState {
  const counts = new Map<number, [number, number]>();
  for (const [e, s, h] of [...a.counts, ...b.counts]) {
    const c = counts.get(e);
    counts.set(e, c === undefined ? [s, h] : [c[0] + s, c[1] + h]);
  }
  // The latest watch epoch of a port wins, whatever the order.
  const fresh = new Map<string, Map<number, number>>();
  for (const [prefix, port, epoch] of [...a.watch, ...b.watch]) {
    const m = fresh.get(prefix) ?? new Map<number, number>();
    m.set(port, Math.max(epoch, m.get(port) ?? -Infinity));
    fresh.set(prefix, m);
  }
  const watch: Array<readonly [string, number, number]> = [];
  for (const prefix of [...fresh.keys()].sort()) {
    for (const [port, epoch] of [...fresh.get(prefix)!].sort((x, y) => x[0] - y[0])) watch.push([prefix, port, epoch]);
  }
  return { counts: [...counts].sort((x, y) => x[0] - y[0]).map(([e, [s, h]]) => [e, s, h] as const), watch };
}
