import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { canonicalIp } from '../core/address.js';
import { PortbanditError, isPortbanditError } from '../core/errors.js';
import { PortRanges } from '../core/ports.js';
import { HostSession, type HostSessionState } from '../../strategies/host-session.js';
import type { HostContext, HostResult, StrategyEnv } from '../../strategies/types.js';
import type { Agent, Lease, QueuedWork, QueuedWorkInput, ScanDocument, ScopeListName, Store } from '../store/types.js';
import { contextPrefix, parseAddress } from './address.js';
import { AddressSpace, type ScopeItem } from './address-space.js';
import type { CoordinatorConfig } from './config.js';
import { Cycle, type CycleDocument, type CycleProgress } from './cycle.js';
import { Learner } from './learner.js';
import type { CoordinatorMetrics } from './metrics.js';
import { ALL_PORTS, DEFAULT_PERIOD_SECONDS, DEFAULT_POLICY_KEY, type Policy, type PolicyInput, budgetFor, defaultPolicy, policyKeyFor, resolvePolicy } from './policy.js';
import { PROTOCOL_VERSION, type ResultSubmission, type SubmitResponse, type WorkItem } from './protocol.js';
import { type ScopeLine, normalizeScopeLine } from './scope-file.js';
import { checkSubmission } from './submission-checks.js';
import { ScreenshotArchive, checkScreenshots, withScreenshots } from './screenshots.js';
import { generateId, generateToken, hashToken } from './tokens.js';
import { allowedGroupsFor, checkGroups, mayScan, vantageGroup } from './groups.js';
import { type RetentionRule, dropsAnything } from './retention.js';
import { type NameEntry, type NameResolution, type NameResolver, asDnsName, resolveNameEntries } from './names.js';
import { foldRound, knownOpenOf, visitOfLease } from './visit.js';

/** What a lease carries besides the ports: enough to resume the host visit in any process. */
export interface LeaseSession {
  readonly state: HostSessionState;
  readonly policy: string;
  readonly epoch: number;
  readonly prefix: string;
  readonly previousOpen: readonly number[];
  readonly previousEpoch: number;
  /** The visit this lease belongs to (its scan document); absent on a visit's first round. */
  readonly visitId?: string;
  /** The host's previous answered visit: what this visit's events compare against. */
  readonly baselineScanId?: string;
  /** Older leases: the scan of the round before (read as `visitId`). */
  readonly priorScanId?: string;
  /** The agent group (vantage point) the visit is scanned from; its later rounds stay in it. */
  readonly group?: string;
}

/** A work item whose lease write was issued (not yet awaited). */
interface Leased {
  readonly item: WorkItem;
  readonly written: Promise<void>;
  /** The queue item it was made from (a shared queue settles it when the lease is written). */
  readonly queueId?: string;
}

interface InstallDocument {
  readonly seed: string;
  readonly createdAt: number;
}

interface AgentActivityBuffer {
  at: number;
  version?: string;
  workItems: number;
  results: number;
}

/** How often agents' last-seen time and counters are written to the store. */
const ACTIVITY_FLUSH_MS = 10_000;

/** How long authenticateAgent trusts a cached token before asking the store again. */
const AGENT_RECHECK_MS = 1000;

/** Most bearer tokens remembered by authenticateAgent. */
const AGENT_TOKEN_CACHE = 100_000;

/** Agents whose activity is written per commit when flushing. */
const ACTIVITY_FLUSH_CHUNK = 100;

/** Work hand-out attempts per request before answering "no work" (skipped hosts, zero budgets). */
const MAX_ATTEMPTS = 32;

/** Addresses a coordinator claims from the shared cycle at a time (into the shared queue). */
const SHARED_CYCLE_BLOCK = 64;

/** Compare-and-set attempts on the shared cycle before giving up for this request. */
const SHARED_CYCLE_RETRIES = 16;

/** How often a coordinator that is not the learner reloads the states the learner wrote. */
const STATE_RELOAD_MS = 10_000;

/** How often the learner drops learning-queue items every stored state has learned. */
const LEARNING_PRUNE_MS = 60_000;

/**
 * The coordinator's core, independent of HTTP: scope, cycle, leases, policies, learning and
 * ingestion over a Store. Routes (routes/*.ts) are thin adapters over these methods.
 */
export class Coordinator {
  private space: AddressSpace = AddressSpace.EMPTY;
  private items: ScopeItem[] = [];
  private scopeVersion = -1;
  private cycle!: Cycle;
  private seed = '';
  private readonly policies = new Map<string, Policy>();
  private readonly learner: Learner;
  private readonly agentsByHash = new Map<string, Agent>();
  /**
   * Agents by their bearer token as presented, so a request does not hash its token (sha256 was
   * ~4% of a getwork). Memory only, emptied with agentsByHash (revocations take effect as before);
   * the store keeps only hashes.
   */
  private readonly agentsByToken = new Map<string, { agent: Agent; checkedAt: number }>();
  private readonly activity = new Map<string, AgentActivityBuffer>();
  private readonly recentResults = new Map<string, number[]>();
  /** Hosts scanned per tag in the current cycle (round 0), for the cycle-coverage gauge. */
  private readonly cycleScans = new Map<string, number>();
  /** Hosts handed out per tag in the current cycle (round 0). */
  private readonly cycleHanded = new Map<string, number>();
  private cycleScansOf = 0;
  private sweeping = false;
  private lastLearnAt = 0;
  private lastActivityFlushAt = 0;
  /** False only after a dequeue found the queue empty and nothing was enqueued since. */
  private queueMaybeNonEmpty = true;
  private readonly eventWaiters = new Set<() => void>();
  /** Agent groups by agent id (the `agentGroups` documents), loaded with the agents. */
  private readonly agentGroups = new Map<string, readonly string[]>();
  /** Cycle addresses put into the queue for another group's agents, not yet leased (no second copy). */
  private readonly deferredIps = new Set<string>();
  /** Restrictions no registered agent can serve, already logged this cycle. */
  private readonly unroutableLogged = new Set<string>();
  /** Resolves the scope's DNS names; undefined: this process does not resolve (CLI on a data directory). */
  private resolver: NameResolver | undefined;
  /** Scope entries by name, and the addresses they resolved to last. */
  private nameEntries: NameEntry[] = [];
  private nameResolution: NameResolution | undefined;
  /** Address items of the scope and blocklist (without the names' addresses). */
  private addressItems: ScopeItem[] = [];
  /** The cycle (number and start) whose end the names were last resolved at. */
  private namesResolvedFor = '';
  private resolvingNames: Promise<void> | undefined;
  /** True once `close()` started: long-lived streams end. */
  closing = false;
  readonly defaultPolicy: Policy;
  /** Web screenshots submitted with results (`<dataDir>/screenshots.db`, opened on first use). */
  readonly screenshots: ScreenshotArchive;
  /**
   * Several coordinators share the store (PostgreSQL): they walk one cycle (blocks claimed by
   * compare-and-set into the shared queue), and one elected learner learns from everyone's
   * finished visits (the learning queue) while the others reload what it writes.
   */
  readonly shared: boolean;
  /** This process holds the learner role (shared stores). */
  private leader = false;
  /** Where this learner's next read of the learning queue starts. */
  private learnCursor: string | undefined;
  private lastStateReloadAt = 0;
  private lastPruneAt = 0;

  private constructor(
    readonly store: Store,
    readonly config: CoordinatorConfig,
    readonly env: StrategyEnv,
    readonly metrics: CoordinatorMetrics,
    readonly log: FastifyBaseLogger,
    readonly now: () => number,
  ) {
    this.shared = store.kind === 'postgres';
    this.learner = new Learner(store, env, config.learnBatchSize, log, this.shared);
    this.defaultPolicy = defaultPolicy(config.allowedScripts);
    this.screenshots = ScreenshotArchive.forDataDir(config.dataDir, config.screenshotBudgetBytes);
  }

  /** Load scope, cycle, policies and learned states from the store (creating the install seed). */
  static async open(
    store: Store,
    config: CoordinatorConfig,
    env: StrategyEnv,
    metrics: CoordinatorMetrics,
    log: FastifyBaseLogger,
    now: () => number,
    resolver?: NameResolver,
  ): Promise<Coordinator> {
    const c = new Coordinator(store, config, env, metrics, log, now);
    c.resolver = resolver;
    const install = await store.getDocument<InstallDocument>('coordinator', 'install');
    if (install) c.seed = install.value.seed;
    else {
      c.seed = randomBytes(16).toString('hex');
      try {
        await store.putDocument<InstallDocument>('coordinator', 'install', { seed: c.seed, createdAt: now() }, { at: now(), expectedRevision: 0 });
        log.info({ seed: c.seed }, 'new installation: permutation and strategy seed created');
      } catch (error) {
        // Another process (serve and the CLI started together) created it first: use theirs.
        if (!isPortbanditError(error, 'PB_ERR_CONFLICT')) throw error;
        c.seed = (await store.getDocument<InstallDocument>('coordinator', 'install'))!.value.seed;
      }
    }
    await c.reloadScope(true);
    const saved = await store.getDocument<CycleDocument>('coordinator', 'cycle');
    c.cycle = Cycle.resume(c.seed, saved?.value, c.items, now());
    await c.persistCycle();
    await c.reloadPolicies(true);
    await c.refreshAgents();
    return c;
  }

  /** Policy revisions as last loaded from the store (to notice edits made by other processes). */
  private policyRevisions = '';

  /**
   * Load the policies from the store when they changed since the last load (edits made by the
   * CLI next to a running server take effect within one sweep interval).
   */
  private async reloadPolicies(force = false): Promise<boolean> {
    const docs = await this.store.listDocuments<Policy>('policies');
    const revisions = docs.map((d) => `${d.key}@${d.revision}`).join(',');
    if (!force && revisions === this.policyRevisions) return false;
    this.policyRevisions = revisions;
    const seen = new Set<string>();
    for (const doc of docs) {
      seen.add(doc.key);
      const current = this.policies.get(doc.key);
      if (!force && current && JSON.stringify(current) === JSON.stringify(doc.value)) continue;
      try {
        this.policies.set(doc.key, doc.value);
        await this.learner.setPolicy(doc.key, this.effectivePolicy(doc.key, doc.value), this.now());
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
    if (!this.policies.has(DEFAULT_POLICY_KEY)) await this.learner.setPolicy(DEFAULT_POLICY_KEY, this.effectivePolicy(DEFAULT_POLICY_KEY, this.defaultPolicy), this.now());
    return true;
  }

  // ------------------------------------------------------------------ budgets

  /** The cycle period in seconds: the default policy's (one cycle walks the whole scope). */
  periodSeconds(): number | undefined {
    return this.policy(DEFAULT_POLICY_KEY)!.periodSeconds;
  }

  /** Addresses each policy covers in the current scope (a host's policy: its first tag that has one). */
  private addressesByPolicy(): Map<string, number> {
    const out = new Map<string, number>();
    for (const seg of this.space.segments) {
      const key = this.policyKey(seg.tags);
      out.set(key, (out.get(key) ?? 0) + Number(seg.end - seg.start + 1n));
    }
    return out;
  }

  /** The policy the strategy runs with: a rate-stated budget becomes probes per host-visit. */
  private effectivePolicy(key: string, policy: Policy): Policy {
    if (policy.rate === undefined) return policy;
    const addresses = this.addressesByPolicy().get(key) ?? 0;
    return { ...policy, budget: budgetFor({ ...policy, periodSeconds: this.periodSeconds() ?? DEFAULT_PERIOD_SECONDS }, addresses), maxPerHost: ALL_PORTS };
  }

  /** Re-derive rate-stated budgets after a scope change (a strategy is rebuilt only when its budget moved). */
  private async refreshBudgets(): Promise<void> {
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
    return this.policyKeys().map((key) => {
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
          (rateForSweeps !== undefined ? ` A rate of ${rateForSweeps} probes/s would fund a full sweep of every address each cycle.` : ` State a rate and a period to derive the budget from them.`);
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

  // ------------------------------------------------------------------ scope

  private async reloadScope(force = false): Promise<boolean> {
    const version = await this.store.getScopeVersion();
    if (!force && version === this.scopeVersion) return false;
    const [scope, block] = await Promise.all([this.store.listScope('scope'), this.store.listScope('blocklist')]);
    // DNS names (scope only) are resolved apart; their addresses join the items (resolveNames).
    const isName = (range: string) => asDnsName(range) === range;
    this.addressItems = [
      ...scope.entries.filter((e) => !isName(e.range)).map((e) => ({ target: e.range, tags: e.tags, blocklist: false })),
      ...block.entries.filter((e) => !isName(e.range)).map((e) => ({ target: e.range, tags: e.tags, blocklist: true })),
    ];
    this.nameEntries = scope.entries.filter((e) => isName(e.range)).map((e) => ({ name: e.range, tags: e.tags }));
    if (this.resolver && this.nameEntries.length > 0) await this.resolveNames();
    else this.rebuildItems();
    this.scopeVersion = Math.max(scope.version, block.version, version);
    this.metrics.scopeAddresses.set(Number(this.space.size));
    // Not at open: the policies are loaded after the scope.
    if (this.learner.keys().length > 0) await this.refreshBudgets();
    return true;
  }

  /** The current address space (scope minus blocklist). */
  get addressSpace(): AddressSpace {
    return this.space;
  }

  /** Add or update entries of the scope or blocklist. */
  async addScope(list: ScopeListName, lines: readonly ScopeLine[]): Promise<number> {
    refuseNamesInBlocklist(list, lines);
    const version = await this.store.addScopeEntries(list, lines, this.now());
    await this.reloadScope(true);
    return version;
  }

  async removeScope(list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }> {
    const normalized = ranges.map((r, i) => normalizeScopeLine(r, [], `ranges[${i}]`).range);
    const out = await this.store.removeScopeEntries(list, normalized);
    await this.reloadScope(true);
    return out;
  }

  async replaceScope(list: ScopeListName, lines: readonly ScopeLine[]): Promise<number> {
    refuseNamesInBlocklist(list, lines);
    const version = await this.store.replaceScope(list, lines, this.now());
    await this.reloadScope(true);
    return version;
  }

  /**
   * `lookup`, but a shared store's scope may have been edited through another coordinator since
   * this one's last sweep: a miss re-checks the scope version (one query) before it counts.
   */
  private async lookupCurrent(ip: string): Promise<{ ip: string; tags: readonly string[] } | undefined> {
    const hit = this.lookup(ip);
    if (hit || !this.shared || !(await this.reloadScope())) return hit;
    return this.lookup(ip);
  }

  /** Tags of an in-scope address, or undefined when it is outside the scope (or blocklisted). */
  lookup(ip: string): { ip: string; tags: readonly string[] } | undefined {
    let parsed;
    try {
      parsed = parseAddress(ip);
    } catch {
      return undefined;
    }
    const seg = this.space.find(parsed.family, parsed.value);
    return seg ? { ip: normalizeIp(ip), tags: seg.tags } : undefined;
  }

  // ------------------------------------------------------------------ targets by name

  /** The scope items: address entries, blocklist, and one item per address a name resolved to. */
  private rebuildItems(): void {
    const named: ScopeItem[] = [];
    for (const e of this.nameEntries) for (const ip of this.nameResolution?.addresses.get(e.name) ?? []) named.push({ target: ip, tags: e.tags, blocklist: false });
    this.items = [...this.addressItems, ...named];
    this.space = AddressSpace.build(this.items);
  }

  /** Resolve every name of the scope now (one resolution at a time) and rebuild the address space. */
  private async resolveNames(): Promise<void> {
    // One at a time; a caller that arrives during one resolves again (the names may have changed).
    while (this.resolvingNames) await this.resolvingNames;
    this.resolvingNames = (async () => {
      try {
        const resolver = this.resolver!;
        this.nameResolution = await resolveNameEntries(this.nameEntries, resolver, this.nameResolution, (name, problem) => this.log.warn({ name, resolver: resolver.description }, `scope name ${name}: ${problem}`));
        this.rebuildItems();
        const count = [...this.nameResolution.addresses.values()].reduce((n, ips) => n + ips.length, 0);
        this.log.info({ names: this.nameEntries.length, addresses: count, resolver: resolver.description }, 'scope names resolved');
      } finally {
        this.resolvingNames = undefined;
      }
    })();
    return this.resolvingNames;
  }

  /**
   * Names are resolved each cycle: when the walk is over and the next cycle may start (its
   * period over), once per cycle number, so the next cycle's snapshot has fresh addresses.
   */
  private async resolveNamesIfDue(): Promise<void> {
    if (!this.resolver || this.nameEntries.length === 0 || !this.cycle.atEnd) return;
    // Start and size too: a cycle over an empty scope begins again under the same number.
    const { cycle, startedAt, size } = this.cycle.progress();
    const key = `${cycle}@${startedAt}/${size}`;
    if (this.namesResolvedFor === key) {
      // Another request is resolving for this boundary: the next cycle must not begin before it is done.
      if (this.resolvingNames) await this.resolvingNames;
      return;
    }
    if ((this.nextCycleAt() ?? 0) > this.now()) return;
    this.namesResolvedFor = key;
    await this.resolveNames();
  }

  /** The scope names an address resolved to (last resolution), if any. */
  namesOf(ip: string): readonly string[] | undefined {
    return this.nameResolution?.namesByIp.get(ip);
  }

  /**
   * What a scope name resolved to at the last resolution (for the admin UI): its target
   * addresses, or undefined when this process has not resolved it (no resolver, or not yet).
   */
  addressesOfName(name: string): readonly string[] | undefined {
    return this.resolver ? this.nameResolution?.addresses.get(name) : undefined;
  }

  /** The resolver of the scope's names (`hosts file …`, `DNS …`), or undefined when this process does not resolve. */
  get nameResolverDescription(): string | undefined {
    return this.resolver?.description;
  }

  // ------------------------------------------------------------------ cycle

  progress(): CycleProgress {
    return this.cycle.progress();
  }

  /** Abandon the current cycle and start the next over the current scope. */
  async restartCycle(): Promise<CycleProgress> {
    if (this.resolver && this.nameEntries.length > 0) await this.resolveNames();
    if (this.shared) {
      await this.updateSharedCycle((cycle, now) => {
        cycle.restart(this.items, now);
        return [];
      });
      return this.cycle.progress();
    }
    this.cycle.restart(this.items, this.now());
    await this.persistCycle();
    return this.cycle.progress();
  }

  private async persistCycle(): Promise<void> {
    // A shared cycle is written only by compare-and-set (updateSharedCycle), never blindly.
    if (this.shared) return;
    if (this.cycle.dirty) await this.store.putDocument('coordinator', 'cycle', this.cycle.take(), { at: this.now() });
  }

  /**
   * Change the shared cycle: read it, let `change` move it (returning the work it hands out),
   * write it back over the revision read, with that work queued in the same transaction. A
   * concurrent change by another coordinator makes the write fail; it is then redone on the
   * fresh document. So every address of a cycle is queued by exactly one coordinator, once.
   */
  private async updateSharedCycle(change: (cycle: Cycle, now: number) => QueuedWorkInput[]): Promise<number> {
    // The walk skips addresses outside the current scope: it must be the current one, not this
    // process's copy from its last sweep (an edit made through another coordinator).
    await this.reloadScope();
    for (let attempt = 0; attempt < SHARED_CYCLE_RETRIES; attempt++) {
      const now = this.now();
      const saved = await this.store.getDocument<CycleDocument>('coordinator', 'cycle');
      const cycle = Cycle.resume(this.seed, saved?.value, this.items, now);
      const work = change(cycle, now);
      if (!cycle.dirty) {
        this.cycle = cycle;
        return 0;
      }
      try {
        await this.store.putDocument('coordinator', 'cycle', cycle.take(), { at: now, expectedRevision: saved?.revision ?? 0, enqueue: work });
        this.cycle = cycle;
        return work.length;
      } catch (error) {
        if (!isPortbanditError(error, 'PB_ERR_CONFLICT')) throw error;
      }
    }
    this.log.warn('the shared cycle kept changing under this coordinator; no block claimed this time');
    return 0;
  }

  /** This process's block claims, one at a time (see claimCycleBlock). */
  private claims: Promise<unknown> = Promise.resolve();

  /**
   * Claim the next block of the shared cycle into the shared queue; returns how many addresses.
   * One claim at a time per process: concurrent lease requests (1,000 agents) each racing their
   * own compare-and-set on the cycle document lost to each other until the retries ran out and
   * answered no work (943 of 1,006 leases empty in the bench's closed loop); queued behind each
   * other, each claims its block on the fresh document. Other coordinators still race by CAS.
   */
  private claimCycleBlock(size: number): Promise<number> {
    const claim = this.claims.then(() => this.claimCycleBlockNow(size));
    this.claims = claim.catch(() => {});
    return claim;
  }

  private claimCycleBlockNow(size: number): Promise<number> {
    return this.updateSharedCycle((cycle, now) => {
      const period = this.periodSeconds();
      const work: QueuedWorkInput[] = [];
      while (work.length < size) {
        // A block does not run into the next cycle: its addresses wait for the next claim.
        if (work.length > 0 && cycle.atEnd) break;
        const addr = cycle.next(this.space, this.items, now, period !== undefined ? period * 1000 : 0);
        if (!addr) break;
        work.push({ ip: addr.ip, tags: [...addr.tags], reason: 'cycle', enqueuedAt: now, cycle: addr.cycle });
      }
      return work;
    });
  }

  /** Queue manual rescans (served before the cycle). Addresses outside the scope are refused. */
  async requestRescan(ips: readonly string[]): Promise<QueuedWork[]> {
    const now = this.now();
    const items = ips.map((ip, i) => {
      const hit = this.lookup(ip);
      if (!hit) throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `${JSON.stringify(ip)} is not in the scope (or is blocklisted)`, { where: `ips[${i}]` });
      // Reserved to the host's agent groups at once (no detour through an agent that may not take it).
      const groups = this.groupsInUse() ? this.allowedGroups(hit.tags) : undefined;
      return { ip: hit.ip, tags: hit.tags, reason: 'manual' as const, enqueuedAt: now, ...(groups !== undefined ? { groups: [...groups] } : {}) };
    });
    const queued = await this.store.enqueueWork(items);
    // Only once committed: a getwork of the meantime may have seen the queue empty.
    this.queueMaybeNonEmpty = true;
    return queued;
  }

  // ------------------------------------------------------------------ policies

  policyKeys(): string[] {
    return [...new Set([DEFAULT_POLICY_KEY, ...this.policies.keys()])].sort();
  }

  policy(key: string): Policy | undefined {
    return key === DEFAULT_POLICY_KEY ? (this.policies.get(key) ?? this.defaultPolicy) : this.policies.get(key);
  }

  /** Validate and store a tag's policy (`""` = the default policy); the strategy restarts with its saved state. */
  async setPolicy(key: string, input: PolicyInput): Promise<Policy> {
    const where = key === DEFAULT_POLICY_KEY ? 'policy(default)' : `policy(${key})`;
    if (key !== DEFAULT_POLICY_KEY && typeof input.periodSeconds === 'number' && input.periodSeconds !== this.periodSeconds()) {
      throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', 'the cycle period is set on the default policy only: one cycle walks the whole scope', { where: `${where}.periodSeconds` });
    }
    const resolved = resolvePolicy(input, this.defaultPolicy, this.env, this.config.allowedScripts, where);
    const { periodSeconds: _period, ...tagPolicy } = resolved;
    const policy: Policy = key === DEFAULT_POLICY_KEY ? resolved : tagPolicy;
    await this.store.putDocument('policies', key, policy, { at: this.now() });
    this.policies.set(key, policy);
    if (key === DEFAULT_POLICY_KEY) {
      // The period derives every rate-stated budget.
      for (const k of this.learner.keys()) if (k !== key) await this.learner.setPolicy(k, this.effectivePolicy(k, this.policy(k)!), this.now());
    }
    await this.learner.setPolicy(key, this.effectivePolicy(key, policy), this.now());
    this.policyRevisions = '';
    return policy;
  }

  /** Remove a tag's policy (its hosts fall back to the default; learned state is kept). */
  async deletePolicy(key: string): Promise<boolean> {
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

  private policyKey(tags: readonly string[]): string {
    return policyKeyFor(tags, (k) => this.policies.has(k));
  }

  // ------------------------------------------------------------------ retention

  /** The retention rule of a visit with these tags: its policy's, else the default policy's (undefined: keep all). */
  retentionRuleFor(tags: readonly string[]): RetentionRule | undefined {
    return this.policies.get(this.policyKey(tags))?.retention ?? this.policies.get(DEFAULT_POLICY_KEY)?.retention;
  }

  /** True when some policy has a retention rule that can drop a visit. */
  anyRetentionRule(): boolean {
    for (const p of this.policies.values()) if (dropsAnything(p.retention)) return true;
    return false;
  }

  /** The policy key of a host with these tags (its first tag that has a policy, else ""). */
  policyKeyOf(tags: readonly string[]): string {
    return this.policyKey(tags);
  }

  // ------------------------------------------------------------------ agents and tokens

  private async refreshAgents(): Promise<void> {
    this.agentsByHash.clear();
    this.agentsByToken.clear();
    for (const a of await this.store.listAgents()) this.agentsByHash.set(a.tokenHash, a);
    this.agentGroups.clear();
    for (const doc of await this.store.listDocuments<{ groups: string[] }>('agentGroups')) this.agentGroups.set(doc.key, doc.value.groups);
  }

  /** Register an agent; returns the token (shown once, stored only as a hash). */
  async createAgent(name: string, groups: readonly string[] = []): Promise<{ agent: Agent; token: string }> {
    const checked = checkGroups(groups, 'groups');
    const token = generateToken('agent');
    const agent = await this.store.createAgent({ id: generateId('agent'), name, tokenHash: hashToken(token), createdAt: this.now() });
    this.agentsByHash.set(agent.tokenHash, agent);
    if (checked.length > 0) await this.setAgentGroups(agent.id, checked);
    return { agent, token };
  }

  async deleteAgent(id: string): Promise<boolean> {
    await this.store.deleteDocument('agentGroups', id);
    const existed = await this.store.deleteAgent(id);
    await this.refreshAgents();
    return existed;
  }

  /** The agent holding this bearer token, or undefined. */
  async authenticateAgent(token: string): Promise<Agent | undefined> {
    // A cached token is trusted for at most AGENT_RECHECK_MS (wall time, not the coordinator's
    // clock): a revocation by another process (the CLI on the same store) takes effect within
    // that, and this process's own revocations at once (deleteAgent empties the caches).
    const checkedAt = performance.now();
    const known = this.agentsByToken.get(token);
    if (known && checkedAt - known.checkedAt < AGENT_RECHECK_MS) return known.agent;
    const hash = hashToken(token);
    const agent = await this.store.findAgentByTokenHash(hash);
    if (agent) {
      this.agentsByHash.set(hash, agent);
      // Bounded: a flood of distinct valid tokens cannot grow it past the agent count by much.
      if (this.agentsByToken.size >= AGENT_TOKEN_CACHE) this.agentsByToken.clear();
      this.agentsByToken.set(token, { agent, checkedAt });
    } else {
      this.agentsByHash.delete(hash);
      this.agentsByToken.delete(token);
    }
    return agent;
  }

  /** The agent registry with live figures: in flight, results in the last hour. */
  async listAgents(): Promise<Array<Agent & { groups: string[]; inFlight: number; resultsLastHour: number }>> {
    await this.flushActivity();
    const now = this.now();
    const agents = await this.store.listAgents();
    return Promise.all(
      agents.map(async (a) => ({
        ...a,
        groups: [...this.groupsOf(a.id)],
        inFlight: await this.store.countLeases({ agentId: a.id }),
        resultsLastHour: (this.recentResults.get(a.id) ?? []).filter((t) => t > now - 3_600_000).length,
      })),
    );
  }

  private touch(agentId: string, version: string | undefined, field: 'workItems' | 'results' | undefined): void {
    const now = this.now();
    const buf = this.activity.get(agentId) ?? { at: now, workItems: 0, results: 0 };
    buf.at = Math.max(buf.at, now);
    if (version !== undefined) buf.version = version;
    if (field) buf[field]++;
    this.activity.set(agentId, buf);
    if (field === 'results') {
      const list = this.recentResults.get(agentId) ?? [];
      list.push(now);
      // Keep the last hour only; prune lazily when the list grows.
      if (list.length > 64 && list[0]! <= now - 3_600_000) this.recentResults.set(agentId, list.filter((t) => t > now - 3_600_000));
      else this.recentResults.set(agentId, list);
    }
  }

  private async flushActivity(): Promise<void> {
    const entries = [...this.activity];
    this.activity.clear();
    // A chunk's writes share one commit (the store groups a turn's writes); chunks leave the
    // event loop to requests in between (1,000 agents in one go was a ~100 ms stall).
    for (let i = 0; i < entries.length; i += ACTIVITY_FLUSH_CHUNK) {
      const chunk = entries.slice(i, i + ACTIVITY_FLUSH_CHUNK);
      const outcomes = await Promise.allSettled(
        chunk.map(([id, buf]) =>
          this.store.recordAgentActivity(id, {
            at: buf.at,
            ...(buf.version !== undefined ? { version: buf.version } : {}),
            increments: { workItems: buf.workItems, results: buf.results },
          }),
        ),
      );
      outcomes.forEach((outcome, k) => {
        // The agent was deleted meanwhile: nothing to record.
        if (outcome.status === 'rejected') this.log.debug({ err: outcome.reason, agent: chunk[k]![0] }, 'agent activity dropped');
      });
    }
  }

  /** Create an admin token; returns the token (shown once). */
  async createAdminToken(name: string): Promise<{ id: string; name: string; token: string; createdAt: number }> {
    const token = generateToken('admin');
    const stored = await this.store.createAdminToken({ id: generateId('admin'), name, tokenHash: hashToken(token), createdAt: this.now() });
    return { id: stored.id, name: stored.name, token, createdAt: stored.createdAt };
  }

  async authenticateAdmin(token: string): Promise<boolean> {
    return (await this.store.findAdminTokenByHash(hashToken(token))) !== undefined;
  }

  // ------------------------------------------------------------------ agent groups

  /** An agent's groups (vantage points), sorted; empty when it has none. */
  groupsOf(agentId: string): readonly string[] {
    return this.agentGroups.get(agentId) ?? [];
  }

  /** Replace an agent's groups (an empty list removes them). `PB_ERR_NOT_FOUND` for an unknown agent. */
  async setAgentGroups(agentId: string, groups: readonly string[]): Promise<string[]> {
    const checked = checkGroups(groups, 'groups');
    if (!(await this.store.getAgent(agentId))) throw new PortbanditError('PB_ERR_NOT_FOUND', `no agent with id ${agentId}`, { where: 'agent' });
    if (checked.length === 0) {
      await this.store.deleteDocument('agentGroups', agentId);
      this.agentGroups.delete(agentId);
    } else {
      await this.store.putDocument('agentGroups', agentId, { groups: checked }, { at: this.now() });
      this.agentGroups.set(agentId, checked);
    }
    return checked;
  }

  /** True when some policy names groups: only then is work routed by group. */
  private groupsInUse(): boolean {
    for (const p of this.policies.values()) if (p.groups !== undefined) return true;
    return false;
  }

  /** The groups allowed to scan a host with these tags (undefined: any agent); see groups.ts for the rule. */
  allowedGroups(tags: readonly string[]): readonly string[] | undefined {
    return allowedGroupsFor(tags, (t) => this.policies.get(t)?.groups, this.policies.get(DEFAULT_POLICY_KEY)?.groups);
  }

  /** True when some registered agent belongs to one of `allowed`. */
  private routable(allowed: readonly string[]): boolean {
    for (const groups of this.agentGroups.values()) if (groups.some((g) => allowed.includes(g))) return true;
    return false;
  }

  /**
   * A cycle address the asking agent may not scan: queued for an agent of its groups (once per
   * address until leased), or skipped this cycle when no registered agent belongs to them.
   */
  private deferCycleAddress(ip: string, tags: readonly string[], cycle: number, allowed: readonly string[], out: QueuedWorkInput[]): void {
    if (allowed.length === 0 || !this.routable(allowed)) {
      const key = `${allowed.join(',')}|${tags.join(',')}`;
      if (!this.unroutableLogged.has(key)) {
        this.unroutableLogged.add(key);
        this.log.warn({ tags, groups: allowed, cycle }, allowed.length === 0 ? "hosts whose tags' policies name no common agent group are not scanned" : 'no registered agent belongs to the groups allowed for these hosts: skipped this cycle');
      }
      return;
    }
    if (this.deferredIps.has(ip)) return;
    this.deferredIps.add(ip);
    out.push({ ip, tags: [...tags], reason: 'cycle', enqueuedAt: this.now(), cycle, groups: [...allowed] });
  }

  // ------------------------------------------------------------------ work

  /** The next work item for an agent, or null when there is nothing to do right now. */
  async getWork(agent: Agent, version?: string): Promise<WorkItem | null> {
    return (await this.getWorkBatch(agent, 1, version))[0] ?? null;
  }

  /**
   * Up to `max` work items for an agent in one pass: queued work first, then the cycle. Every
   * lease is issued in the same turn of the event loop and awaited together, so the store
   * commits them as one group (the SQLite store's group commit: one transaction for the burst).
   * A batch stops at the end of the cycle rather than start the next one inside it, so the
   * cycle's addresses in one batch are distinct. Items whose lease could not be stored are left
   * out (an error only when none could).
   */
  async getWorkBatch(agent: Agent, max: number, version?: string): Promise<WorkItem[]> {
    this.touch(agent.id, version, undefined);
    const issued: Leased[] = [];
    const pending: QueuedWork[] = [];
    // Agent groups: with a policy naming groups, work goes only to agents of its groups; work
    // for other groups is queued for them (`deferred`, written with this batch's leases).
    const routing = this.groupsInUse();
    const agentGroups = this.groupsOf(agent.id);
    const deferred: QueuedWorkInput[] = [];
    let queueDry = false;
    let fromCycle = 0;
    let misses = 0;
    let claimed = false;
    // Every dequeued item is served (it left the queue), whatever the misses.
    while (issued.length < max && (pending.length > 0 || misses < MAX_ATTEMPTS)) {
      // Skip the dequeue transaction while the queue is known to be empty (the common case:
      // every enqueue goes through this process, and each sweep re-arms the check). A shared
      // queue is filled by other coordinators too: always asked. With agent groups in use, the
      // queue may hold items of other groups: it is only dry for this batch, not known empty.
      if (pending.length === 0 && (this.queueMaybeNonEmpty || this.shared) && !queueDry) {
        const groups = routing ? agentGroups : undefined;
        pending.push(...(await this.dequeue(max - issued.length, groups)));
        // Shared: the cycle reaches agents through the shared queue, a claimed block at a time.
        if (pending.length === 0 && this.shared && !claimed) {
          claimed = true;
          if ((await this.claimCycleBlock(Math.max(SHARED_CYCLE_BLOCK, max - issued.length))) > 0) pending.push(...(await this.dequeue(max - issued.length, groups)));
        }
        if (pending.length === 0) {
          if (routing) queueDry = true;
          else this.queueMaybeNonEmpty = false;
        }
      }
      const queued = pending.shift();
      let leased: Leased | null;
      if (queued) {
        leased = await this.leaseQueued(agent, queued, routing, agentGroups, deferred);
        if (leased) leased = { ...leased, queueId: queued.id };
        else this.settleQueued(queued.id);
      } else if (this.shared) break;
      else {
        // The next address would open a new cycle: its addresses wait for the next request.
        if (fromCycle > 0 && this.cycle.atEnd) break;
        if (this.cycle.atEnd) await this.resolveNamesIfDue();
        const period = this.periodSeconds();
        const addr = this.cycle.next(this.space, this.items, this.now(), period !== undefined ? period * 1000 : 0);
        if (!addr) break;
        if (addr.cycle !== this.cycleScansOf) {
          this.cycleScans.clear();
          this.cycleHanded.clear();
          this.unroutableLogged.clear();
          this.cycleScansOf = addr.cycle;
        }
        const allowed = routing ? this.allowedGroups(addr.tags) : undefined;
        if (!mayScan(agentGroups, allowed)) {
          this.deferCycleAddress(addr.ip, addr.tags, addr.cycle, allowed!, deferred);
          fromCycle++;
          misses++;
          continue;
        }
        leased = await this.startVisit(agent, addr.ip, addr.tags, 'cycle', addr.cycle, vantageGroup(agentGroups, allowed));
        if (leased) {
          fromCycle++;
          for (const t of addr.tags.length > 0 ? addr.tags : ['']) this.cycleHanded.set(t, (this.cycleHanded.get(t) ?? 0) + 1);
        }
      }
      if (leased) issued.push(leased);
      else misses++;
    }
    const deferring = deferred.length > 0 ? this.store.enqueueWork(deferred) : undefined;
    const outcomes = await Promise.allSettled(issued.map((l) => l.written));
    if (deferring) {
      try {
        await deferring;
        this.queueMaybeNonEmpty = true;
      } catch (error) {
        for (const d of deferred) this.deferredIps.delete(d.ip);
        this.log.error({ err: error, addresses: deferred.length }, "addresses for other agent groups could not be queued; they wait for the next cycle");
      }
    }
    const items: WorkItem[] = [];
    const failed: Array<{ ip: string; error: unknown }> = [];
    outcomes.forEach((outcome, i) => {
      const item = issued[i]!.item;
      if (outcome.status === 'rejected') {
        // The address is being scanned under another lease (a store that allows one live lease
        // per address): this work is not needed now.
        if (isPortbanditError(outcome.reason, 'PB_ERR_CONFLICT') && outcome.reason.where === 'lease.ip') {
          this.log.info({ ip: item.ip, reason: item.reason }, 'address already leased; work item dropped');
          const queueId = issued[i]!.queueId;
          if (queueId !== undefined) this.settleQueued(queueId);
          return;
        }
        failed.push({ ip: item.ip, error: outcome.reason });
        return;
      }
      this.touch(agent.id, undefined, 'workItems');
      this.metrics.workItems.inc({ reason: item.reason });
      items.push(item);
    });
    if (failed.length > 0 && items.length === 0) throw failed[0]!.error;
    for (const f of failed) this.log.error({ err: f.error, ip: f.ip }, 'a lease could not be stored; its work item is not handed out');
    return items;
  }

  /**
   * Take work from the queue. A shared queue hides what it hands out until the lease for it is
   * written, for about a lease's time: a coordinator killed in between does not lose it.
   */
  private dequeue(n: number, groups?: readonly string[]): Promise<QueuedWork[]> {
    const hold = this.shared ? { holdMs: this.config.leaseSeconds * 1000 } : undefined;
    if (groups !== undefined) return hold ? this.store.dequeueWorkFor(n, groups, hold) : this.store.dequeueWorkFor(n, groups);
    return hold ? this.store.dequeueWork(n, hold) : this.store.dequeueWork(n);
  }

  /** A dequeued item that will not be leased: a shared queue drops it now (else it comes back). */
  private settleQueued(id: string): void {
    if (!this.shared) return;
    this.store.removeQueuedWork(id).catch((error: unknown) => this.log.warn({ err: error, id }, 'a dropped queue item could not be removed; it comes back after its hold'));
  }

  private async leaseQueued(agent: Agent, queued: QueuedWork, routing: boolean, agentGroups: readonly string[], deferred: QueuedWorkInput[]): Promise<Leased | null> {
    const hit = await this.lookupCurrent(queued.ip);
    if (!hit) {
      this.deferredIps.delete(queued.ip);
      this.log.info({ ip: queued.ip, reason: queued.reason }, 'queued target left the scope; dropped');
      return null;
    }
    const session = queued.ports && queued.session ? (queued.session as LeaseSession) : undefined;
    let allowed: readonly string[] | undefined;
    if (routing) {
      // Checked again here: the policies may have changed since the item was queued, and an
      // expired lease comes back without `groups` (its session names the visit's group).
      allowed = this.allowedGroups(hit.tags);
      if (session?.group !== undefined && (allowed === undefined || allowed.includes(session.group))) allowed = [session.group];
      if (!mayScan(agentGroups, allowed)) {
        if (allowed!.length === 0) {
          this.deferredIps.delete(queued.ip);
          this.log.warn({ ip: queued.ip, tags: hit.tags, reason: queued.reason }, "queued target's tags name no common agent group; dropped");
        } else {
          const { id: _id, ...rest } = queued;
          deferred.push({ ...rest, groups: [...allowed!] });
        }
        return null;
      }
    }
    this.deferredIps.delete(queued.ip);
    const cycle = queued.cycle ?? this.cycle.number;
    if (session) {
      return this.lease(agent, hit.ip, hit.tags, [...queued.ports!], session, queued.round ?? 0, queued.reason, cycle);
    }
    const leased = await this.startVisit(agent, hit.ip, hit.tags, queued.reason, cycle, vantageGroup(agentGroups, allowed));
    // A cycle address queued for another agent group, or a block of the shared cycle (it reaches
    // agents through the queue), counts as handed out by the cycle when leased.
    if (leased && queued.reason === 'cycle' && (cycle === this.cycleScansOf || (this.shared && cycle === this.cycle.number))) {
      if (cycle !== this.cycleScansOf) {
        this.cycleScans.clear();
        this.cycleHanded.clear();
        this.cycleScansOf = cycle;
      }
      for (const t of hit.tags.length > 0 ? hit.tags : ['']) this.cycleHanded.set(t, (this.cycleHanded.get(t) ?? 0) + 1);
    }
    return leased;
  }

  private async startVisit(agent: Agent, ip: string, tags: readonly string[], reason: WorkItem['reason'], cycle: number, group?: string): Promise<Leased | null> {
    const key = this.policyKey(tags);
    const latest = group !== undefined ? await this.latestAnsweredScanFrom(ip, group) : await this.latestAnsweredScan(ip);
    const { family, value } = parseAddress(ip);
    const previousOpen = latest ? knownOpenOf(latest) : [];
    const host: HostContext = {
      ip,
      tags,
      prefix: contextPrefix(family, value),
      epoch: cycle,
      previousOpen,
      previousEpoch: latest ? latest.epoch : -1,
      probeable: PortRanges.ALL,
    };
    const session = new HostSession(this.learner.strategy(key), host, this.seed);
    const ports = session.next();
    if (ports === null) return null;
    const blob: LeaseSession = {
      state: session.toJSON(),
      policy: key,
      epoch: cycle,
      prefix: host.prefix,
      previousOpen,
      previousEpoch: host.previousEpoch,
      ...(latest ? { baselineScanId: latest.scanId } : {}),
      ...(group !== undefined ? { group } : {}),
    };
    return this.lease(agent, ip, tags, ports, blob, 0, reason, cycle);
  }

  /** A work item and its lease's write, issued but not awaited (getWorkBatch awaits a batch's writes together). */
  private lease(
    agent: Agent,
    ip: string,
    tags: readonly string[],
    ports: number[],
    session: LeaseSession,
    round: number,
    reason: WorkItem['reason'],
    cycle: number,
  ): Leased {
    const now = this.now();
    const sorted = [...ports].sort((a, b) => a - b);
    const visitId = session.visitId ?? session.priorScanId;
    const lease: Lease = {
      // A later round's id names its visit, so a retried submit of it is recognised as a duplicate.
      id: visitId !== undefined ? `${visitOfLease(visitId) ?? visitId}.${round}.${generateId('r').slice(2)}` : generateId('lease'),
      ip,
      agentId: agent.id,
      ports: sorted,
      tags: [...tags],
      session,
      issuedAt: now,
      deadline: now + this.config.leaseSeconds * 1000,
      round,
      cycle,
      reason,
    };
    const written = this.store.putLease(lease);
    // Handled: a write failing while the batch is still being built (a store with I/O between
    // its reads) must not count as an unhandled rejection; getWorkBatch reads the outcome.
    written.catch(() => {});
    const policy = this.policy(this.policies.has(session.policy) ? session.policy : DEFAULT_POLICY_KEY)!;
    const known = new Set(session.previousOpen);
    const verify = known.size === 0 ? [] : sorted.filter((p) => known.has(p));
    const item: WorkItem = {
      protocol: PROTOCOL_VERSION,
      leaseId: lease.id,
      ip,
      tags: lease.tags,
      ports: sorted,
      ...(verify.length > 0 ? { verify } : {}),
      round,
      cycle,
      reason,
      issuedAt: now,
      deadline: lease.deadline,
      scan: policy.scan,
    };
    return { item, written };
  }

  /**
   * Store an agent's result. Bound to the lease: another agent, an unknown or expired lease, a
   * different address, an address no longer in scope or a port that was not handed out is
   * rejected. A second submission of a stored lease is answered as a duplicate.
   */
  async submit(agent: Agent, input: ResultSubmission): Promise<SubmitResponse> {
    this.touch(agent.id, input.agentVersion, undefined);
    const lease = await this.store.getLease(input.leaseId);
    if (!lease) {
      const stored = await this.store.getScan(visitOfLease(input.leaseId) ?? input.leaseId);
      if (stored && stored.agentId === agent.id && (stored.rounds ?? [stored.scanId]).includes(input.leaseId)) {
        this.metrics.results.inc({ outcome: 'duplicate' });
        return { scanId: stored.scanId, accepted: false, duplicate: true, followUp: false, events: 0 };
      }
      this.metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_CONFLICT', `lease ${input.leaseId} is unknown or has expired (its target went back to the queue)`, { where: 'leaseId' });
    }
    if (lease.agentId !== agent.id) {
      this.metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_FORBIDDEN', `lease ${lease.id} was handed to another agent`, { where: 'leaseId' });
    }
    checkSubmission(input, lease, this.now()); // deadline, timestamps, free-form field caps (issue 11)
    const shots = checkScreenshots(input); // open ports only, size caps, PNG/JPEG by their bytes
    const ip = safeNormalizeIp(input.ip);
    if (ip !== lease.ip) {
      this.metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', `lease ${lease.id} is for ${lease.ip}, not ${JSON.stringify(input.ip)}`, { where: 'ip' });
    }
    const hit = await this.lookupCurrent(ip);
    if (!hit) {
      this.metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `${ip} is no longer in the scope; result refused`, { where: 'ip' });
    }
    const given = new Set(lease.ports);
    input.ports.forEach((p, i) => {
      if (!given.has(p.port)) {
        this.metrics.results.inc({ outcome: 'rejected' });
        throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', `port ${p.port} was not in the work item`, { where: `ports[${i}].port` });
      }
    });
    if (input.unknownPorts !== undefined && input.unknownPorts !== '') {
      const outside = PortRanges.parse(input.unknownPorts, 'unknownPorts').toArray().find((p) => !given.has(p));
      if (outside !== undefined) {
        this.metrics.results.inc({ outcome: 'rejected' });
        throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', `port ${outside} was not in the work item`, { where: 'unknownPorts' });
      }
    }
    if (input.finishedAt < input.startedAt) {
      throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', 'finishedAt is before startedAt', { where: 'finishedAt' });
    }
    const session = lease.session as LeaseSession;
    const visitId = session.visitId ?? session.priorScanId;
    const prior = visitId !== undefined ? await this.store.getScan(visitId) : undefined;
    const baseline = session.baselineScanId !== undefined ? await this.store.getScan(session.baselineScanId) : prior ? undefined : await this.latestAnsweredScan(ip);
    const { scan: folded, events, open, unknown } = foldRound({
      visitId: prior?.scanId ?? lease.id,
      leaseId: lease.id,
      ip,
      tags: hit.tags,
      agentId: agent.id,
      epoch: session.epoch,
      cycle: lease.cycle ?? this.cycle.number,
      leasePorts: lease.ports,
      submission: input,
      prior,
      baseline,
    });
    const scan = withScreenshots(folded, prior, shots);
    // Images before the scan that names them: a crash in between leaves an unnamed image (which
    // the budget drops in time), never a scan pointing at nothing.
    if (shots.length > 0) {
      const evicted = this.screenshots.put(scan.scanId, ip, shots, this.now());
      if (evicted > 0) this.log.info({ evicted, budget: this.config.screenshotBudgetBytes }, 'screenshot budget reached: dropped the oldest images');
    }
    // The session's next step is decided before the write, so a follow-up round is queued in
    // the same transaction as this round's result (one write to wait for, and never one without
    // the other after a crash).
    const next = this.advanceSession(lease, session, hit.tags, input, scan, open, unknown);
    const ingested = await this.store.ingestScan({
      scan: this.annotateVisit(scan, session),
      events,
      leaseId: lease.id,
      ...(prior ? { replace: true } : {}),
      ...(next.followUp ? { enqueue: [next.followUp] } : {}),
      // Shared: the finished visit goes to the elected learner in the same transaction.
      ...(this.shared && next.learn ? { learn: [{ key: next.learn.key, result: next.learn.result, at: this.now() }] } : {}),
    });
    if (!ingested.inserted) {
      this.metrics.results.inc({ outcome: 'duplicate' });
      return { scanId: scan.scanId, accepted: false, duplicate: true, followUp: false, events: 0 };
    }
    this.touch(agent.id, undefined, 'results');
    this.metrics.results.inc({ outcome: 'accepted' });
    if (events.length > 0) this.wakeEventWaiters();
    if (lease.round === 0 && (lease.cycle ?? 0) === this.cycleScansOf) {
      for (const t of hit.tags.length > 0 ? hit.tags : ['']) this.cycleScans.set(t, (this.cycleScans.get(t) ?? 0) + 1);
    }
    if (next.followUp) this.queueMaybeNonEmpty = true;
    else if (next.learn && !this.shared) this.learner.add(next.learn.key, next.learn.result, this.now());
    return { scanId: scan.scanId, accepted: true, duplicate: false, followUp: next.followUp !== undefined, events: events.length };
  }

  /** What a visit records besides its rounds: its vantage group, the scope names of its address. */
  private annotateVisit(scan: ScanDocument, session: LeaseSession): ScanDocument {
    const names = this.namesOf(scan.ip);
    if (session.group === undefined && names === undefined) return scan;
    return { ...scan, ...(session.group !== undefined ? { group: session.group } : {}), ...(names !== undefined ? { names: [...names] } : {}) };
  }

  /**
   * Per vantage point: the host's latest answered visit from agent group `group`, so a host seen
   * from two groups (inside and outside a firewall) compares each visit with what the same group
   * saw last, not with the other side; the latest answered visit of any group when this group
   * has none among the recent ones.
   */
  private async latestAnsweredScanFrom(ip: string, group: string): Promise<ScanDocument | undefined> {
    const latest = await this.store.getLatestScan(ip);
    if (!latest || (latest.group === group && latest.host?.status !== 'down')) return latest;
    const recent = await this.store.hostHistory(ip, { limit: 50 });
    return recent.items.find((s) => s.group === group && s.host?.status !== 'down') ?? recent.items.find((s) => s.host?.status !== 'down');
  }

  /**
   * The host's latest scan in which it answered: a scan of a silent host (`status: down`, kept
   * in history) must not become the baseline, or its services would all look new next time.
   */
  private async latestAnsweredScan(ip: string): Promise<ScanDocument | undefined> {
    const latest = await this.store.getLatestScan(ip);
    if (!latest || latest.host?.status !== 'down') return latest;
    const recent = await this.store.hostHistory(ip, { limit: 20 });
    return recent.items.find((s) => s.host?.status !== 'down');
  }

  /**
   * Report the round to the host session: the follow-up round to queue, or the finished visit
   * to learn from (neither for a silent host). Changes nothing; `submit` acts on it once the
   * result is stored.
   */
  private advanceSession(
    lease: Lease,
    session: LeaseSession,
    tags: readonly string[],
    input: ResultSubmission,
    scan: ScanDocument,
    open: readonly number[],
    unknown: readonly number[],
  ): { followUp?: QueuedWorkInput; learn?: { key: string; result: HostResult } } {
    const key = this.learner.has(session.policy) ? session.policy : DEFAULT_POLICY_KEY;
    const host: HostContext = {
      ip: lease.ip,
      tags,
      prefix: session.prefix,
      epoch: session.epoch,
      previousOpen: session.previousOpen,
      previousEpoch: session.previousEpoch,
      probeable: PortRanges.ALL,
    };
    const hs = new HostSession(this.learner.strategy(key), host, this.seed, session.state);
    if (input.status === 'down') {
      // A silent host says nothing about its ports: do not teach the model "all closed".
      hs.abandon();
      return {};
    }
    hs.report(open, unknown);
    // A round that observed nothing (every port unknown) ends the visit: following up on it
    // would spend the allowance blind.
    const next = unknown.length > 0 && unknown.length >= lease.ports.length ? (hs.abandon(), null) : hs.next();
    if (next !== null) {
      const { priorScanId: _old, ...rest } = session;
      const blob: LeaseSession = { ...rest, state: hs.toJSON(), visitId: scan.scanId };
      return {
        followUp: {
          ip: lease.ip,
          tags: [...tags],
          reason: 'followup',
          enqueuedAt: this.now(),
          ports: next,
          session: blob,
          round: lease.round + 1,
          ...(lease.cycle !== undefined ? { cycle: lease.cycle } : {}),
          // The visit's later rounds are scanned from the same vantage point.
          ...(session.group !== undefined ? { groups: [session.group] } : {}),
        },
      };
    }
    return { learn: { key, result: hs.result() } };
  }

  // ------------------------------------------------------------------ housekeeping

  /**
   * Periodic work: requeue expired leases, pick up scope edits made by other processes (the
   * CLI), persist the cycle position and agent activity, learn from pending results.
   */
  async sweep(options: { learn?: boolean } = {}): Promise<{ expired: number }> {
    if (this.sweeping) return { expired: 0 };
    this.sweeping = true;
    try {
      const now = this.now();
      let expired = 0;
      for (;;) {
        const batch = await this.store.takeExpiredLeases(now, 500, { requeue: true });
        expired += batch.length;
        if (batch.length < 500) break;
      }
      // Expired leases were requeued just now (committed); other processes may have queued
      // work too. Set after those writes: a getwork of the meantime may have seen it empty.
      this.queueMaybeNonEmpty = true;
      if (expired > 0) {
        this.metrics.leasesExpired.inc(expired);
        this.log.info({ expired }, 'expired leases went back to the queue');
      }
      await this.reloadScope();
      await this.resolveNamesIfDue();
      await this.reloadPolicies();
      await this.persistCycle();
      // Shared: where the common walk is (for progress and metrics), as the others moved it.
      if (this.shared) {
        const saved = await this.store.getDocument<CycleDocument>('coordinator', 'cycle');
        if (saved) this.cycle = Cycle.resume(this.seed, saved.value, this.items, now);
      }
      // One store write per active agent: every 10 s is plenty for "last seen" (1,000 agents
      // flushed every second would cost more than the work they ask for).
      if (now - this.lastActivityFlushAt >= ACTIVITY_FLUSH_MS) {
        this.lastActivityFlushAt = now;
        await this.flushActivity();
        // Agents revoked by another process (the CLI) stop working within this period.
        await this.refreshAgents();
      }
      if (this.shared) await this.shareLearning(now, options.learn === true);
      // Learn at least once a minute even when results trickle in slower than a batch.
      else if (options.learn || now - this.lastLearnAt >= 60_000) {
        this.lastLearnAt = now;
        await this.learner.flush(undefined, now);
      } else await this.learner.persist(now);
      return { expired };
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Several coordinators: hold (or try to take) the learner role. The learner reads the
   * learning queue from where it got to, learns, writes the states fenced, and drops what every
   * stored state has learned; the others reload the states it writes.
   */
  private async shareLearning(now: number, learnNow: boolean): Promise<void> {
    let leader = false;
    try {
      leader = await this.store.holdRole('learner');
    } catch (error) {
      this.log.error({ err: error }, 'could not check the learner role; not learning this sweep');
    }
    if (leader !== this.leader) {
      // Either way, start from the stored states: the previous learner may have written since.
      await this.learner.reloadAll(now);
      this.learnCursor = leader ? this.learner.lowestThrough() : undefined;
      this.log.info({ cursor: this.learnCursor }, leader ? 'this coordinator is the learner now' : 'this coordinator is no longer the learner');
      this.leader = leader;
    }
    if (!leader) {
      if (now - this.lastStateReloadAt >= STATE_RELOAD_MS) {
        this.lastStateReloadAt = now;
        const reloaded = await this.learner.reloadChanged(now);
        if (reloaded > 0) this.log.debug({ reloaded }, "reloaded the learner's states");
      }
      return;
    }
    const read = await this.store.readLearning(this.learnCursor);
    for (const item of read.items) {
      const key = this.learner.has(item.key) ? item.key : DEFAULT_POLICY_KEY;
      this.learner.addQueued(key, item.result as HostResult, item.position, now);
    }
    this.learner.markRead(read.cursor);
    this.learnCursor = read.cursor;
    await this.learner.settled();
    if (learnNow || now - this.lastLearnAt >= 60_000) {
      this.lastLearnAt = now;
      await this.learner.flush(undefined, now);
    } else await this.learner.persist(now);
    if (now - this.lastPruneAt >= LEARNING_PRUNE_MS) {
      this.lastPruneAt = now;
      await this.store.pruneLearning(this.learner.lowestThrough());
    }
  }

  /** Resolve after `ms` or as soon as new events are stored, whichever comes first. */
  waitForEvents(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.eventWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.eventWaiters.add(done);
    });
  }

  private wakeEventWaiters(): void {
    for (const w of [...this.eventWaiters]) w();
  }

  /** Tell long-lived streams to end (before the HTTP server waits for its connections). */
  beginClose(): void {
    this.closing = true;
    this.wakeEventWaiters();
  }

  /** Resolve once finished visits queued for learning have been learned (learning runs after the submit is answered). */
  learningSettled(): Promise<void> {
    return this.learner.settled();
  }

  /** Flush everything (cycle, activity, learning) before the store closes. */
  async close(): Promise<void> {
    this.beginClose();
    await this.learner.settled();
    await this.persistCycle();
    await this.flushActivity();
    // Shared: only the learner writes states (what it read but has not learned is written
    // with a position before it, so the next learner reads it again).
    if (!this.shared || this.leader) await this.learner.flush(undefined, this.now());
    this.screenshots.close();
  }

  /**
   * Hosts handed out and scanned this cycle per tag ("" = untagged) and the tag's address count
   * (counted by this process since it started or the cycle began).
   */
  cycleCoverage(): Array<{ tag: string; handedOut: number; scanned: number; addresses: string; fraction: number }> {
    const sizes = this.space.sizeByTag();
    return [...sizes].map(([tag, size]) => {
      const scanned = this.cycleScans.get(tag) ?? 0;
      return { tag, handedOut: this.cycleHanded.get(tag) ?? 0, scanned, addresses: String(size), fraction: size === 0n ? 0 : Math.min(1, scanned / Number(size)) };
    });
  }

  /** When the paced cycle may start its next round over the scope (undefined while one runs). */
  nextCycleAt(): number | undefined {
    const period = this.periodSeconds();
    return period === undefined ? undefined : this.cycle.nextStartAt(period * 1000);
  }

  /**
   * The strategy's OWN belief, not a measurement: the share of the open-port mass it estimates
   * (over its top 1,000 ports, from what it has seen) that fits within the budget. It cannot
   * count ports it has never seen open, so it overstates coverage where discovery is unfunded
   * (`budgets()` warns there).
   */
  estimatedCoverage(): Array<{ tag: string; estimate: number }> {
    return this.learner.keys().map((key) => {
      const policy = this.policy(key)!;
      const top = this.learner.explain(key, 1000).explanation.groups.flatMap((g) => g.top);
      const byPort = new Map<number, number>();
      for (const p of top) byPort.set(p.port, Math.max(byPort.get(p.port) ?? 0, p.estimate));
      const est = [...byPort.values()].sort((a, b) => b - a);
      const total = est.reduce((a, b) => a + b, 0);
      const inBudget = est.slice(0, Math.floor(policy.budget)).reduce((a, b) => a + b, 0);
      return { tag: key, estimate: total > 0 ? inBudget / total : 0 };
    });
  }
}

/**
 * `PortRanges.fromPorts(ports).toString()` for a sorted list (a lease's ports, sorted when
 * handed out), without its intermediate arrays: one per submit.
 */
export function rangesOfSorted(ports: readonly number[]): string {
  let out = '';
  for (let i = 0; i < ports.length; ) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1]! <= ports[j]! + 1) j++;
    out += `${out === '' ? '' : ','}${ports[i] === ports[j] ? ports[i] : `${ports[i]}-${ports[j]}`}`;
    i = j + 1;
  }
  return out;
}

/** The blocklist holds addresses only: a name there would block whatever DNS says today. */
function refuseNamesInBlocklist(list: ScopeListName, lines: readonly ScopeLine[]): void {
  if (list !== 'blocklist') return;
  const i = lines.findIndex((l) => asDnsName(l.range) === l.range);
  if (i >= 0) throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', `the blocklist takes addresses, CIDRs and ranges, not DNS names (${lines[i]!.range})`, { where: `entries[${i}]` });
}

/** Canonical text of an address (as the store keeps it). */
export function normalizeIp(ip: string): string {
  return canonicalIp(ip, 'ip');
}

function safeNormalizeIp(ip: string): string {
  try {
    return normalizeIp(ip);
  } catch {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`, { where: 'ip' });
  }
}

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

/** "3 h", "2.5 d": a duration for people. */
export function formatDuration(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${(seconds / 86400).toFixed(seconds < 864_000 ? 1 : 0)} d`;
}
