import { PortbanditError, type Logger } from '../core/index.js';
import type { StrategyEnv } from '../../strategies/index.js';
import type { Store } from '../store/index.js';
import { allowedGroupsFor } from './groups.js';
import type { Learner } from './learner.js';
import {
  ALL_PORTS,
  DEFAULT_PERIOD_SECONDS,
  DEFAULT_POLICY_KEY,
  type Policy,
  type PolicyInput,
  budgetFor,
  policyKeyFor,
  resolvePolicy,
} from './policy.js';
import { type RetentionRule, dropsAnything } from './retention.js';
import type { ScopeService } from './scope-service.js';

/** One policy's budget, as `Coordinator.budgets` reports it. */
export interface BudgetReport {
  readonly tag: string;
  /** Addresses of the scope this policy covers. */
  readonly addresses: number;
  /** Probes per host-visit the strategy runs with (derived from `rate` when one is stated). */
  readonly budget: number;
  readonly rate?: number;
  readonly periodSeconds?: number;
  readonly probesPerCycle: number;
  /** Cycles one pass over all 65,535 ports of a host takes at this budget. */
  readonly fullPassCycles: number | null;
  readonly warning?: string;
}

/**
 * The policies by tag (`""` = the default policy) as stored, and what follows from them: the
 * policy of a host, its retention rule, the agent groups allowed to scan it, and each policy's
 * budget for the current scope. Every change is handed to the learner, which runs one strategy
 * per policy.
 */
export class PolicyBook {
  private readonly policies = new Map<string, Policy>();
  /** Policy revisions as last loaded from the store (to notice edits made by other processes). */
  private revisions = '';
  /** The last change queued (see exclusive). */
  private changing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly learner: Learner,
    private readonly scope: ScopeService,
    private readonly env: StrategyEnv,
    private readonly allowedScripts: readonly string[],
    readonly defaultPolicy: Policy,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /**
   * The book's changes (reload, set, delete, refreshBudgets) one at a time: each changes the book
   * and the learner in steps with awaits between. Interleaved, a drop's flush could end after a
   * set had loaded the same tag again and remove it from the learner, leaving the book naming a
   * policy the learner had no strategy for (leases answered 500: two coordinators on PostgreSQL,
   * one deleting a policy the other's operator was setting).
   */
  private exclusive<T>(change: () => Promise<T>): Promise<T> {
    const run = this.changing.then(change, change);
    this.changing = run.catch(() => undefined);
    return run;
  }

  /**
   * Load the policies from the store when they changed since the last load (edits made by the
   * CLI next to a running server take effect within one sweep interval).
   */
  reload(force = false): Promise<boolean> {
    return this.exclusive(() => this.reloadNow(force));
  }

  private async reloadNow(force: boolean): Promise<boolean> {
    const docs = await this.store.listDocuments<Policy>('policies');
    const revisions = docs.map((d) => `${d.key}@${d.revision}`).join(',');
    if (!force && revisions === this.revisions) return false;
    this.revisions = revisions;
    const seen = new Set<string>();
    for (const doc of docs) {
      seen.add(doc.key);
      const current = this.policies.get(doc.key);
      if (!force && current && JSON.stringify(current) === JSON.stringify(doc.value)) continue;
      try {
        // The learner first: a lease served while it loads must not find the book naming a
        // policy whose strategy the learner has not loaded yet (it answered 500).
        await this.learner.setPolicy(doc.key, this.effectivePolicy(doc.key, doc.value), this.now());
        this.policies.set(doc.key, doc.value);
        if (!force) this.log.info({ policy: doc.key || '_default' }, 'policy changed in the store; applied');
      } catch (error) {
        this.log.error({ err: error, policy: doc.key }, 'stored policy is invalid; hosts it covered fall back to the default policy');
        this.policies.delete(doc.key);
      }
    }
    for (const key of [...this.policies.keys()]) {
      if (seen.has(key)) continue;
      this.policies.delete(key);
      if (key !== DEFAULT_POLICY_KEY) await this.learner.dropPolicy(key, this.now());
    }
    if (!this.policies.has(DEFAULT_POLICY_KEY))
      await this.learner.setPolicy(DEFAULT_POLICY_KEY, this.effectivePolicy(DEFAULT_POLICY_KEY, this.defaultPolicy), this.now());
    // A new period (the default policy's) derives every rate-stated budget anew.
    await this.refreshBudgetsNow();
    return true;
  }

  // ------------------------------------------------------------------ budgets

  /** The cycle period in seconds: the default policy's (one cycle walks the whole scope). */
  periodSeconds(): number | undefined {
    return this.policy(DEFAULT_POLICY_KEY)!.periodSeconds;
  }

  /**
   * Addresses each policy covers in the current scope (a host's policy: its first tag that has
   * one), counting `adding` as a policy too.
   */
  private addressesByPolicy(adding?: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const seg of this.scope.addressSpace.segments) {
      const key = policyKeyFor(seg.tags, (k) => k === adding || this.policies.has(k));
      out.set(key, (out.get(key) ?? 0) + Number(seg.end - seg.start + 1n));
    }
    return out;
  }

  /**
   * The policy the strategy runs with: a rate-stated budget becomes probes per host-visit. As if
   * `policy` were `key`'s already (it is computed before the book takes it: see reload).
   */
  private effectivePolicy(key: string, policy: Policy): Policy {
    if (policy.rate === undefined) return policy;
    const addresses = this.addressesByPolicy(key).get(key) ?? 0;
    const period = key === DEFAULT_POLICY_KEY ? policy.periodSeconds : this.periodSeconds();
    return {
      ...policy,
      budget: budgetFor({ ...policy, periodSeconds: period ?? DEFAULT_PERIOD_SECONDS }, addresses),
      maxPerHost: ALL_PORTS,
    };
  }

  /** Re-derive rate-stated budgets after a scope change (a strategy is rebuilt only when its budget moved). */
  refreshBudgets(): Promise<void> {
    return this.exclusive(() => this.refreshBudgetsNow());
  }

  private async refreshBudgetsNow(): Promise<void> {
    for (const key of this.learner.keys()) {
      const policy = this.policy(key);
      if (!policy || policy.rate === undefined) continue;
      const effective = this.effectivePolicy(key, policy);
      if (effective.budget !== this.learner.policy(key).budget) await this.learner.setPolicy(key, effective, this.now());
    }
  }

  /**
   * Each policy's budget as the operator stated it and as derived for this scope, with what it
   * can fund: how many cycles a pass over every port of every address takes, and a warning (with
   * the rate that would fund a full sweep each cycle) when ports outside the strategy's lists
   * cannot be found in reasonable time.
   */
  budgets(): BudgetReport[] {
    const sizes = this.addressesByPolicy();
    const period = this.periodSeconds();
    return this.keys().map((key) => {
      const policy = this.policy(key)!;
      const addresses = sizes.get(key) ?? 0;
      const budget = this.learner.has(key) ? this.learner.policy(key).budget : policy.budget;
      const probesPerCycle = budget * addresses;
      const fullPassCycles = budget <= 0 ? Infinity : Math.ceil(ALL_PORTS / budget);
      const rateForSweeps = period !== undefined && addresses > 0 ? Math.ceil((addresses * ALL_PORTS) / period) : undefined;
      let warning: string | undefined;
      if (addresses > 0 && budget < 1000) {
        warning =
          `${Math.floor(budget)} probes per host-visit cannot reach past the strategy's lists in reasonable time: ` +
          `one pass over all 65,535 ports of a host takes ${fullPassCycles} cycles` +
          (period !== undefined ? ` (~${formatDuration(fullPassCycles * period)})` : '') +
          `, so a service on an unlisted port may not be found for that long.` +
          (rateForSweeps !== undefined
            ? ` A rate of ${rateForSweeps} probes/s would fund a full sweep of every address each cycle.`
            : ` State a rate and a period to derive the budget from them.`);
      }
      return {
        tag: key,
        addresses,
        budget,
        ...(policy.rate !== undefined ? { rate: policy.rate } : {}),
        ...(period !== undefined ? { periodSeconds: period } : {}),
        probesPerCycle,
        fullPassCycles: Number.isFinite(fullPassCycles) ? fullPassCycles : null,
        ...(warning !== undefined ? { warning } : {}),
      };
    });
  }

  // ------------------------------------------------------------------ policies

  /** Every policy key, the default (`""`) included, sorted. */
  keys(): string[] {
    return [...new Set([DEFAULT_POLICY_KEY, ...this.policies.keys()])].sort();
  }

  /** The policy stored under `key` (the default policy: the built-in one until one is stored). */
  policy(key: string): Policy | undefined {
    return key === DEFAULT_POLICY_KEY ? (this.policies.get(key) ?? this.defaultPolicy) : this.policies.get(key);
  }

  /** True when a policy is stored under `key`. */
  has(key: string): boolean {
    return this.policies.has(key);
  }

  /** Validate and store a tag's policy (`""` = the default policy); the strategy restarts with its saved state. */
  set(key: string, input: PolicyInput): Promise<Policy> {
    return this.exclusive(() => this.setNow(key, input));
  }

  private async setNow(key: string, input: PolicyInput): Promise<Policy> {
    const where = key === DEFAULT_POLICY_KEY ? 'policy(default)' : `policy(${key})`;
    if (key !== DEFAULT_POLICY_KEY && typeof input.periodSeconds === 'number' && input.periodSeconds !== this.periodSeconds()) {
      throw new PortbanditError('PB_ERR_POLICY', 'the cycle period is set on the default policy only: one cycle walks the whole scope', {
        where: `${where}.periodSeconds`,
      });
    }
    const resolved = resolvePolicy(input, this.defaultPolicy, this.env, this.allowedScripts, where);
    const { periodSeconds: _period, ...tagPolicy } = resolved;
    const policy: Policy = key === DEFAULT_POLICY_KEY ? resolved : tagPolicy;
    await this.store.putDocument('policies', key, policy, { at: this.now() });
    // The learner first, as in reload.
    await this.learner.setPolicy(key, this.effectivePolicy(key, policy), this.now());
    this.policies.set(key, policy);
    if (key === DEFAULT_POLICY_KEY) {
      // The period derives every rate-stated budget.
      for (const k of this.learner.keys())
        if (k !== key) await this.learner.setPolicy(k, this.effectivePolicy(k, this.policy(k)!), this.now());
    }
    this.revisions = '';
    return policy;
  }

  /** Remove a tag's policy (its hosts fall back to the default; learned state is kept). */
  delete(key: string): Promise<boolean> {
    return this.exclusive(() => this.deleteNow(key));
  }

  private async deleteNow(key: string): Promise<boolean> {
    const existed = await this.store.deleteDocument('policies', key);
    this.policies.delete(key);
    if (key === DEFAULT_POLICY_KEY) await this.learner.setPolicy(key, this.effectivePolicy(key, this.defaultPolicy), this.now());
    else await this.learner.dropPolicy(key, this.now());
    return existed;
  }

  /** What the strategy of a policy has learned. */
  explain(key: string, limit: number) {
    const policy = this.policy(key);
    if (!policy) throw new PortbanditError('PB_ERR_NOT_FOUND', `no policy for tag "${key}"`, { where: 'tag' });
    const budget = this.budgets().find((b) => b.tag === key);
    return { tag: key, policy, ...(budget ? { budget } : {}), ...this.learner.explain(key, limit) };
  }

  /** The policy key of a host with these tags (its first tag that has a policy, else ""). */
  keyOf(tags: readonly string[]): string {
    return policyKeyFor(tags, (k) => this.policies.has(k));
  }

  // ------------------------------------------------------------------ retention

  /** The retention rule of a visit with these tags: its policy's, else the default policy's (undefined: keep all). */
  retentionRuleFor(tags: readonly string[]): RetentionRule | undefined {
    return this.policies.get(this.keyOf(tags))?.retention ?? this.policies.get(DEFAULT_POLICY_KEY)?.retention;
  }

  /** True when some policy has a retention rule that can drop a visit. */
  anyRetentionRule(): boolean {
    for (const p of this.policies.values()) if (dropsAnything(p.retention)) return true;
    return false;
  }

  // ------------------------------------------------------------------ agent groups

  /** True when some policy names groups: only then is work routed by group. */
  groupsInUse(): boolean {
    for (const p of this.policies.values()) if (p.groups !== undefined) return true;
    return false;
  }

  /** The groups allowed to scan a host with these tags (undefined: any agent); see groups.ts for the rule. */
  allowedGroups(tags: readonly string[]): readonly string[] | undefined {
    return allowedGroupsFor(tags, (t) => this.policies.get(t)?.groups, this.policies.get(DEFAULT_POLICY_KEY)?.groups);
  }
}

/** "3 h", "2.5 d": a duration for people. */
export function formatDuration(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${(seconds / 86400).toFixed(seconds < 864_000 ? 1 : 0)} d`;
}
