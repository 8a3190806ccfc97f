import { PortbanditError, deriveRng, type Rng } from '../src/core/index.js';
import type { HostContext, HostResult, RoundContext, Strategy } from './types.js';

/**
 * An RNG derived on first use: seeding costs more than most stateless decisions, and a /16
 * replay makes two per host-epoch. The stream is exactly deriveRng(seed, ...parts).
 */
class LazyRng implements Rng {
  private rng: Rng | undefined;
  constructor(
    private readonly seed: string,
    private readonly epoch: number,
    private readonly ip: string,
    private readonly part: string | number,
  ) {}
  next(): number {
    return (this.rng ??= deriveRng(this.seed, this.epoch, this.ip, this.part)).next();
  }
  int(n: number): number {
    return (this.rng ??= deriveRng(this.seed, this.epoch, this.ip, this.part)).int(n);
  }
}

/** The number of fields of HostContext (ip, tags, prefix, epoch, previousOpen, previousEpoch, probeable). */
const HOST_CONTEXT_FIELDS = 7;

// Scratch stamp table marking the pending ports while a report is matched against them
// (a Set per report would churn the allocator over a /16 replay).
const pendingStamps = new Uint32Array(65536);
let pendingGeneration = 0;

function nextPendingGeneration(): number {
  if (++pendingGeneration === 0xffffffff) {
    pendingStamps.fill(0);
    pendingGeneration = 1;
  }
  return pendingGeneration;
}

/**
 * A visit's first look: when a strategy's first decision holds at least `splitAt` ports (a budget
 * that funds the whole port space on a small scope gives every host all 65,535), its first
 * `ports` (the host's ports open at its last visit, then the strategy's own priority order) are
 * handed out alone and the rest as the next round. Scanned alone, they come back in seconds instead of after the whole sweep (at 10,000
 * packets/s a /27's 65,535-port sweep is ~7 minutes), and the services they find are stored, and
 * their -sV time-outs run, while the rest is swept. Only the rounds change: the strategy decides
 * once, sees the same contexts, and the visit probes and learns exactly what it did unsplit.
 */
export const FIRST_LOOK = { splitAt: 8192, ports: 1000 } as const;

/** Move `list`'s ports stamped `gen` (pending, not taken yet) to `out`, in order, until it holds `size`. */
function takePending(list: readonly number[], gen: number, size: number, out: number[]): void {
  for (let i = 0; i < list.length && out.length < size; i++) {
    const p = list[i]!;
    if (pendingStamps[p] !== gen) continue;
    pendingStamps[p] = 0;
    out.push(p);
  }
}

/** The serialisable progress of one host-epoch (the coordinator keeps it with a lease). */
export interface HostSessionState {
  readonly allowance: number;
  /** Rounds handed out and reported (a decision split by FIRST_LOOK makes two). */
  readonly round: number;
  readonly probed: readonly number[];
  readonly found: readonly number[];
  /** Ports handed out in the current round and not yet reported. */
  readonly pending: readonly number[];
  readonly done: boolean;
  /** Probed ports whose state the scanner could not observe (left out of the result). */
  readonly unknown?: readonly number[];
  /** The rest of a decision split by FIRST_LOOK, handed out as the next round. */
  readonly deferred?: readonly number[];
  /** Rounds that were the rest of a split decision (the strategy's round is `round - split`); absent: 0. */
  readonly split?: number;
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
  private probedList: number[];
  private readonly foundList: number[];
  private pending: number[];
  private unknownList: number[];
  private deferred: number[];
  /** Rounds made by splitting a decision (FIRST_LOOK): the strategy sees round `roundNo - split`. */
  private split: number;
  private finished: boolean;
  private wantsMore: boolean;
  private readonly plainHost: boolean;

  /** How a large first decision is split (FIRST_LOOK; null: never), the same in every process. */
  private readonly firstLook: { readonly splitAt: number; readonly ports: number } | null;

  constructor(
    strategy: Strategy,
    host: HostContext,
    seed: string,
    state?: HostSessionState,
    firstLook: { readonly splitAt: number; readonly ports: number } | null = FIRST_LOOK,
  ) {
    this.strategy = strategy;
    this.firstLook = firstLook;
    this.host = host;
    this.plainHost = Object.keys(host).length === HOST_CONTEXT_FIELDS;
    this.seed = seed;
    if (state) {
      this.allowanceValue = state.allowance;
      this.roundNo = state.round;
      this.probedList = [...state.probed];
      this.foundList = [...state.found];
      // Taken as they are: the session replaces its pending and deferred lists, never changes
      // one in place (a whole-port round's lists hold 65,535 ports; see toJSON).
      this.pending = state.pending as number[];
      this.unknownList = [...(state.unknown ?? [])];
      this.deferred = (state.deferred ?? []) as number[];
      this.split = state.split ?? 0;
      this.finished = state.done;
      this.wantsMore = !state.done;
    } else {
      const rng = new LazyRng(seed, host.epoch, host.ip, 'allowance');
      const cap = Math.min(strategy.options.maxPerHost, host.probeable.size);
      // Liveness (silent hosts a floor, never-visited hosts a first look) is the learners' own
      // discovery layer (strategies/discovery), so it keeps their average at the budget.
      this.allowanceValue = Math.max(0, Math.min(cap, Math.floor(strategy.allowance(host, rng))));
      this.roundNo = 0;
      this.probedList = [];
      this.foundList = [];
      this.pending = [];
      this.unknownList = [];
      this.deferred = [];
      this.split = 0;
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

  /** The rest of a split first decision is still to come (a round of its own, no new decision). */
  get hasDeferredRest(): boolean {
    return this.deferred.length > 0;
  }

  /**
   * The next ports to probe, or null when the host-epoch is finished. Calling it again before
   * `report` returns the same pending ports.
   */
  next(): number[] | null {
    const ports = this.decide();
    return ports === null ? null : [...ports];
  }

  /**
   * `next` without the copy, for a caller that only reads the ports (the coordinator: a
   * whole-port round holds 65,535 of them). The list must not be changed.
   */
  nextPorts(): readonly number[] | null {
    return this.decide();
  }

  /** `next` without the defensive copy: the pending array itself (internal fast path). */
  private decide(): number[] | null {
    if (this.pending.length > 0) return this.pending;
    if (this.finished) return null;
    if (this.deferred.length > 0) {
      // The rest of a split first decision: no new decision, the strategy sees it as one round.
      this.pending = this.deferred;
      this.deferred = [];
      return this.pending;
    }
    // Every part of a split decision is reported by now: the strategy's rounds are the decisions.
    const decisions = this.roundNo - this.split;
    if (decisions > 0 && this.wantsMore && this.strategy.followUpAllowance !== undefined) {
      // A capped first look that answered may get more for its follow-up rounds (deterministic,
      // so asking again after a restore gives the same allowance).
      const cap = Math.min(this.strategy.options.maxPerHost, this.host.probeable.size);
      const raised = this.strategy.followUpAllowance(
        this.host,
        this.foundList,
        this.allowanceValue,
        new LazyRng(this.seed, this.host.epoch, this.host.ip, 'follow-up allowance'),
      );
      this.allowanceValue = Math.max(this.allowanceValue, Math.min(cap, Math.floor(raised)));
    }
    const remaining = this.allowanceValue - this.probedList.length;
    if (!this.wantsMore || remaining <= 0) {
      this.finished = true;
      return null;
    }
    const h = this.host;
    // Spreading the host costs a third of a stateless replay; copy the contract's fields
    // by name unless the caller's host carries extra ones.
    const round: RoundContext = this.plainHost
      ? {
          ip: h.ip,
          tags: h.tags,
          prefix: h.prefix,
          epoch: h.epoch,
          previousOpen: h.previousOpen,
          previousEpoch: h.previousEpoch,
          probeable: h.probeable,
          round: decisions,
          probed: this.probedList,
          found: this.foundList,
          remaining,
        }
      : { ...h, round: decisions, probed: this.probedList, found: this.foundList, remaining };
    const decision = this.strategy.select(round, new LazyRng(this.seed, this.host.epoch, this.host.ip, decisions));
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
    const look = this.firstLook;
    if (decisions === 0 && look !== null && decision.ports.length >= look.splitAt && look.ports < decision.ports.length) {
      this.splitFirstLook(round, decision.ports, look.ports);
      this.split++;
    } else this.pending = decision.ports;
    return this.pending;
  }

  /**
   * Split a large first decision: the ports the host had open at its last visit, then those the
   * strategy would choose for a first look of `size` (its ranking, asked again with that budget;
   * a sweep's own order is ascending, and a strategy that keeps that budget for discovery
   * returns nothing), then the decision's own order, make the pending round; the rest of the
   * decision is deferred. So a host's known services come back in its first round.
   */
  private splitFirstLook(round: RoundContext, ports: readonly number[], size: number): void {
    const head = this.strategy.select(
      { ...round, remaining: size, peek: true },
      new LazyRng(this.seed, this.host.epoch, this.host.ip, 'first look'),
    ).ports;
    const gen = nextPendingGeneration();
    for (let i = 0; i < ports.length; i++) pendingStamps[ports[i]!] = gen;
    const first: number[] = [];
    // Each list in turn adds its ports still pending (not taken yet), up to `size`.
    takePending(this.host.previousOpen, gen, size, first);
    takePending(head, gen, size, first);
    takePending(ports, gen, size, first);
    // The rest keeps the decision's order: tens of thousands of ports on a whole-port visit, so
    // the list is sized once (at most every port not taken) and cut back, not grown by pushes.
    const rest: number[] = [];
    rest.length = Math.max(0, ports.length - first.length);
    let n = 0;
    for (let i = 0; i < ports.length && n < rest.length; i++) {
      const p = ports[i]!;
      if (pendingStamps[p] === gen) rest[n++] = p;
    }
    rest.length = n;
    this.pending = first;
    this.deferred = rest;
  }

  /**
   * Drive the session to the end against a known truth (the simulator's case) without the
   * copies `next` makes to protect the caller.
   */
  runToEnd(isOpen: (port: number) => boolean): HostResult {
    for (let ports = this.decide(); ports !== null; ports = this.decide()) {
      let open: number[] | null = null;
      for (const p of ports) if (isOpen(p)) (open ??= []).push(p);
      this.accept(open);
    }
    return this.result();
  }

  /**
   * Report which of the pending ports were found open. Ports not pending are ignored (a scanner
   * never gets to report on ports it was not given).
   */
  report(open: Iterable<number>, unknown?: Iterable<number>): void {
    if (this.pending.length === 0) return;
    if (unknown !== undefined) {
      // Not observed (a time-out, a failed scanner): probed, so not chosen again this visit, but
      // left out of the result so the model learns nothing about them.
      const pending = new Set(this.pending);
      for (const p of unknown) if (pending.has(p)) this.unknownList.push(p);
    }
    const gen = nextPendingGeneration();
    for (const p of this.pending) pendingStamps[p] = gen;
    let newlyOpen: number[] | null = null;
    for (const p of open) {
      if (pendingStamps[p] !== gen) continue;
      pendingStamps[p] = 0; // a port reported twice counts once
      (newlyOpen ??= []).push(p);
    }
    this.accept(newlyOpen);
  }

  /** Record the pending round as probed, with `newlyOpen` (a subset of it, no repeats) found open. */
  private accept(newlyOpen: readonly number[] | null): void {
    // Most host-epochs have one round: take the round's ports in one copy instead of pushes.
    if (this.probedList.length === 0) this.probedList = this.pending.slice();
    else for (const p of this.pending) this.probedList.push(p);
    if (newlyOpen !== null && newlyOpen.length > 0) {
      // A strategy that bypasses the picker may repeat a port: keep the found list a set.
      const gen = nextPendingGeneration();
      for (const p of this.foundList) pendingStamps[p] = gen;
      const before = this.foundList.length;
      for (const p of newlyOpen) {
        if (pendingStamps[p] === gen) continue;
        pendingStamps[p] = gen;
        this.foundList.push(p);
      }
      if (this.foundList.length > before) this.foundList.sort((a, b) => a - b);
    }
    this.pending = [];
    this.roundNo++;
  }

  /** Finish early (for example the agent lost the host); nothing more will be handed out. */
  abandon(): void {
    this.pending = [];
    this.deferred = [];
    this.finished = true;
  }

  /** The outcome to feed to `observe` once the session is done. */
  result(): HostResult {
    const h = this.host;
    let probed = this.probedList;
    if (this.unknownList.length > 0) {
      const unknown = new Set(this.unknownList);
      probed = probed.filter((p) => !unknown.has(p));
    }
    return {
      ip: h.ip,
      tags: h.tags,
      prefix: h.prefix,
      epoch: h.epoch,
      probed,
      open: this.foundList,
      previousOpen: h.previousOpen,
      sweep: this.allowanceValue >= h.probeable.size && this.probedList.length >= h.probeable.size,
    };
  }

  /**
   * The session's progress. The pending and deferred lists are the session's own, not copies:
   * it replaces them and never changes one in place, so the state stays as it was taken (a
   * whole-port visit's deferred rest holds 64,535 ports). Callers must not change them either.
   */
  toJSON(): HostSessionState {
    return {
      allowance: this.allowanceValue,
      round: this.roundNo,
      probed: [...this.probedList],
      found: [...this.foundList],
      pending: this.pending,
      done: this.finished,
      ...(this.unknownList.length > 0 ? { unknown: [...this.unknownList] } : {}),
      ...(this.deferred.length > 0 ? { deferred: this.deferred } : {}),
      ...(this.split > 0 ? { split: this.split } : {}),
    };
  }
}

/**
 * Run a host-epoch to the end against a known truth (the simulator's case): `isOpen` answers
 * for each probed port. Returns the session's result.
 */
export function runHostSession(session: HostSession, isOpen: (port: number) => boolean): HostResult {
  return session.runToEnd(isOpen);
}
