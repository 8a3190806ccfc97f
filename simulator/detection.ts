import type { EpochsToDetect } from './types.js';

/** Histogram buckets of detection delays: exact up to HISTOGRAM_TOP - 1, then ">=HISTOGRAM_TOP". */
const HISTOGRAM_TOP = 4;

/**
 * Tracks services that appear after epoch 0 and how many epochs pass until the strategy first
 * finds them. Keys are host * 65536 + port (exact in a double for any host count we can hold).
 */
export class DetectionTracker {
  private readonly pending = new Map<number, number>();
  private readonly pendingPerHost: Uint32Array;
  private readonly delays: number[] = [];
  private appeared = 0;
  private vanishedCount = 0;
  // Scratch: which ports were open in the host's previous observation.
  private readonly prevStamp = new Uint32Array(65536);
  private stamp = 0;

  constructor(hostCount: number) {
    this.pendingPerHost = new Uint32Array(hostCount);
  }

  /**
   * One non-pseudo host-epoch: `prev` / `cur` are the true open ports of the host's previous
   * and current observations (ascending; `prev` null when there is none or it was a pseudo
   * host), `isCurOpen` answers for the current truth, `found` is what the strategy found.
   */
  update(
    host: number,
    epoch: number,
    ports: Uint16Array,
    prevStart: number,
    prevEnd: number,
    hasPrev: boolean,
    curStart: number,
    curEnd: number,
    isCurOpen: (port: number) => boolean,
    found: readonly number[],
  ): void {
    const base = host * 65536;
    if (hasPrev) {
      if (++this.stamp === 0xffffffff) {
        this.prevStamp.fill(0);
        this.stamp = 1;
      }
      const s = this.stamp;
      for (let k = prevStart; k < prevEnd; k++) {
        const p = ports[k]!;
        this.prevStamp[p] = s;
        // Closed since last time: a service still waiting to be found will never be.
        if (this.pendingPerHost[host]! > 0 && !isCurOpen(p) && this.pending.delete(base + p)) {
          this.pendingPerHost[host]!--;
          this.vanishedCount++;
        }
      }
      if (epoch > 0) {
        for (let k = curStart; k < curEnd; k++) {
          const p = ports[k]!;
          if (this.prevStamp[p] !== s && !this.pending.has(base + p)) {
            this.pending.set(base + p, epoch);
            this.pendingPerHost[host]!++;
            this.appeared++;
          }
        }
      }
    }
    if (this.pendingPerHost[host] === 0) return;
    for (const p of found) {
      const since = this.pending.get(base + p);
      if (since === undefined) continue;
      this.pending.delete(base + p);
      this.pendingPerHost[host]!--;
      this.delays.push(epoch - since);
    }
  }

  /** The summary; services still pending are censored. */
  summary(): EpochsToDetect {
    const d = this.delays;
    const histogram: Record<string, number> = {};
    for (let i = 0; i < HISTOGRAM_TOP; i++) histogram[String(i)] = 0;
    histogram[`>=${HISTOGRAM_TOP}`] = 0;
    let sum = 0;
    for (const x of d) {
      sum += x;
      const key = x < HISTOGRAM_TOP ? String(x) : `>=${HISTOGRAM_TOP}`;
      histogram[key]!++;
    }
    const sorted = Float64Array.from(d).sort();
    const n = sorted.length;
    const median = n === 0 ? null : n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
    return {
      count: this.appeared,
      detected: n,
      censored: this.appeared - n,
      vanished: this.vanishedCount,
      mean: n === 0 ? null : sum / n,
      median,
      histogram,
    };
  }
}
