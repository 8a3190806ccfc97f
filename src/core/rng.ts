/**
 * A seeded random source. Algorithms receive one and never call Math.random or read the clock,
 * so that any run can be replayed bit for bit from its seed.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

const TWO_NEG_32 = 2.3283064365386963e-10;

/**
 * Baagoe's Mash over `data`, continuing from the state `n` (as seedrandom's `alea` seeds it):
 * returns the new state; `(state >>> 0) * 2^-32` is the hash value.
 */
function mash(data: string, n: number): number {
  for (let i = 0; i < data.length; i++) {
    n += data.charCodeAt(i);
    let h = 0.02519603282416938 * n;
    n = h >>> 0;
    h -= n;
    h *= n;
    n = h >>> 0;
    h -= n;
    n += h * 0x100000000;
  }
  return n;
}

// Alea seeds with mash(' ') three times before the seed: that part never varies.
const SPACE_1 = mash(' ', 0xefc8249d);
const SPACE_2 = mash(' ', SPACE_1);
const SPACE_3 = mash(' ', SPACE_2);

/**
 * Baagoe's Alea, the same stream as seedrandom's `alea(seed)` for every seed (the property test
 * in test/core/rng.test.ts compares them), as a plain class: the library's closures cost a tenth
 * of a Thompson-sampling replay (a generator is seeded per host-round and drawn from ~100 times).
 */
class Alea implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private c = 1;

  constructor(seed: string) {
    let n = mash(seed, SPACE_3);
    let s0 = (SPACE_1 >>> 0) * TWO_NEG_32 - (n >>> 0) * TWO_NEG_32;
    n = mash(seed, n);
    let s1 = (SPACE_2 >>> 0) * TWO_NEG_32 - (n >>> 0) * TWO_NEG_32;
    n = mash(seed, n);
    let s2 = (SPACE_3 >>> 0) * TWO_NEG_32 - (n >>> 0) * TWO_NEG_32;
    if (s0 < 0) s0 += 1;
    if (s1 < 0) s1 += 1;
    if (s2 < 0) s2 += 1;
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
  }

  next(): number {
    const t = 2091639 * this.s0 + this.c * TWO_NEG_32;
    this.s0 = this.s1;
    this.s1 = this.s2;
    this.c = t | 0;
    return (this.s2 = t - this.c);
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** A seeded RNG; the seed is any string or number (numbers are stringified). */
export function createRng(seed: string | number): Rng {
  return new Alea(String(seed));
}

/**
 * A child RNG for one unit of work (an epoch, a host-epoch, a round), derived from the run
 * seed and the unit's identity. Derived streams do not depend on the order units are processed
 * in, so batching and parallelism never change results.
 */
export function deriveRng(seed: string | number, ...parts: readonly (string | number)[]): Rng {
  return new Alea(`${seed}\u0000${parts.join('\u0000')}`);
}

/** In-place Fisher-Yates shuffle with the given RNG. */
export function shuffle<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

/** Resolve a user-supplied seed (or none) at the edge; returns the seed to log and record. */
export function resolveSeed(seed: string | number | undefined, fallback: () => number = () => Date.now()): string {
  return seed === undefined || seed === '' ? String(fallback()) : String(seed);
}
