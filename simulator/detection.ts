import type { EpochsToDetect } from './types.js';

/** Histogram buckets of detection delays: exact up to HISTOGRAM_TOP - 1, then ">=HISTOGRAM_TOP". */
const HISTOGRAM_TOP = 4;

/** No service appeared: the summary of an empty tracker. */
export const EMPTY_DETECTION: EpochsToDetect = summarise([], 0, 0);

/** Pending values pack the appearance's tag set with its epoch: tagSet * EPOCH_SPAN + epoch. */
const EPOCH_SPAN = 2 ** 20;

/**
 * Tracks services that appear after epoch 0 and how many epochs pass until the strategy first
 * finds them, overall and per tag set of the host when the service appeared. Keys are
 * host * 65536 + port (exact in a double for any host count we can hold).
 */
export class DetectionTracker {
  private readonly pending = new Map<number, number>();
  private readonly pendingPerHost: Uint32Array;
  private readonly delays: number[] = [];
  private readonly delayTagSets: number[] = [];
  private appeared = 0;
  private vanishedCount = 0;
  private readonly appearedByTagSet: number[] = [];
  private readonly vanishedByTagSet: number[] = [];
  // Scratch: which ports were open in the host's previous observation.
  private readonly prevStamp = new Uint32Array(65536);
  private stamp = 0;

  constructor(hostCount: number) {
    this.pendingPerHost = new Uint32Array(hostCount);
  }

  /**
   * One non-pseudo host-epoch: `prev` / `cur` are the true open ports of the host's previous
   * and current observations (ascending; `prev` null when there is none or it was a pseudo
   * host), `isCurOpen` answers for the current truth, `found` is what the strategy found,
   * `tagSet` indexes the host's tags in this observation.
   */
  update(
    host: number,
    epoch: number,
    tagSet: number,
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
        if (this.pendingPerHost[host]! > 0 && !isCurOpen(p)) {
          const value = this.pending.get(base + p);
          if (value !== undefined) {
            this.pending.delete(base + p);
            this.pendingPerHost[host]!--;
            this.vanishedCount++;
            const ts = Math.floor(value / EPOCH_SPAN);
            this.vanishedByTagSet[ts] = (this.vanishedByTagSet[ts] ?? 0) + 1;
          }
        }
      }
      if (epoch > 0) {
        for (let k = curStart; k < curEnd; k++) {
          const p = ports[k]!;
          if (this.prevStamp[p] !== s && !this.pending.has(base + p)) {
            this.pending.set(base + p, tagSet * EPOCH_SPAN + epoch);
            this.pendingPerHost[host]!++;
            this.appeared++;
            this.appearedByTagSet[tagSet] = (this.appearedByTagSet[tagSet] ?? 0) + 1;
          }
        }
      }
    }
    if (this.pendingPerHost[host] === 0) return;
    for (const p of found) {
      const value = this.pending.get(base + p);
      if (value === undefined) continue;
      this.pending.delete(base + p);
      this.pendingPerHost[host]!--;
      this.delays.push(epoch - (value % EPOCH_SPAN));
      this.delayTagSets.push(Math.floor(value / EPOCH_SPAN));
    }
  }

  /** The summary over all hosts; services still pending are censored. */
  summary(): EpochsToDetect {
    return summarise(this.delays, this.appeared, this.vanishedCount);
  }

  /**
   * The summary per tag: a service counts under every tag its host carried when it appeared
   * (`tagsOf` maps a tag set to its tags, e.g. "(untagged)" for none). Keys sorted.
   */
  summaryByTag(
    tagSets: readonly (readonly string[])[],
    tagsOf: (tags: readonly string[]) => readonly string[],
  ): Record<string, EpochsToDetect> {
    const byTag = new Map<string, { delays: number[]; appeared: number; vanished: number }>();
    const entry = (tag: string) => {
      let e = byTag.get(tag);
      if (!e) byTag.set(tag, (e = { delays: [], appeared: 0, vanished: 0 }));
      return e;
    };
    this.appearedByTagSet.forEach((n, ts) => {
      for (const tag of tagsOf(tagSets[ts]!)) entry(tag).appeared += n;
    });
    this.vanishedByTagSet.forEach((n, ts) => {
      for (const tag of tagsOf(tagSets[ts]!)) entry(tag).vanished += n;
    });
    this.delays.forEach((d, i) => {
      for (const tag of tagsOf(tagSets[this.delayTagSets[i]!]!)) entry(tag).delays.push(d);
    });
    const out: Record<string, EpochsToDetect> = {};
    for (const tag of [...byTag.keys()].sort()) {
      const e = byTag.get(tag)!;
      out[tag] = summarise(e.delays, e.appeared, e.vanished);
    }
    return out;
  }
}

function summarise(d: readonly number[], appeared: number, vanished: number): EpochsToDetect {
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
    count: appeared,
    detected: n,
    censored: appeared - n,
    vanished,
    mean: n === 0 ? null : sum / n,
    median,
    histogram,
  };
}
