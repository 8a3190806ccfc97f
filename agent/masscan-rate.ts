/**
 * masscan's --rate, adjusted to what the path delivers. masscan never learns that packets were
 * lost: a probe or its answer dropped on the way (a saturated link, a router's or the scanning
 * machine's own queue) is a port it reports as nothing, and the agent would report it closed.
 * The agent has a measure, though: the ports a host had open at its last visit (`verify`) that
 * nmap or a connect confirm open now. Those masscan did not see were lost. When a run misses a
 * share of them the agent halves the rate of its next runs; while runs miss none it raises the
 * rate again by a quarter, up to --rate (additive increase would take hours from a floor of
 * 1,000 to 100,000 packets/s; TCP's slow start is the same trade).
 *
 * Evidence counts only for the rate it was measured at: runs started before a change report
 * for the old rate and are ignored (their generation is stale).
 *
 * Not every miss is the rate's: a host that drops some SYNs whatever the rate, a firewall that
 * answers only now and then, a CPU-starved machine. Halving cures lost packets: where a queue or
 * link delivers C packets/s, a run at R > C loses a share s = 1 - C / R of its probes, and at R / 2
 * the share falls to max(0, 2s - 1), by min(s, 1 - s). So a halving after which the miss share
 * fell by less than half that (RATE_NO_BETTER) says the misses are not the rate's: the rate goes
 * back to what it was, and the share becomes the baseline: from then on only misses twice as
 * frequent halve the rate. A clean sample (no miss) clears the baseline. Without this, a cause no
 * rate cures would walk the rate down to the floor, one halving per sample. A host masscan saw
 * nothing of at all counts here too (agent/masscan-blind.ts sends its ports to the connect sweep):
 * lost packets leave a host with a port or two unseen just as a firewall does, and leaving such
 * hosts out would bias the miss share low exactly when the rate is too high. A firewall's misses
 * then cost one halving at most, which the next clean samples (those hosts swept by connect) undo.
 */

/** Misses that halve the rate: at least this many known-open ports missed ... */
export const RATE_MIN_MISSES = 2;
/** ... and at least this share of those confirmed open (masscan sends each probe retries + 1 times). */
export const RATE_MISS_SHARE = 0.05;
/** Known-open ports confirmed, none missed, before the rate rises by RATE_RAISE. */
export const RATE_CLEAN_SAMPLE = 50;
export const RATE_RAISE = 1.25;
/** The rate never goes below this (or --rate, when that is lower). */
export const RATE_FLOOR = 1000;
/** A halving helped when the miss share fell by at least this fraction of what lost packets predict (see above). */
export const RATE_NO_BETTER = 0.5;

/** A change of rate, for the log. */
export interface RateChange {
  readonly from: number;
  readonly to: number;
  /** Ports known open and confirmed, and those masscan missed, in the evidence that decided. */
  readonly known: number;
  readonly missed: number;
  /** The rate goes back up because halving it did not reduce the misses (they are not the rate's): the sample that halved it. */
  readonly notTheRate?: { readonly known: number; readonly missed: number };
}

export class MasscanRateControl {
  private rateNow: number;
  private generationNow = 0;
  private known = 0;
  private missed = 0;
  /** The last halving, while its effect is being measured: the rate before it and the sample that decided it. */
  private lastCut: { readonly from: number; readonly known: number; readonly missed: number } | null = null;
  /** Misses measured not to be the rate's (a share of the known-open ports); 0 until a halving did not help. */
  private baseline = 0;

  constructor(
    /** --rate: the most the operator allows. */
    readonly max: number,
    readonly floor = Math.min(max, RATE_FLOOR),
  ) {
    this.rateNow = max;
  }

  /** The rate for the next runs (packets/s). */
  get rate(): number {
    return this.rateNow;
  }

  /** Changes with every change of rate: runs carry the generation they were sent at. */
  get generation(): number {
    return this.generationNow;
  }

  /**
   * One host's evidence from a run sent at `generation`: `known` ports open at the last visit and
   * confirmed open now, `missed` of them not seen by masscan. Returns the change it caused, or null.
   */
  observe(generation: number, known: number, missed: number): RateChange | null {
    if (generation !== this.generation || known <= 0) return null;
    this.known += known;
    this.missed += Math.min(missed, known);
    const share = this.missed / this.known;
    if (this.missed >= RATE_MIN_MISSES && share >= Math.max(RATE_MISS_SHARE, 2 * this.baseline)) {
      const cut = this.lastCut;
      // Judged on a sample as large as the smallest that can halve (2 misses at 5%): a couple of
      // misses among a few ports right after a halving says little either way.
      if (cut !== null && this.known < RATE_MIN_MISSES / RATE_MISS_SHARE) return null;
      const before = cut === null ? 0 : cut.missed / cut.known;
      if (cut !== null && before - share < RATE_NO_BETTER * Math.min(before, 1 - before)) {
        // Halving did not help: the misses are not the rate's. Back to the rate before it.
        this.lastCut = null;
        this.baseline = Math.max(this.baseline, Math.min(share, before));
        return this.change(cut.from, { known: cut.known, missed: cut.missed });
      }
      const to = Math.max(this.floor, Math.floor(this.rate / 2));
      this.lastCut = to < this.rate ? { from: this.rate, known: this.known, missed: this.missed } : null;
      return this.change(to);
    }
    if (this.known >= RATE_CLEAN_SAMPLE) {
      // A sample below the bar: the last halving (if any) helped. A clean one raises the rate and
      // clears the baseline; one with stray misses keeps the rate and starts a new sample.
      this.lastCut = null;
      if (this.missed === 0) this.baseline = 0;
      return this.change(this.missed === 0 ? Math.min(this.max, Math.ceil(this.rate * RATE_RAISE)) : this.rate);
    }
    return null;
  }

  private change(to: number, notTheRate?: RateChange['notTheRate']): RateChange | null {
    const decided: RateChange = { from: this.rate, to, known: this.known, missed: this.missed, ...(notTheRate ? { notTheRate } : {}) };
    this.known = 0;
    this.missed = 0;
    if (to === this.rateNow) return null;
    this.rateNow = to;
    this.generationNow++;
    return decided;
  }
}
