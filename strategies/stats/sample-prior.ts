import type { PortCatalog } from '../../src/catalog/index.js';
import type { Rng } from '../../src/core/index.js';

/**
 * A port drawn with probability proportional to nmap's open frequency (the exploration prior):
 * the catalog's one cumulative-frequency sampler (src/core/cumulative-sampler.ts), also used by
 * the synthetic generator; uniform over all ports when the catalog has no frequencies.
 */
export function samplePriorPort(catalog: PortCatalog, rng: Rng): number {
  const sampler = catalog.frequencySampler;
  if (sampler.size === 0) return 1 + rng.int(65535);
  return sampler.draw(rng);
}
