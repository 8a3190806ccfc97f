import type { AddressSpace } from './address-space.js';
import type { Learner } from './learner.js';
import type { PolicyBook } from './policy-book.js';

/** Per tag of the scope: hosts handed out and scanned this cycle, and the fraction scanned. */
export interface CycleCoverageRow {
  readonly tag: string;
  readonly handedOut: number;
  readonly scanned: number;
  /** Visits of this cycle with no round left to scan (scanned counts a visit at its first round). */
  readonly finished: number;
  readonly addresses: string;
  readonly fraction: number;
}

/**
 * Cycle coverage as this process counts it: hosts handed out (round 0) and scanned per tag ("" =
 * untagged) in the cycle being counted. Counting starts over when a later cycle begins. A
 * coordinator that starts in the middle of a cycle resumes from the store (`resume`): without it
 * a restart showed 0% scanned with the cycle's every address handed out.
 */
export class CycleCoverage {
  private readonly scans = new Map<string, number>();
  private readonly handed = new Map<string, number>();
  private readonly done = new Map<string, number>();
  private doneTotal = 0;
  private counting = 0;

  /** The cycle being counted (0 before the first hand-out). */
  get cycle(): number {
    return this.counting;
  }

  /** Count for `cycle` from now on; true (and the tallies emptied) when it is not the one counted. */
  begin(cycle: number): boolean {
    if (cycle === this.counting) return false;
    this.scans.clear();
    this.handed.clear();
    this.done.clear();
    this.doneTotal = 0;
    this.counting = cycle;
    return true;
  }

  /** Visits of the counted cycle finished (their last round stored), over every tag. */
  get finishedTotal(): number {
    return this.doneTotal;
  }

  /**
   * Count `cycle` from the hosts already scanned in it per tag (from the store: their latest visit
   * finished since the cycle started). Those are also counted as handed out; the visits a previous
   * process left in flight are not, so `report` never shows fewer handed out than scanned. Of
   * those, the visits with a later round in flight or queued (`pending`, per tag, and `pendingTotal`
   * of `scannedTotal` over every tag) are not finished; the others are.
   */
  resume(
    cycle: number,
    scanned: ReadonlyMap<string, number>,
    pending: ReadonlyMap<string, number> = new Map(),
    totals?: { readonly scanned: number; readonly pending: number },
  ): void {
    this.begin(cycle);
    for (const [tag, n] of scanned) {
      this.scans.set(tag, n);
      this.handed.set(tag, n);
      this.done.set(tag, Math.max(0, n - (pending.get(tag) ?? 0)));
    }
    if (totals !== undefined) this.doneTotal = Math.max(0, totals.scanned - totals.pending);
  }

  /** A host with these tags was handed out by the counted cycle. */
  handedOut(tags: readonly string[]): void {
    for (const t of tags.length > 0 ? tags : ['']) this.handed.set(t, (this.handed.get(t) ?? 0) + 1);
  }

  /** A host with these tags was scanned (its first round's result stored) in the counted cycle. */
  scanned(tags: readonly string[]): void {
    for (const t of tags.length > 0 ? tags : ['']) this.scans.set(t, (this.scans.get(t) ?? 0) + 1);
  }

  /** A visit of a host with these tags, of the counted cycle, has no round left (stored, learned or given up). */
  finished(tags: readonly string[]): void {
    for (const t of tags.length > 0 ? tags : ['']) this.done.set(t, (this.done.get(t) ?? 0) + 1);
    this.doneTotal++;
  }

  /** One row per tag of `space`, with the tag's address count. */
  report(space: AddressSpace): CycleCoverageRow[] {
    const sizes = space.sizeByTag();
    return [...sizes].map(([tag, size]) => {
      const scanned = this.scans.get(tag) ?? 0;
      return {
        tag,
        handedOut: Math.max(this.handed.get(tag) ?? 0, scanned),
        scanned,
        finished: Math.min(this.done.get(tag) ?? 0, scanned),
        addresses: String(size),
        fraction: size === 0n ? 0 : Math.min(1, scanned / Number(size)),
      };
    });
  }
}

/**
 * Cycle coverage as the store says it, for several coordinators on one store (each process's own
 * tally sees only the hosts it handed out and the rounds submitted to it). Per tag of `space`:
 * `scanned`, the hosts whose latest visit finished since the cycle began; `pending`, those of
 * them with a later round in flight or queued (not finished); `inFlight`, first rounds of the
 * cycle leased and not stored yet (handed out, not scanned).
 */
export function storedCoverageRows(
  space: AddressSpace,
  counts: {
    readonly scanned: ReadonlyMap<string, number>;
    readonly pending: ReadonlyMap<string, number>;
    readonly inFlight: ReadonlyMap<string, number>;
  },
): CycleCoverageRow[] {
  return [...space.sizeByTag()].map(([tag, size]) => {
    const scanned = counts.scanned.get(tag) ?? 0;
    return {
      tag,
      handedOut: scanned + (counts.inFlight.get(tag) ?? 0),
      scanned,
      finished: Math.max(0, scanned - (counts.pending.get(tag) ?? 0)),
      addresses: String(size),
      fraction: size === 0n ? 0 : Math.min(1, scanned / Number(size)),
    };
  });
}

/**
 * The strategy's OWN belief, not a measurement: the share of the open-port mass it estimates
 * (over its top 1,000 ports, from what it has seen) that fits within the budget. It cannot
 * count ports it has never seen open, so it overstates coverage where discovery is unfunded
 * (`budgets()` warns there).
 */
export function estimateCoverage(learner: Learner, policies: Pick<PolicyBook, 'policy'>): Array<{ tag: string; estimate: number }> {
  return learner.keys().map((key) => {
    const policy = policies.policy(key)!;
    const top = learner.explain(key, 1000).explanation.groups.flatMap((g) => g.top);
    const byPort = new Map<number, number>();
    for (const p of top) byPort.set(p.port, Math.max(byPort.get(p.port) ?? 0, p.estimate));
    const est = [...byPort.values()].sort((a, b) => b - a);
    const total = est.reduce((a, b) => a + b, 0);
    const inBudget = est.slice(0, Math.floor(policy.budget)).reduce((a, b) => a + b, 0);
    return { tag: key, estimate: total > 0 ? inBudget / total : 0 };
  });
}
