import { AddressSpace, type ScopeItem, type SpaceAddress } from './address-space.js';
import { Permutation } from './permutation.js';

/** The persisted cycle: where the walk is, and the scope snapshot it walks. */
export interface CycleDocument {
  /** 1-based cycle number; also the strategies' epoch. */
  readonly cycle: number;
  /** Permutation key of this cycle (install seed + cycle number). */
  readonly key: string;
  /** Next permutation index to hand out (a bigint as decimal text). */
  readonly position: string;
  /** Addresses in the snapshot (decimal text). */
  readonly size: string;
  /** Scope and blocklist when the cycle started: the walk's domain. */
  readonly scope: readonly ScopeItem[];
  readonly startedAt: number;
  /** Addresses handed out by this cycle. */
  readonly dispensed: number;
  /** Snapshot addresses skipped because a later edit removed them from scope. */
  readonly skipped: number;
  /** Cycles completed since installation. */
  readonly completed: number;
  readonly lastCompletedAt?: number;
}

/** Cycle progress for statistics and /metrics. */
export interface CycleProgress {
  readonly cycle: number;
  readonly position: string;
  readonly size: string;
  readonly fraction: number;
  readonly dispensed: number;
  readonly skipped: number;
  readonly completed: number;
  readonly startedAt: number;
  readonly lastCompletedAt?: number;
}

/** Skips allowed in one `next()` before yielding (a huge removed block must not stall a request). */
const MAX_SKIPS_PER_CALL = 65_536;

/**
 * The scan cycle: every address of the scope minus the blocklist exactly once per cycle, in a
 * keyed pseudo-random order, by walking a Permutation of [0, N) and mapping each index onto the
 * address space. Nothing is materialised; only the position is persisted.
 *
 * Scope edits (the documented rule): a cycle walks the snapshot taken when it started. Addresses
 * removed or blocklisted since are skipped when their turn comes (counted in `skipped`); tags
 * are always the current ones; added addresses join at the next cycle (or at once with
 * `restart`). So progress accounting is never lost and no address is visited twice in a cycle.
 */
export class Cycle {
  private doc: CycleDocument;
  private snapshot: AddressSpace;
  private permutation: Permutation;
  private position: bigint;
  private dirtyFlag = false;
  private readonly seed: string;

  private constructor(seed: string, doc: CycleDocument) {
    this.seed = seed;
    this.doc = doc;
    this.snapshot = AddressSpace.build(doc.scope, 'cycle.scope');
    this.permutation = new Permutation(this.snapshot.size, doc.key);
    this.position = BigInt(doc.position);
  }

  /** Resume a persisted cycle, or start cycle 1 over `scope` when there is none. */
  static resume(seed: string, doc: CycleDocument | undefined, scope: readonly ScopeItem[], now: number): Cycle {
    if (doc) return new Cycle(seed, doc);
    const c = new Cycle(seed, Cycle.fresh(seed, 1, scope, now, 0, undefined));
    c.dirtyFlag = true;
    return c;
  }

  private static fresh(
    seed: string,
    cycle: number,
    scope: readonly ScopeItem[],
    now: number,
    completed: number,
    lastCompletedAt: number | undefined,
  ): CycleDocument {
    const size = AddressSpace.build(scope, 'scope').size;
    return {
      cycle,
      key: `${seed}/${cycle}`,
      position: '0',
      size: String(size),
      scope: scope.map((s) => ({ target: s.target, tags: [...s.tags], blocklist: s.blocklist })),
      startedAt: now,
      dispensed: 0,
      skipped: 0,
      completed,
      ...(lastCompletedAt !== undefined ? { lastCompletedAt } : {}),
    };
  }

  get number(): number {
    return this.doc.cycle;
  }

  /** True when every address of this cycle was handed out (the next `next` starts a new cycle, or waits for its period). */
  get atEnd(): boolean {
    return this.position >= this.snapshot.size;
  }

  /** True when the position moved since the last `take()`. */
  get dirty(): boolean {
    return this.dirtyFlag;
  }

  /**
   * The next address of the cycle that is still in `current` (with its current tags), or
   * undefined when there is nothing to hand out right now. A finished cycle starts the next one
   * over `currentItems`.
   */
  next(
    current: AddressSpace,
    currentItems: readonly ScopeItem[],
    now: number,
    periodMs = 0,
  ): (SpaceAddress & { cycle: number }) | undefined {
    let skips = 0;
    let restarted = false;
    for (;;) {
      if (this.position >= this.snapshot.size) {
        // An empty cycle over an empty scope would spin: start the next one at most once per call.
        if (restarted || current.size === 0n) return undefined;
        // Paced: a finished cycle does not restart before its period is over.
        if (this.snapshot.size > 0n && now < this.doc.startedAt + periodMs) return undefined;
        // A cycle over an empty scope (a new installation) is not a completed cycle: the first
        // addresses added start cycle 1 itself.
        if (this.snapshot.size === 0n) this.begin(this.doc.cycle, currentItems, now, this.doc.completed, this.doc.lastCompletedAt);
        else this.begin(this.doc.cycle + 1, currentItems, now, this.doc.completed + 1, now);
        restarted = true;
        continue;
      }
      const index = this.permutation.at(this.position);
      this.position++;
      this.dirtyFlag = true;
      const addr = this.snapshot.nth(index);
      const seg = current.find(addr.family, addr.value);
      if (seg) {
        this.doc = { ...this.doc, dispensed: this.doc.dispensed + 1 };
        return { ...addr, tags: seg.tags, cycle: this.doc.cycle };
      }
      this.doc = { ...this.doc, skipped: this.doc.skipped + 1 };
      if (++skips >= MAX_SKIPS_PER_CALL) return undefined;
    }
  }

  /**
   * Start a new cycle over `items` (an operator's choice): the current one is abandoned, or, when
   * every address of it was handed out already (a paced cycle waiting for its period), counted
   * as completed, as the period's end would have.
   */
  restart(items: readonly ScopeItem[], now: number): void {
    const walked = this.snapshot.size > 0n && this.position >= this.snapshot.size;
    if (walked) this.begin(this.doc.cycle + 1, items, now, this.doc.completed + 1, now);
    else this.begin(this.doc.cycle + 1, items, now, this.doc.completed, this.doc.lastCompletedAt);
  }

  private begin(cycle: number, items: readonly ScopeItem[], now: number, completed: number, lastCompletedAt: number | undefined): void {
    this.doc = Cycle.fresh(this.seed, cycle, items, now, completed, lastCompletedAt);
    this.snapshot = AddressSpace.build(this.doc.scope, 'cycle.scope');
    this.permutation = new Permutation(this.snapshot.size, this.doc.key);
    this.position = 0n;
    this.dirtyFlag = true;
  }

  /** The document to persist; clears the dirty flag. */
  take(): CycleDocument {
    this.dirtyFlag = false;
    return { ...this.doc, position: String(this.position) };
  }

  /** When the next cycle may start (its period over), or undefined when this one is not finished. */
  nextStartAt(periodMs: number): number | undefined {
    return this.position >= this.snapshot.size && this.snapshot.size > 0n ? this.doc.startedAt + periodMs : undefined;
  }

  progress(): CycleProgress {
    const size = this.snapshot.size;
    // A cycle over an empty snapshot (nothing scanned yet) has done nothing, not everything.
    const fraction = size === 0n ? 0 : Number((this.position * 1_000_000n) / size) / 1_000_000;
    return {
      cycle: this.doc.cycle,
      position: String(this.position),
      size: String(size),
      fraction,
      dispensed: this.doc.dispensed,
      skipped: this.doc.skipped,
      completed: this.doc.completed,
      startedAt: this.doc.startedAt,
      ...(this.doc.lastCompletedAt !== undefined ? { lastCompletedAt: this.doc.lastCompletedAt } : {}),
    };
  }
}
