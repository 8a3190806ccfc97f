import type { PortCatalog } from '../../src/catalog/index.js';
import type { Rng } from '../../src/core/rng.js';

// Cumulative open frequencies over catalog.byFrequency, built once per catalog.
const cumulative = new WeakMap<PortCatalog, Float64Array>();

function cumulativeOf(catalog: PortCatalog): Float64Array {
  let c = cumulative.get(catalog);
  if (!c) {
    c = new Float64Array(catalog.byFrequency.length);
    let sum = 0;
    for (let i = 0; i < c.length; i++) {
      sum += catalog.frequency(catalog.byFrequency[i]!);
      c[i] = sum;
    }
    cumulative.set(catalog, c);
  }
  return c;
}

/** A port drawn with probability proportional to nmap's open frequency (the exploration prior). */
export function samplePriorPort(catalog: PortCatalog, rng: Rng): number {
  const c = cumulativeOf(catalog);
  if (c.length === 0) return 1 + rng.int(65535);
  const x = rng.next() * c[c.length - 1]!;
  let lo = 0;
  let hi = c.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (c[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return catalog.byFrequency[lo]!;
}
