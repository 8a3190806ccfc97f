import seedrandom from 'seedrandom';

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

class AleaRng implements Rng {
  private readonly prng: () => number;
  constructor(seed: string) {
    // Alea: fast, good statistical quality, and seedrandom's recommended small PRNG.
    this.prng = seedrandom.alea(seed);
  }
  next(): number {
    return this.prng();
  }
  int(n: number): number {
    return Math.floor(this.prng() * n);
  }
}

/** A seeded RNG; the seed is any string or number (numbers are stringified). */
export function createRng(seed: string | number): Rng {
  return new AleaRng(String(seed));
}

/**
 * A child RNG for one unit of work (an epoch, a host-epoch, a round), derived from the run
 * seed and the unit's identity. Derived streams do not depend on the order units are processed
 * in, so batching and parallelism never change results.
 */
export function deriveRng(seed: string | number, ...parts: readonly (string | number)[]): Rng {
  return new AleaRng(`${seed}\u0000${parts.join('\u0000')}`);
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
