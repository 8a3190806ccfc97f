import { PortbanditError, isPort } from '../../src/core/index.js';

/**
 * Sparse co-occurrence counts: how often port B was found open on a host on which port A was
 * open, among the host-epochs where B was probed at all (semi-bandit feedback: a port that was
 * not probed says nothing). Only pairs that were seen open together at least once are kept, so
 * the table grows with the ports that co-occur, never with the 65,535-port universe.
 *
 * The estimate P(B | A) shrinks toward a caller-given marginal P(B) with `strength` pseudo-trials,
 * so a pair seen once does not outrank a port the scope knows well.
 */

/** One context's pair table in plain JSON: rows sorted by A then B. */
export interface PairTableState {
  /** [A, hosts with A open (discounted)], sorted by A. */
  readonly singles: ReadonlyArray<readonly [number, number]>;
  /** [A, B, hits, trials]: B open / B probed, on host-epochs with A open; sorted by A, B. */
  readonly pairs: ReadonlyArray<readonly [number, number, number, number]>;
}

/** Every context's table plus the epoch the counts are discounted to. */
export interface PairCountsState {
  /** The latest epoch learned from; -1 when nothing was learned. */
  readonly epoch: number;
  /** The per-epoch discount the counts were learned with (merging needs it). */
  readonly decay: number;
  /** Context key ("*" for the whole scope, or a tag) -> table. */
  readonly contexts: Readonly<Record<string, PairTableState>>;
}

/** Empty pair counts. */
export function emptyPairCounts(decay = 1): PairCountsState {
  return { epoch: -1, decay, contexts: {} };
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0;
}

/** Check a restored state's shape; throws PB_ERR_STRATEGY_STATE naming the bad field. */
export function validatePairCounts(state: unknown, where: string): PairCountsState {
  const fail = (field: string, expected: string): never => {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', `expected ${expected}`, { where: `${where}${field}` });
  };
  if (state === null || typeof state !== 'object') return fail('', 'pair counts {epoch, decay, contexts}');
  const s = state as Record<string, unknown>;
  if (typeof s.epoch !== 'number' || !Number.isInteger(s.epoch) || s.epoch < -1) fail('.epoch', 'an integer >= -1');
  if (typeof s.decay !== 'number' || !(s.decay > 0 && s.decay <= 1)) fail('.decay', 'a number in (0, 1]');
  if (s.contexts === null || typeof s.contexts !== 'object') return fail('.contexts', 'an object of pair tables');
  for (const [key, table] of Object.entries(s.contexts as Record<string, unknown>)) {
    const t = table as Partial<PairTableState> | null;
    const at = `.contexts.${key}`;
    if (t === null || typeof t !== 'object' || !Array.isArray(t.singles) || !Array.isArray(t.pairs)) fail(at, '{singles, pairs}');
    t!.singles!.forEach((row, i) => {
      if (!Array.isArray(row) || !isPort(row[0]) || !isCount(row[1])) fail(`${at}.singles[${i}]`, '[port, count]');
    });
    t!.pairs!.forEach((row, i) => {
      if (!Array.isArray(row) || !isPort(row[0]) || !isPort(row[1]) || !isCount(row[2]) || !isCount(row[3])) {
        fail(`${at}.pairs[${i}]`, '[portA, portB, hits, trials]');
      }
    });
  }
  return state as PairCountsState;
}

interface Row {
  /** Hosts with A open (discounted). */
  n: number;
  /** B -> slot in hits/trials. */
  readonly slots: Map<number, number>;
  hits: Float64Array;
  trials: Float64Array;
  size: number;
}

function newRow(): Row {
  return { n: 0, slots: new Map(), hits: new Float64Array(8), trials: new Float64Array(8), size: 0 };
}

function slotOf(row: Row, b: number): number {
  let slot = row.slots.get(b);
  if (slot === undefined) {
    if (row.size === row.hits.length) {
      const hits = new Float64Array(row.size * 2);
      hits.set(row.hits);
      const trials = new Float64Array(row.size * 2);
      trials.set(row.trials);
      row.hits = hits;
      row.trials = trials;
    }
    slot = row.size++;
    row.slots.set(b, slot);
  }
  return slot;
}

/** Scratch membership tables (one per PairCounts user at a time; single-threaded). */
const openStamp = new Uint32Array(65536);
const probedStamp = new Uint32Array(65536);
let stampGen = 0;

function nextStamp(): number {
  stampGen++;
  if (stampGen === 0xffffffff) {
    openStamp.fill(0);
    probedStamp.fill(0);
    stampGen = 1;
  }
  return stampGen;
}

/** An anchor's strongest partners, best first (parallel arrays). */
export interface Partners {
  readonly ports: Uint16Array;
  readonly hits: Float64Array;
  readonly trials: Float64Array;
}

const NO_PARTNERS: Partners = { ports: new Uint16Array(0), hits: new Float64Array(0), trials: new Float64Array(0) };

/** One context's live table. */
export class PairTable {
  private readonly rows = new Map<number, Row>();
  private version = 0;
  private partnersVersion = -1;
  private readonly partnersCache = new Map<number, Partners>();

  /** Hosts with A open (discounted), 0 when never seen. */
  support(a: number): number {
    return this.rows.get(a)?.n ?? 0;
  }

  /** Number of ports A with a row. */
  get size(): number {
    return this.rows.size;
  }

  /** Ports A that have a row (unordered). */
  anchors(): IterableIterator<number> {
    return this.rows.keys();
  }

  /**
   * Learn from one host-epoch: `open` ascending and a subset of `probed`. The caller has set
   * the scratch stamps (see PairCounts.learn).
   */
  learn(open: readonly number[], probed: readonly number[], stamp: number): void {
    this.version++;
    for (const a of open) {
      let row = this.rows.get(a);
      if (row === undefined) {
        row = newRow();
        this.rows.set(a, row);
      }
      row.n += 1;
      // B's that already have a slot and were probed: one more trial, maybe a hit. Walk the
      // shorter of the row and the probed list.
      if (row.size <= probed.length) {
        for (const [b, slot] of row.slots) {
          if (probedStamp[b] !== stamp) continue;
          row.trials[slot]! += 1;
          if (openStamp[b] === stamp) row.hits[slot]! += 1;
        }
      } else {
        for (const b of probed) {
          if (b === a) continue;
          const slot = row.slots.get(b);
          if (slot === undefined) continue;
          row.trials[slot]! += 1;
          if (openStamp[b] === stamp) row.hits[slot]! += 1;
        }
      }
      // Pairs seen open together for the first time start counting now. Their trials start at
      // the hosts A was open on so far (B may have been probed there, closed): starting at one
      // trial would rate every pair seen once at 100% and send follow-ups after coincidences.
      for (const b of open) {
        if (b === a || row.slots.has(b)) continue;
        const slot = slotOf(row, b);
        row.hits[slot] = 1;
        row.trials[slot] = row.n;
      }
    }
  }

  /** Multiply every count by `factor` (exponential discounting). */
  scale(factor: number): void {
    this.version++;
    for (const row of this.rows.values()) {
      row.n *= factor;
      for (let i = 0; i < row.size; i++) {
        row.hits[i]! *= factor;
        row.trials[i]! *= factor;
      }
    }
  }

  /** Drop rows and pairs whose counts have decayed below `floor` trials (keeps the table sparse). */
  prune(floor: number): void {
    this.version++;
    for (const [a, row] of this.rows) {
      if (row.n < floor) {
        this.rows.delete(a);
        continue;
      }
      let dead = 0;
      for (let i = 0; i < row.size; i++) if (row.trials[i]! < floor) dead++;
      if (dead === 0) continue;
      const keep = [...row.slots].filter(([, s]) => row.trials[s]! >= floor);
      const fresh = newRow();
      fresh.n = row.n;
      for (const [b, s] of keep) {
        const t = slotOf(fresh, b);
        fresh.hits[t] = row.hits[s]!;
        fresh.trials[t] = row.trials[s]!;
      }
      this.rows.set(a, fresh);
    }
  }

  /**
   * Call `visit(b, hits, trials)` for every B counted with A. Used to score follow-up
   * candidates without materialising anything.
   */
  forEachPartner(a: number, visit: (b: number, hits: number, trials: number) => void): void {
    const row = this.rows.get(a);
    if (row === undefined) return;
    for (const [b, slot] of row.slots) visit(b, row.hits[slot]!, row.trials[slot]!);
  }

  /**
   * A's `limit` strongest partners by raw rate (hits + 0.5) / (trials + 1), cached until the
   * table changes (once per learned batch), so scoring a host's follow-ups reads a few dozen
   * entries per found port instead of every partner a popular port ever had.
   */
  topPartners(a: number, limit: number): Partners {
    if (this.partnersVersion !== this.version) {
      this.partnersCache.clear();
      this.partnersVersion = this.version;
    }
    let cached = this.partnersCache.get(a);
    if (cached === undefined) {
      const row = this.rows.get(a);
      if (row === undefined) return NO_PARTNERS;
      const order = [...row.slots].sort((x, y) => {
        const rx = (row.hits[x[1]]! + 0.5) / (row.trials[x[1]]! + 1);
        const ry = (row.hits[y[1]]! + 0.5) / (row.trials[y[1]]! + 1);
        return ry - rx || x[0] - y[0];
      });
      const n = Math.min(limit, order.length);
      cached = { ports: new Uint16Array(n), hits: new Float64Array(n), trials: new Float64Array(n) };
      for (let i = 0; i < n; i++) {
        const [b, slot] = order[i]!;
        cached.ports[i] = b;
        cached.hits[i] = row.hits[slot]!;
        cached.trials[i] = row.trials[slot]!;
      }
      this.partnersCache.set(a, cached);
    }
    return cached;
  }

  /** Raw counts for (A, B): [hits, trials], zeros when unseen. */
  counts(a: number, b: number): [number, number] {
    const row = this.rows.get(a);
    const slot = row?.slots.get(b);
    if (row === undefined || slot === undefined) return [0, 0];
    return [row.hits[slot]!, row.trials[slot]!];
  }

  /** Add another table's counts (merge of disjoint learning). */
  add(state: PairTableState): void {
    this.version++;
    for (const [a, n] of state.singles) {
      let row = this.rows.get(a);
      if (row === undefined) {
        row = newRow();
        this.rows.set(a, row);
      }
      row.n += n;
    }
    for (const [a, b, hits, trials] of state.pairs) {
      let row = this.rows.get(a);
      if (row === undefined) {
        row = newRow();
        this.rows.set(a, row);
      }
      const slot = slotOf(row, b);
      row.hits[slot]! += hits;
      row.trials[slot]! += trials;
    }
  }

  /** Plain JSON, rows sorted so equal tables serialise identically. */
  toState(): PairTableState {
    const anchors = [...this.rows.keys()].sort((x, y) => x - y);
    const singles: Array<[number, number]> = [];
    const pairs: Array<[number, number, number, number]> = [];
    for (const a of anchors) {
      const row = this.rows.get(a)!;
      singles.push([a, row.n]);
      const partners = [...row.slots].sort((x, y) => x[0] - y[0]);
      for (const [b, slot] of partners) pairs.push([a, b, row.hits[slot]!, row.trials[slot]!]);
    }
    return { singles, pairs };
  }
}

/** Options of the pair model. */
export interface PairCountsOptions {
  /** Per-epoch discount factor in (0, 1]: counts are multiplied by it once per epoch passed. */
  readonly decay: number;
  /** Host-epochs with more open ports than this teach no pairs (pair cost is quadratic). */
  readonly pairCap: number;
  /** Also keep a table per scope tag (in addition to the whole-scope table). */
  readonly byTag: boolean;
}

/** Pair counts for the whole scope ("*") and, optionally, per tag. */
export class PairCounts {
  readonly options: PairCountsOptions;
  private epochValue: number;
  private readonly tables = new Map<string, PairTable>();

  constructor(options: PairCountsOptions, state: PairCountsState = emptyPairCounts(options.decay)) {
    this.options = options;
    this.epochValue = state.epoch;
    for (const key of Object.keys(state.contexts).sort()) this.table(key).add(state.contexts[key]!);
  }

  /** The latest epoch learned from (-1 when none). */
  get epoch(): number {
    return this.epochValue;
  }

  /** The table for a context key, created empty on first use. */
  table(key: string): PairTable {
    let t = this.tables.get(key);
    if (t === undefined) {
      t = new PairTable();
      this.tables.set(key, t);
    }
    return t;
  }

  /** The table for a context key if it exists. */
  peek(key: string): PairTable | undefined {
    return this.tables.get(key);
  }

  /** Context keys with a table. */
  keys(): string[] {
    return [...this.tables.keys()].sort();
  }

  /**
   * Bring the counts forward to `epoch`, discounting once per epoch passed. Results of an older
   * epoch that arrive late are learned at full weight of the current epoch (a small, documented
   * approximation that keeps learning O(1) per result).
   */
  advance(epoch: number): void {
    if (epoch <= this.epochValue) return;
    if (this.epochValue >= 0 && this.options.decay < 1) {
      const factor = this.options.decay ** (epoch - this.epochValue);
      for (const t of this.tables.values()) {
        t.scale(factor);
        // A pair whose evidence fell below a hundredth of a host is forgotten.
        t.prune(0.01);
      }
    }
    this.epochValue = epoch;
  }

  /** Learn from one teaching host-epoch (the caller has applied the guard rails). */
  learn(epoch: number, tags: readonly string[], open: readonly number[], probed: readonly number[]): void {
    this.advance(epoch);
    if (open.length === 0 || open.length > this.options.pairCap) return;
    const stamp = nextStamp();
    for (const p of probed) probedStamp[p] = stamp;
    for (const p of open) openStamp[p] = stamp;
    this.table('*').learn(open, probed, stamp);
    if (this.options.byTag) for (const tag of tags) this.table(tag).learn(open, probed, stamp);
  }

  /** Plain JSON snapshot. */
  toState(): PairCountsState {
    const contexts: Record<string, PairTableState> = {};
    for (const key of this.keys()) contexts[key] = this.tables.get(key)!.toState();
    return { epoch: this.epochValue, decay: this.options.decay, contexts };
  }
}

/**
 * Merge two pair-count states learned on disjoint results: both are discounted to the later
 * epoch, then counts add. Order-independent (addition commutes; rows are re-sorted).
 */
export function mergePairCounts(a: PairCountsState, b: PairCountsState): PairCountsState {
  const aEmpty = a.epoch < 0 && Object.keys(a.contexts).length === 0;
  const bEmpty = b.epoch < 0 && Object.keys(b.contexts).length === 0;
  if (!aEmpty && !bEmpty && a.decay !== b.decay) {
    throw new PortbanditError('PB_ERR_STRATEGY_STATE', `cannot merge pair counts learned with decay ${a.decay} and ${b.decay}`, {
      where: 'pairs.decay',
    });
  }
  const decay = aEmpty ? (bEmpty ? Math.min(a.decay, b.decay) : b.decay) : a.decay;
  const options: PairCountsOptions = { decay, pairCap: Infinity, byTag: true };
  const epoch = Math.max(a.epoch, b.epoch);
  const aligned = (s: PairCountsState): PairCounts => {
    const live = new PairCounts(options, s);
    if (s.epoch >= 0) live.advance(epoch);
    return live;
  };
  const left = aligned(a).toState();
  const right = aligned(b).toState();
  const out = new PairCounts(options, { epoch, decay: options.decay, contexts: {} });
  for (const s of [left, right]) for (const key of Object.keys(s.contexts)) out.table(key).add(s.contexts[key]!);
  return out.toState();
}

/** Shrunk estimate of P(B | A): (hits + strength * marginal) / (trials + strength). */
export function conditionalEstimate(hits: number, trials: number, marginal: number, strength: number): number {
  return (hits + strength * marginal) / (trials + strength);
}
