import type { PortCatalog } from '../../src/catalog/index.js';
import type { Rng } from '../../src/core/rng.js';

/** Draws ports in proportion to nmap's open frequencies (the popularity of "ordinary" services). */
export class FrequencySampler {
  private readonly ports: Uint16Array;
  /** cumulative[i] = sum of the frequencies of ports[0..i]. */
  private readonly cumulative: Float64Array;
  private readonly total: number;

  constructor(catalog: PortCatalog) {
    this.ports = catalog.byFrequency;
    this.cumulative = new Float64Array(this.ports.length);
    let s = 0;
    for (let i = 0; i < this.ports.length; i++) {
      s += catalog.frequency(this.ports[i]!);
      this.cumulative[i] = s;
    }
    this.total = s;
  }

  /** One port, with probability frequency / total. */
  draw(rng: Rng): number {
    const u = rng.next() * this.total;
    const c = this.cumulative;
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return this.ports[lo]!;
  }
}

const samplers = new WeakMap<PortCatalog, FrequencySampler>();

/** The (cached) sampler for a catalog. */
export function frequencySampler(catalog: PortCatalog): FrequencySampler {
  let s = samplers.get(catalog);
  if (!s) samplers.set(catalog, (s = new FrequencySampler(catalog)));
  return s;
}

/** Index drawn from unnormalised weights. */
export function drawWeighted(weights: readonly number[], rng: Rng): number {
  let total = 0;
  for (const w of weights) total += w;
  let u = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0) return i;
  }
  return weights.length - 1;
}

/** Uniform integer in [min, max], inclusive. */
export function drawBetween(min: number, max: number, rng: Rng): number {
  return min + rng.int(max - min + 1);
}
