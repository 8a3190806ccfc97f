import type { PortCatalog } from '../../src/catalog/index.js';
import type { Rng } from '../../src/core/rng.js';
import type { PortPicker } from '../port-picker.js';
import type { PortStats } from '../stats/port-stats.js';

/**
 * Exploration draws from nmap's open-frequency prior restricted to ports the model has not
 * measured yet (fewer than `maxTrials` discounted scope-wide trials). The pool is rebuilt once
 * per epoch, not per host: a port measured during the epoch stays drawable until the next one,
 * which costs a few redundant probes and saves a rebuild per batch.
 */
export class ExplorationPool {
  private readonly catalog: PortCatalog;
  private readonly stats: PortStats;
  private readonly maxTrials: number;
  private builtFor = Number.NaN;
  private ports: Uint16Array = new Uint16Array(0);
  private cumulative: Float64Array = new Float64Array(0);

  constructor(catalog: PortCatalog, stats: PortStats, maxTrials: number) {
    this.catalog = catalog;
    this.stats = stats;
    this.maxTrials = maxTrials;
  }

  /** Ports in the pool (for explain and tests). */
  get size(): number {
    this.refresh();
    return this.ports.length;
  }

  /** Add up to `count` drawn ports to the picker; returns how many were added. */
  addTo(picker: PortPicker, count: number, rng: Rng): number {
    this.refresh();
    const n = this.ports.length;
    if (n === 0 || count <= 0) return 0;
    const total = this.cumulative[n - 1]!;
    let added = 0;
    // Rejections only come from ports this host cannot take (already chosen, excluded).
    for (let attempts = 0; added < count && !picker.full && attempts < 8 * count; attempts++) {
      const x = rng.next() * total;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.cumulative[mid]! > x) hi = mid;
        else lo = mid + 1;
      }
      if (picker.add(this.ports[lo]!)) added++;
    }
    return added;
  }

  private refresh(): void {
    const epoch = this.stats.epoch;
    if (epoch === this.builtFor) return;
    this.builtFor = epoch;
    const byFrequency = this.catalog.byFrequency;
    const ports: number[] = [];
    const weights: number[] = [];
    for (const port of byFrequency) {
      if (this.stats.counts(null, port).trials >= this.maxTrials) continue;
      ports.push(port);
      weights.push(this.catalog.frequency(port));
    }
    this.ports = Uint16Array.from(ports);
    this.cumulative = new Float64Array(ports.length);
    let sum = 0;
    for (let i = 0; i < ports.length; i++) this.cumulative[i] = sum += weights[i]!;
  }
}
