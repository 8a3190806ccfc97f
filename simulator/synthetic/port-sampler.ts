import type { PortCatalog } from '../../src/catalog/index.js';
import type { CumulativeSampler, Rng } from '../../src/core/index.js';

/** Draws ports in proportion to nmap's open frequencies: the catalog's shared sampler (src/core/cumulative-sampler.ts). */
export type FrequencySampler = CumulativeSampler;

/** The (cached) sampler for a catalog. */
export function frequencySampler(catalog: PortCatalog): FrequencySampler {
  return catalog.frequencySampler;
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
