import type { PortCatalog } from '../src/catalog/index.js';
import type { PortRanges, Rng } from '../src/core/index.js';

/**
 * The strategy contract. One interface serves the coordinator (online, async, results arrive
 * late in batches) and the simulator (offline replay): neither has its own copy of any
 * algorithm. A host-epoch is driven by a HostSession (strategies/host-session.ts):
 *
 *   allowance = strategy.allowance(host, rng)        // once per host-epoch
 *   loop: decision = strategy.select(round, rng)     // ports to probe now
 *         ... probe them, learn which are open ...
 *         until !decision.followUp or the allowance is spent
 *   later, in batches: strategy.observe(results)     // learn
 */

/** What is known about a host when deciding which of its ports to probe. */
export interface HostContext {
  readonly ip: string;
  readonly tags: readonly string[];
  /** The host's network prefix as context: IPv4 /24 ("198.18.0.0/24"), IPv6 /64. */
  readonly prefix: string;
  readonly epoch: number;
  /**
   * Ports found open on this host the last time it was scanned (what the scanner saw, never
   * ground truth), sorted ascending; empty when never scanned.
   */
  readonly previousOpen: readonly number[];
  /** Epoch of `previousOpen`, or -1 when the host was never scanned. */
  readonly previousEpoch: number;
  /** Ports that may be probed on this host: a recording's `probed`; all ports in production. */
  readonly probeable: PortRanges;
}

/** One decision inside a host-epoch. */
export interface RoundContext extends HostContext {
  /** 0 for the first decision of the host-epoch, then 1, 2, ... for follow-ups. */
  readonly round: number;
  /** Ports already probed on this host in this epoch (earlier rounds), in probe order. */
  readonly probed: readonly number[];
  /** Ports found open among `probed`, ascending. */
  readonly found: readonly number[];
  /** Probes this host may still use this epoch (allowance minus probed.length). */
  readonly remaining: number;
  /**
   * True when the answer only orders ports and is not handed out (the host session's first look
   * re-asks a large decision for its head): a strategy must not count it as probes handed out,
   * so that splitting a decision changes nothing the strategy learns or decides later.
   */
  readonly peek?: boolean;
}

export interface Decision {
  /** Ports to probe now, in priority order. */
  readonly ports: number[];
  /** True when the strategy wants another round after seeing these results. */
  readonly followUp: boolean;
}

/** The outcome of one host-epoch, fed back to `observe`. */
export interface HostResult {
  readonly ip: string;
  readonly tags: readonly string[];
  readonly prefix: string;
  readonly epoch: number;
  /** Every port probed on the host this epoch (all rounds). */
  readonly probed: readonly number[];
  /** Ports found open, ascending (a subset of `probed`). */
  readonly open: readonly number[];
  /** What the scanner had seen open on this host before (HostContext.previousOpen). */
  readonly previousOpen: readonly number[];
  /** The host's allowance was a full sweep of its probeable ports (a seed scan). */
  readonly sweep: boolean;
}

/** What a strategy did with a batch of results (the guard rails' report). */
export interface BatchVerdict {
  /** Host results that taught the model. */
  readonly learned: number;
  /** Host results ignored because they answered on too many ports (pseudo-services). */
  readonly pseudo: number;
  /** The batch looked like packet loss and was not learned from. */
  readonly lossy: boolean;
}

/** Options every strategy takes, resolved and validated at the edge. */
export interface CommonOptions {
  /** Average probes per host per epoch. */
  readonly budget: number;
  /** Hard cap on probes for one host-epoch (a sweep may exceed `budget`, never this). */
  readonly maxPerHost: number;
  /** Always probed (when probeable), first, in this order. Counted inside the budget. */
  readonly mustHave: readonly number[];
  /** Never probed. */
  readonly exclude: readonly number[];
  /** Hosts with more open ports than this do not teach port statistics (pseudo-services). */
  readonly pseudoThreshold: number;
}

/** Shared, read-only inputs that strategies may use. */
export interface StrategyEnv {
  readonly catalog: PortCatalog;
}

/** One row of `explain()`: a port the model believes in, and how much. */
export interface ExplainedPort {
  readonly port: number;
  /** Estimated probability that the port is open on a host of this group. */
  readonly estimate: number;
  /** Observations behind the estimate (probes), when the strategy counts them. */
  readonly trials?: number;
}

/** How a typical host's allowance is split, in probes. */
export interface BudgetSplit {
  readonly mustHave: number;
  /** Ports from a fixed ranking that does not learn (fixed list, nmap frequency). */
  readonly fixed: number;
  readonly history: number;
  readonly learned: number;
  readonly exploration: number;
}

/** What the model learned, for people: per group (a tag, or "*" for the whole scope). */
export interface Explanation {
  readonly strategy: string;
  readonly groups: ReadonlyArray<{ readonly group: string; readonly observations: number; readonly top: readonly ExplainedPort[] }>;
  readonly split: BudgetSplit;
  readonly notes?: readonly string[];
}

/** A live strategy instance. Not thread-safe; one per coordinator process or simulation. */
export interface Strategy<S = unknown> {
  readonly name: string;
  readonly options: CommonOptions;
  /**
   * False for the strategies that learn nothing (fixed, top-k, random): their order is a list's
   * or a draw's, not what is likely open on a host (the coordinator names no `likely` ports then).
   */
  readonly learns?: false;
  /** Probes this host may use this epoch. Default: min(budget, maxPerHost). */
  allowance(host: HostContext, rng: Rng): number;
  /**
   * Optional: the allowance for the follow-up rounds of a host-visit, given what its earlier
   * rounds `found` (never below `allowance`). The discovery layer raises a first look that was
   * capped (a never-visited host under a huge budget) to an answering host's allowance once the
   * host answers, so it need not wait for the next cycle. HostSession calls it before every
   * follow-up round; it must be deterministic.
   */
  followUpAllowance?(host: HostContext, found: readonly number[], allowance: number, rng: Rng): number;
  /** Choose ports to probe now. Must return at most `round.remaining` ports. */
  select(round: RoundContext, rng: Rng): Decision;
  /** Learn from a batch of finished host-epochs. */
  observe(results: readonly HostResult[]): BatchVerdict;
  /** A plain JSON-serialisable snapshot of everything learned. */
  state(): S;
  /** What was learned, for people (`portbandit strategy explain`). */
  explain(limit?: number): Explanation;
}

/** Description of one tunable parameter, for --help, docs and validation messages. */
export interface ParameterSpec {
  readonly name: string;
  readonly type: 'number' | 'integer' | 'boolean' | 'string' | 'ports';
  readonly default: unknown;
  readonly description: string;
  readonly min?: number;
  readonly max?: number;
}

/**
 * How a strategy is registered: a factory that validates parameters early (throwing
 * PB_ERR_STRATEGY_OPTION), builds instances, and merges states learned apart.
 */
export interface StrategyDefinition<P extends object = object, S = unknown> {
  readonly name: string;
  readonly summary: string;
  readonly parameters: readonly ParameterSpec[];
  /** Validate raw parameters (strings from the CLI, or JSON values) into typed ones. */
  parseParams(raw: Readonly<Record<string, unknown>>): P;
  create(options: CommonOptions, params: P, env: StrategyEnv, state?: S): Strategy<S>;
  /** Combine two states learned on disjoint results (order-independent). */
  merge(a: S, b: S): S;
}
