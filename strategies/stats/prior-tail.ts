import type { PortCatalog } from '../../src/catalog/index.js';
import { MAX_PORT, type Rng } from '../../src/core/index.js';
import { betaTail, logBeta } from './incomplete-beta.js';

/**
 * Thompson sampling over the whole port universe without sampling 65,535 ports per host.
 * Ports outside a strategy's candidates (nmap ranks below the candidate pool, and ports nmap has
 * no figure for) have seen nothing open, so their posteriors are their priors. Grouped into
 * classes of near-equal prior mean, the number of a class's ports whose draw would beat the
 * host's threshold tau (the k-th best candidate draw) is Binomial(size, P(Beta > tau)); we draw
 * that count (Poisson approximation: sizes are large and probabilities small) and pick that
 * many ports of the class uniformly. Cost per host: a few incomplete-beta evaluations.
 * Approximation: failures recorded for those ports are ignored (each is rarely probed twice).
 */

interface PriorClass {
  /** Ports of the class, or null for "every port nmap has no figure for". */
  readonly ports: Uint16Array | null;
  readonly size: number;
  /** Mean nmap frequency of the class (0 for unknown ports: the prior floor applies). */
  readonly frequency: number;
}

interface ClassPriors {
  readonly strength: number;
  readonly floor: number;
  readonly a: Float64Array;
  readonly b: Float64Array;
  readonly lnB: Float64Array;
}

const cache = new WeakMap<PortCatalog, Map<number, PriorTail>>();

function samplePoisson(lambda: number, rng: Rng): number {
  if (lambda <= 0) return 0;
  if (lambda > 50) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * (rng.next() + rng.next() + rng.next() - 1.5) * 2));
  const l = Math.exp(-lambda);
  let k = 0;
  let p = rng.next();
  while (p > l) {
    k++;
    p *= rng.next();
  }
  return k;
}

/** The prior classes of the ports outside nmap's top `skipTop` (see the file comment). */
export class PriorTail {
  readonly classes: readonly PriorClass[];
  private readonly catalog: PortCatalog;
  private lastPriors: ClassPriors | null = null;

  private constructor(catalog: PortCatalog, skipTop: number) {
    this.catalog = catalog;
    const buckets = new Map<number, number[]>();
    for (let i = Math.max(0, skipTop); i < catalog.byFrequency.length; i++) {
      const port = catalog.byFrequency[i]!;
      // Half-octave buckets of frequency: priors within a bucket differ by at most 41%.
      const key = Math.floor(2 * Math.log2(catalog.frequency(port)));
      let list = buckets.get(key);
      if (!list) buckets.set(key, (list = []));
      list.push(port);
    }
    const classes: PriorClass[] = [...buckets.entries()]
      .sort((a, b) => b[0] - a[0])
      .map(([, ports]) => ({
        ports: Uint16Array.from(ports),
        size: ports.length,
        frequency: ports.reduce((s, p) => s + catalog.frequency(p), 0) / ports.length,
      }));
    classes.push({ ports: null, size: MAX_PORT - catalog.byFrequency.length, frequency: 0 });
    this.classes = classes;
  }

  /** The (cached) classes for a catalog and a candidate pool of nmap's top `skipTop` ports. */
  static of(catalog: PortCatalog, skipTop: number): PriorTail {
    let byTop = cache.get(catalog);
    if (!byTop) cache.set(catalog, (byTop = new Map()));
    let tail = byTop.get(skipTop);
    if (!tail) byTop.set(skipTop, (tail = new PriorTail(catalog, skipTop)));
    return tail;
  }

  /**
   * Each class's prior Beta(a, b) and ln B(a, b) for a prior strength and floor (a strategy uses
   * one pair; a replay asks for it per host-round, and the log-gamma terms were most of the cost).
   */
  private priors(priorStrength: number, priorFloor: number): ClassPriors {
    const p = this.lastPriors;
    if (p !== null && p.strength === priorStrength && p.floor === priorFloor) return p;
    const n = this.classes.length;
    const next: ClassPriors = {
      strength: priorStrength,
      floor: priorFloor,
      a: new Float64Array(n),
      b: new Float64Array(n),
      lnB: new Float64Array(n),
    };
    this.classes.forEach((c, i) => {
      const m = Math.max(c.frequency, priorFloor);
      next.a[i] = priorStrength * m;
      next.b[i] = priorStrength * (1 - m);
      next.lnB[i] = logBeta(next.a[i]!, next.b[i]!);
    });
    this.lastPriors = next;
    return next;
  }

  /** Per class, the expected number of its ports whose prior draw beats `tau`. */
  private expectedPerClass(tau: number, priorStrength: number, priorFloor: number): Float64Array {
    const { a, b, lnB } = this.priors(priorStrength, priorFloor);
    const out = new Float64Array(this.classes.length);
    for (let i = 0; i < out.length; i++) out[i] = this.classes[i]!.size * betaTail(tau, a[i]!, b[i]!, lnB[i]!);
    return out;
  }

  /** Expected number of ports whose prior draw beats `tau`, for a prior of this strength. */
  expected(tau: number, priorStrength: number, priorFloor: number): number {
    let sum = 0;
    for (const x of this.expectedPerClass(tau, priorStrength, priorFloor)) sum += x;
    return sum;
  }

  /**
   * Ports outside the candidates whose prior draws beat `tau` (at most `max`), each passing
   * `accept` (probeable, not taken, not a candidate).
   */
  draw(tau: number, priorStrength: number, priorFloor: number, max: number, rng: Rng, accept: (port: number) => boolean): number[] {
    if (max <= 0) return [];
    const counts = Array.from(this.expectedPerClass(tau, priorStrength, priorFloor), (lambda) => samplePoisson(lambda, rng));
    let total = counts.reduce((a, b) => a + b, 0);
    if (total > max) {
      // More outside ports beat the bar than the cap allows: keep a uniform subset of them, so
      // every class keeps its share (sequential draws without replacement over the counts).
      const kept = new Array<number>(counts.length).fill(0);
      for (let n = 0; n < max; n++) {
        let r = rng.int(total);
        let i = 0;
        while (r >= counts[i]!) r -= counts[i++]!;
        counts[i]!--;
        kept[i]!++;
        total--;
      }
      counts.splice(0, counts.length, ...kept);
    }
    const out: number[] = [];
    this.classes.forEach((c, i) => {
      let k = counts[i]!;
      for (let tries = 0; k > 0 && tries < 8 * k + 16; tries++) {
        const port = c.ports ? c.ports[rng.int(c.size)]! : 1 + rng.int(MAX_PORT);
        if (c.ports === null && this.catalog.frequency(port) > 0) continue;
        if (!accept(port) || out.includes(port)) continue;
        out.push(port);
        k--;
      }
    });
    return out;
  }
}
