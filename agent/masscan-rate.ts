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

/** A change of rate, for the log. */
export interface RateChange {
  readonly from: number;
  readonly to: number;
  /** Ports known open and confirmed, and those masscan missed, in the evidence that decided. */
  readonly known: number;
  readonly missed: number;
}

export class MasscanRateControl {
  private rateNow: number;
  private generationNow = 0;
  private known = 0;
  private missed = 0;

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
    if (this.missed >= RATE_MIN_MISSES && this.missed >= RATE_MISS_SHARE * this.known) {
      return this.change(Math.max(this.floor, Math.floor(this.rate / 2)));
    }
    if (this.known >= RATE_CLEAN_SAMPLE) {
      // A clean sample raises the rate; one with a stray miss keeps it and starts a new sample.
      return this.change(this.missed === 0 ? Math.min(this.max, Math.ceil(this.rate * RATE_RAISE)) : this.rate);
    }
    return null;
  }

  private change(to: number): RateChange | null {
    const decided = { from: this.rate, to, known: this.known, missed: this.missed };
    this.known = 0;
    this.missed = 0;
    if (to === this.rateNow) return null;
    this.rateNow = to;
    this.generationNow++;
    return decided;
  }
}
