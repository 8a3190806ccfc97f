import type { Rng } from './rng.js';

/**
 * Draws items in proportion to non-negative weights by binary search over cumulative sums
 * (O(log n) per draw, O(n) memory). Used for nmap's open frequencies by the synthetic scope
 * generator and by the strategies' exploration prior, so both draw the same way.
 */
export class CumulativeSampler {
  /** The items, in the order their weights were summed. */
  readonly items: ArrayLike<number>;
  /** cumulative[i] = sum of the weights of items[0..i]. */
  private readonly cumulative: Float64Array;
  /** The sum of all weights. */
  readonly total: number;

  constructor(items: ArrayLike<number>, weightOf: (item: number) => number) {
    this.items = items;
    this.cumulative = new Float64Array(items.length);
    let s = 0;
    for (let i = 0; i < items.length; i++) {
      s += weightOf(items[i]!);
      this.cumulative[i] = s;
    }
    this.total = s;
  }

  /** How many items there are. */
  get size(): number {
    return this.items.length;
  }

  /** One item, with probability weight / total (the last item when there are none with weight). */
  draw(rng: Rng): number {
    return this.drawFrom(rng, 0);
  }

  /**
   * One of the items from index `start` on, with probability weight / (their total): the draw
   * of `draw` conditioned on skipping the first `start` items, without rejecting draws (items
   * ordered by weight, most first, put the mass a caller has already taken at the head). The
   * last item when `start` is past the end or the rest has no weight.
   */
  drawFrom(rng: Rng, start: number): number {
    const c = this.cumulative;
    const from = Math.max(0, Math.min(Math.floor(start), c.length - 1));
    const below = from === 0 ? 0 : c[from - 1]!;
    const u = below + rng.next() * (this.total - below);
    let lo = from;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return this.items[lo]!;
  }
}
