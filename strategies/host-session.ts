import { PortbanditError } from '../src/core/errors.js';
import { deriveRng } from '../src/core/rng.js';
import type { HostContext, HostResult, RoundContext, Strategy } from './types.js';

/** The serialisable progress of one host-epoch (the coordinator keeps it with a lease). */
export interface HostSessionState {
  readonly allowance: number;
  readonly round: number;
  readonly probed: readonly number[];
  readonly found: readonly number[];
  /** Ports handed out in the current round and not yet reported. */
  readonly pending: readonly number[];
  readonly done: boolean;
}

/**
 * Drives one host-epoch through a strategy: allowance, then rounds of select / report until the
 * strategy stops asking for follow-ups or the allowance is spent. The simulator runs it to the
 * end synchronously; the coordinator hands each round out as a work item and reports results
 * when they come back. Random streams derive from (seed, epoch, ip, round), so the choices do not
 * depend on which process runs the round or in what order hosts are visited.
 */
export class HostSession {
  readonly host: HostContext;
  private readonly strategy: Strategy;
  private readonly seed: string;
  private allowanceValue: number;
  private roundNo: number;
  private readonly probedList: number[];
  private readonly foundList: number[];
  private pending: number[];
  private finished: boolean;
  private wantsMore: boolean;

  constructor(strategy: Strategy, host: HostContext, seed: string, state?: HostSessionState) {
    this.strategy = strategy;
    this.host = host;
    this.seed = seed;
    if (state) {
      this.allowanceValue = state.allowance;
      this.roundNo = state.round;
      this.probedList = [...state.probed];
      this.foundList = [...state.found];
      this.pending = [...state.pending];
      this.finished = state.done;
      this.wantsMore = !state.done;
    } else {
      const rng = deriveRng(seed, host.epoch, host.ip, 'allowance');
      const cap = Math.min(strategy.options.maxPerHost, host.probeable.size);
      this.allowanceValue = Math.max(0, Math.min(cap, Math.floor(strategy.allowance(host, rng))));
      this.roundNo = 0;
      this.probedList = [];
      this.foundList = [];
      this.pending = [];
      this.finished = false;
      this.wantsMore = true;
    }
  }

  get allowance(): number {
    return this.allowanceValue;
  }

  get done(): boolean {
    return this.finished;
  }

  /**
   * The next ports to probe, or null when the host-epoch is finished. Calling it again before
   * `report` returns the same pending ports.
   */
  next(): number[] | null {
    if (this.pending.length > 0) return [...this.pending];
    if (this.finished) return null;
    const remaining = this.allowanceValue - this.probedList.length;
    if (!this.wantsMore || remaining <= 0) {
      this.finished = true;
      return null;
    }
    const round: RoundContext = {
      ...this.host,
      round: this.roundNo,
      probed: this.probedList,
      found: this.foundList,
      remaining,
    };
    const decision = this.strategy.select(round, deriveRng(this.seed, this.host.epoch, this.host.ip, this.roundNo));
    if (decision.ports.length > remaining) {
      throw new PortbanditError(
        'PB_ERR_STRATEGY_OPTION',
        `strategy ${this.strategy.name} chose ${decision.ports.length} ports with ${remaining} remaining for ${this.host.ip}`,
      );
    }
    this.wantsMore = decision.followUp;
    if (decision.ports.length === 0) {
      this.finished = true;
      return null;
    }
    this.pending = decision.ports;
    return [...this.pending];
  }

  /**
   * Report which of the pending ports were found open. Ports not pending are ignored (a scanner
   * never gets to report on ports it was not given).
   */
  report(open: Iterable<number>): void {
    if (this.pending.length === 0) return;
    const pendingSet = new Set(this.pending);
    const newlyOpen: number[] = [];
    for (const p of open) if (pendingSet.has(p)) newlyOpen.push(p);
    for (const p of this.pending) this.probedList.push(p);
    if (newlyOpen.length > 0) {
      const merged = new Set(this.foundList);
      for (const p of newlyOpen) merged.add(p);
      this.foundList.length = 0;
      this.foundList.push(...[...merged].sort((a, b) => a - b));
    }
    this.pending = [];
    this.roundNo++;
  }

  /** Finish early (for example the agent lost the host); nothing more will be handed out. */
  abandon(): void {
    this.pending = [];
    this.finished = true;
  }

  /** The outcome to feed to `observe` once the session is done. */
  result(): HostResult {
    const h = this.host;
    return {
      ip: h.ip,
      tags: h.tags,
      prefix: h.prefix,
      epoch: h.epoch,
      probed: this.probedList,
      open: this.foundList,
      previousOpen: h.previousOpen,
      sweep: this.allowanceValue >= h.probeable.size && this.probedList.length >= h.probeable.size,
    };
  }

  toJSON(): HostSessionState {
    return {
      allowance: this.allowanceValue,
      round: this.roundNo,
      probed: [...this.probedList],
      found: [...this.foundList],
      pending: [...this.pending],
      done: this.finished,
    };
  }
}

/**
 * Run a host-epoch to the end against a known truth (the simulator's case): `isOpen` answers
 * for each probed port. Returns the session's result.
 */
export function runHostSession(session: HostSession, isOpen: (port: number) => boolean): HostResult {
  for (let ports = session.next(); ports !== null; ports = session.next()) {
    session.report(ports.filter(isOpen));
  }
  return session.result();
}
