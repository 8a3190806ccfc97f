import { isPort } from '../src/core/index.js';
import type { CommonOptions, RoundContext } from './types.js';

// One scratch stamp table shared by all pickers: a fresh 64 KiB table per decision would churn
// gigabytes over a /16 replay. A picker takes a new stamp; a port is taken when its slot holds it.
const stamps = new Uint32Array(65536);
const excludedStamps = new Uint32Array(65536);
let generation = 0;

function nextGeneration(): number {
  generation++;
  if (generation === 0xffffffff) {
    stamps.fill(0);
    excludedStamps.fill(0);
    generation = 1;
  }
  return generation;
}

/**
 * Builds one decision's port list and enforces what every strategy promises: ports are
 * 1-65535, probeable, not excluded, not probed earlier this host-epoch, not repeated, and no
 * more than the remaining allowance. Must-have ports go first on round 0.
 * Strategies add candidates in priority order and read `ports` when done.
 */
export class PortPicker {
  readonly ports: number[] = [];
  private readonly gen: number;
  private limit: number;
  private readonly round: RoundContext;
  /** Every port is probeable (the common case): skip the range lookup. */
  private readonly all: boolean;

  constructor(round: RoundContext, options: CommonOptions, limit = round.remaining) {
    this.round = round;
    this.all = round.probeable.isAll;
    this.gen = nextGeneration();
    this.limit = Math.max(0, Math.min(limit, round.remaining));
    for (const p of round.probed) stamps[p] = this.gen;
    for (const p of options.exclude) excludedStamps[p] = this.gen;
    if (round.round === 0) this.addAll(options.mustHave);
  }

  get full(): boolean {
    return this.ports.length >= this.limit;
  }

  get room(): number {
    return this.limit - this.ports.length;
  }

  /** Change how many ports this decision may hold (never above the remaining allowance). */
  setLimit(limit: number): void {
    this.limit = Math.max(this.ports.length, Math.min(limit, this.round.remaining));
  }

  /** Whether `port` could still be added (valid, probeable, new, not excluded). */
  canTake(port: number): boolean {
    return isPort(port) && stamps[port] !== this.gen && excludedStamps[port] !== this.gen && (this.all || this.round.probeable.has(port));
  }

  /** Add one port if allowed and there is room; returns whether it was added. */
  add(port: number): boolean {
    if (this.ports.length >= this.limit || !this.canTake(port)) return false;
    stamps[port] = this.gen;
    this.ports.push(port);
    return true;
  }

  /** Add ports in order until full; returns how many were added. */
  addAll(ports: Iterable<number>): number {
    let n = 0;
    for (const p of ports) {
      if (this.ports.length >= this.limit) break;
      if (this.add(p)) n++;
    }
    return n;
  }

  /**
   * Fill the rest with every probeable port in ascending order (a sweep). `add`'s checks in one
   * loop: the ports come from the probeable ranges, so each is a port and probeable; a sweep adds
   * tens of thousands, and a call of `add` per port was most of a whole-port decision's cost.
   */
  addSweep(): number {
    const b = this.round.probeable.bounds;
    const ports = this.ports;
    const gen = this.gen;
    const start = ports.length;
    const room = Math.min(this.limit - start, this.round.probeable.size);
    if (room <= 0) return 0;
    // Grown once and cut back to what was taken: pushing 65,535 ports one by one grew (and
    // copied) the array ~30 times, nearly three times the cost of the loop itself.
    ports.length = start + room;
    let n = start;
    const last = start + room;
    for (let i = 0; i < b.length && n < last; i += 2) {
      const end = b[i + 1]!;
      for (let p = b[i]!; p <= end && n < last; p++) {
        if (stamps[p] === gen || excludedStamps[p] === gen) continue;
        stamps[p] = gen;
        ports[n++] = p;
      }
    }
    ports.length = n;
    return n - start;
  }
}
