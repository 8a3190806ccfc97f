import { randomBytes } from 'node:crypto';
import { isPortbanditError, type Logger } from '../core/index.js';
import type { StrategyEnv } from '../../strategies/index.js';
import type { Agent, QueryNode, ScopeListName, Store } from '../store/index.js';
import type { ListedAgent } from './agent-registry.js';
import type { AddressSpace } from './address-space.js';
import type { CoordinatorConfig } from './config.js';
import { type CycleCoverageRow, estimateCoverage, storedCoverageRows } from './coverage.js';
import type { CycleDocument, CycleProgress } from './cycle.js';
import type { RescanOutcome, WorkRequestOptions } from './leasing.js';
import type { CoordinatorMetrics } from './metrics.js';
import { type Policy, type PolicyInput, defaultPolicy } from './policy.js';
import type { BudgetReport } from './policy-book.js';
import type { ResultSubmission, SubmitResponse, WorkItem } from '../protocol/index.js';
import type { RetentionRule } from './retention.js';
import type { ScopeLine } from './scope-file.js';
import { ScopeService } from './scope-service.js';
import { ScreenshotArchive } from './screenshots.js';
import type { NameResolver } from './names.js';
import { type CoordinatorUnits, assembleUnits } from './units.js';

export type { LeaseSession } from './lease-session.js';
export { type BudgetReport, formatDuration } from './policy-book.js';
export { normalizeIp } from './scope-service.js';

interface InstallDocument {
  readonly seed: string;
  readonly createdAt: number;
}

/**
 * The coordinator's core, independent of HTTP, as one facade over its units: the scope service
 * (scope, blocklist, names), the policy book, cycle and leasing (walk, queue, leases), the agent
 * registry (agents, tokens, groups), result intake, the learner and its schedule, and cycle
 * coverage. Routes (routes/*.ts) are thin adapters over these methods.
 */
/** How long a shared coordinator reuses its count of the cycle's finished visits (cycleVisitsFinished). */
const FINISHED_RECOUNT_MS = 5_000;

export class Coordinator {
  private sweeping = false;
  /** A shared coordinator's last count of the cycle's finished visits, from the store. */
  private finishedCache: { readonly cycle: number; readonly at: number; readonly value: number } | undefined;
  private coverageCache:
    { readonly cycle: number; readonly at: number; readonly space: AddressSpace; readonly rows: CycleCoverageRow[] } | undefined;
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
  private readonly units: CoordinatorUnits;

  private constructor(
    readonly store: Store,
    readonly config: CoordinatorConfig,
    readonly env: StrategyEnv,
    readonly metrics: CoordinatorMetrics,
    readonly log: Logger,
    readonly now: () => number,
    units: (c: Coordinator) => CoordinatorUnits,
  ) {
    this.shared = store.kind === 'postgres';
    this.defaultPolicy = defaultPolicy(config.allowedScripts);
    this.screenshots = ScreenshotArchive.forDataDir(config.dataDir, config.screenshotBudgetBytes);
    this.units = units(this);
  }

  /** Load scope, cycle, policies and learned states from the store (creating the install seed). */
  static async open(
    store: Store,
    config: CoordinatorConfig,
    env: StrategyEnv,
    metrics: CoordinatorMetrics,
    log: Logger,
    now: () => number,
    resolver?: NameResolver,
  ): Promise<Coordinator> {
    const shared = store.kind === 'postgres';
    const seed = await installSeed(store, log, now);
    const scope = new ScopeService(store, metrics, log, now, shared, resolver);
    await scope.reload(true);
    const saved = await store.getDocument<CycleDocument>('coordinator', 'cycle');
    const c = new Coordinator(store, config, env, metrics, log, now, (self) =>
      assembleUnits({
        store,
        scope,
        savedCycle: saved?.value,
        config,
        env,
        defaultPolicy: self.defaultPolicy,
        screenshots: self.screenshots,
        metrics,
        log,
        now,
        seed,
        shared,
      }),
    );
    await c.units.leasing.persistCycle();
    await c.units.policies.reload(true);
    await c.units.agents.refresh();
    await c.units.agents.snapshotStoredVisits();
    await c.resumeCoverage();
    return c;
  }

  /**
   * Resume the cycle coverage of a cycle under way from the store: per tag of the scope, the hosts
   * whose latest visit finished since the cycle started (manual rescans of the cycle's time
   * included; a tag's untagged rows are the hosts with none of the scope's tags).
   */
  private async resumeCoverage(): Promise<void> {
    const progress = this.progress();
    if (progress.dispensed === 0) return;
    const tags = [...this.addressSpace.sizeByTag().keys()];
    const scanned = new Map<string, number>();
    try {
      for (const [tag, n] of await this.scannedPerTag(progress.startedAt, tags)) scanned.set(tag, n);
    } catch (error) {
      // A figure of the dashboard is not worth refusing to start over.
      this.log.warn({ err: error }, 'could not count the hosts scanned so far this cycle; its coverage restarts from 0');
    }
    // Of those, the visits with a later round in flight or queued are not finished yet.
    let under: Awaited<ReturnType<Coordinator['visitsUnderWay']>> | undefined;
    try {
      under = await this.visitsUnderWay(progress.cycle, progress.startedAt, tags);
    } catch (error) {
      this.log.warn({ err: error }, 'could not count the visits of this cycle still under way; its finished visits restart from 0');
    }
    this.units.coverage.resume(progress.cycle, scanned, under?.pending, under && { scanned: under.scanned, pending: under.pendingTotal });
  }

  /**
   * From the store, per tag of `tags` ("" = none of them): the hosts whose latest visit finished
   * at or after `startedAt` (manual rescans of the cycle's time included).
   */
  private async scannedPerTag(startedAt: number, tags: readonly string[]): Promise<Map<string, number>> {
    const since: QueryNode = { type: 'time', op: '>=', at: startedAt };
    const named = tags.filter((t) => t !== '').map((value): QueryNode => ({ type: 'term', field: 'tag', value }));
    const scanned = new Map<string, number>();
    for (const tag of tags) {
      const query: QueryNode =
        tag !== ''
          ? { type: 'and', children: [{ type: 'term', field: 'tag', value: tag }, since] }
          : named.length === 0
            ? since
            : { type: 'and', children: [{ type: 'not', child: named.length === 1 ? named[0]! : { type: 'or', children: named } }, since] };
      scanned.set(tag, await this.store.count(query));
    }
    return scanned;
  }

  /**
   * From the store: the visits stored since `cycle` began (`scanned`), its visits with a later
   * round in flight or queued (`pending`), and its first rounds leased and not stored yet
   * (`inFlight`), per tag of `tags` ("" = none of them); `pendingTotal` over every tag.
   */
  private async visitsUnderWay(
    cycle: number,
    startedAt: number,
    tags: readonly string[],
  ): Promise<{ scanned: number; pending: Map<string, number>; pendingTotal: number; inFlight: Map<string, number> }> {
    const pending = new Map<string, number>();
    const inFlight = new Map<string, number>();
    let pendingTotal = 0;
    const scopeTags = new Set(tags);
    const perTag = (into: Map<string, number>, own: readonly string[]) => {
      const mine = own.filter((t) => scopeTags.has(t));
      for (const t of mine.length > 0 ? mine : ['']) into.set(t, (into.get(t) ?? 0) + 1);
    };
    const leases = await this.store.listLeases();
    for (const w of [...leases, ...(await this.store.listQueuedWork())]) {
      if (w.cycle !== cycle || (w.round ?? 0) === 0) continue;
      pendingTotal++;
      perTag(pending, w.tags);
    }
    for (const w of leases) if (w.cycle === cycle && (w.round ?? 0) === 0) perTag(inFlight, w.tags);
    const scanned = await this.store.count({ type: 'time', op: '>=', at: startedAt });
    return { scanned, pending, pendingTotal, inFlight };
  }

  // ------------------------------------------------------------------ budgets and policies

  /** The cycle period in seconds: the default policy's (one cycle walks the whole scope). */
  periodSeconds(): number | undefined {
    return this.units.policies.periodSeconds();
  }

  /** Each policy's budget as stated and as derived for this scope, with what it can fund (PolicyBook.budgets). */
  budgets(): BudgetReport[] {
    return this.units.policies.budgets();
  }

  policyKeys(): string[] {
    return this.units.policies.keys();
  }

  policy(key: string): Policy | undefined {
    return this.units.policies.policy(key);
  }

  /** Validate and store a tag's policy (`""` = the default policy); the strategy restarts with its saved state. */
  setPolicy(key: string, input: PolicyInput): Promise<Policy> {
    return this.units.policies.set(key, input);
  }

  /** Remove a tag's policy (its hosts fall back to the default; learned state is kept). */
  deletePolicy(key: string): Promise<boolean> {
    return this.units.policies.delete(key);
  }

  /** What the strategy of a policy has learned. */
  explain(key: string, limit: number) {
    return this.units.policies.explain(key, limit);
  }

  /** The retention rule of a visit with these tags: its policy's, else the default policy's (undefined: keep all). */
  retentionRuleFor(tags: readonly string[]): RetentionRule | undefined {
    return this.units.policies.retentionRuleFor(tags);
  }

  /** True when some policy has a retention rule that can drop a visit. */
  anyRetentionRule(): boolean {
    return this.units.policies.anyRetentionRule();
  }

  /** The policy key of a host with these tags (its first tag that has a policy, else ""). */
  policyKeyOf(tags: readonly string[]): string {
    return this.units.policies.keyOf(tags);
  }

  /** The groups allowed to scan a host with these tags (undefined: any agent); see groups.ts for the rule. */
  allowedGroups(tags: readonly string[]): readonly string[] | undefined {
    return this.units.policies.allowedGroups(tags);
  }

  // ------------------------------------------------------------------ scope

  /** The current address space (scope minus blocklist). */
  get addressSpace(): AddressSpace {
    return this.units.scope.addressSpace;
  }

  /** Add or update entries of the scope or blocklist. */
  addScope(list: ScopeListName, lines: readonly ScopeLine[]): Promise<number> {
    return this.units.scope.add(list, lines);
  }

  removeScope(list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }> {
    return this.units.scope.remove(list, ranges);
  }

  replaceScope(list: ScopeListName, lines: readonly ScopeLine[]): Promise<number> {
    return this.units.scope.replace(list, lines);
  }

  /** Tags of an in-scope address, or undefined when it is outside the scope (or blocklisted). */
  lookup(ip: string): { ip: string; tags: readonly string[] } | undefined {
    return this.units.scope.lookup(ip);
  }

  /** The scope names an address resolved to (last resolution), if any. */
  namesOf(ip: string): readonly string[] | undefined {
    return this.units.scope.namesOf(ip);
  }

  /** What a scope name resolved to at the last resolution (undefined: not resolved by this process). */
  addressesOfName(name: string): readonly string[] | undefined {
    return this.units.scope.addressesOfName(name);
  }

  /** The resolver of the scope's names (`hosts file …`, `DNS …`), or undefined when this process does not resolve. */
  get nameResolverDescription(): string | undefined {
    return this.units.scope.nameResolverDescription;
  }

  // ------------------------------------------------------------------ cycle and work

  progress(): CycleProgress {
    return this.units.leasing.progress();
  }

  /** When the paced cycle may start its next round over the scope (undefined while one runs). */
  nextCycleAt(): number | undefined {
    return this.units.leasing.nextCycleAt();
  }

  /** Abandon the current cycle and start the next over the current scope. */
  restartCycle(): Promise<CycleProgress> {
    return this.units.leasing.restartCycle();
  }

  /** Queue manual rescans (served before the cycle). Addresses outside the scope are refused. */
  requestRescan(ips: readonly string[]): Promise<RescanOutcome> {
    return this.units.leasing.requestRescan(ips);
  }

  /** The next work item for an agent, or null when there is nothing to do right now. */
  async getWork(agent: Agent, version?: string): Promise<WorkItem | null> {
    return (await this.getWorkBatch(agent, 1, version))[0] ?? null;
  }

  /** Up to `max` work items for an agent in one pass (Leasing.getWorkBatch). */
  getWorkBatch(agent: Agent, max: number, version?: string, options?: WorkRequestOptions): Promise<WorkItem[]> {
    return this.units.leasing.getWorkBatch(agent, max, version, options);
  }

  /** Store an agent's result, bound to its lease (ResultIntake.submit). */
  submit(agent: Agent, input: ResultSubmission): Promise<SubmitResponse> {
    return this.units.intake.submit(agent, input);
  }

  // ------------------------------------------------------------------ agents and tokens

  /** Register an agent; returns the token (shown once, stored only as a hash). */
  createAgent(name: string, groups: readonly string[] = []): Promise<{ agent: Agent; token: string }> {
    return this.units.agents.create(name, groups);
  }

  /**
   * Remove an agent: its token stops working, so its live leases can never be completed; they
   * are given back at once (as `releaseLeases` does) instead of holding their hosts until their
   * deadlines (`leaseSeconds`, 15 min by default). `released` counts them.
   */
  async deleteAgent(id: string): Promise<{ deleted: boolean; released: number }> {
    const deleted = await this.units.agents.delete(id);
    if (!deleted) return { deleted, released: 0 };
    const now = this.now();
    const live = (await this.store.listLeases({ agentId: id })).filter((lease) => lease.deadline > now).map((lease) => lease.id);
    const released = live.length === 0 ? 0 : await this.releaseLeases(id, live);
    if (released > 0) this.log.info({ agent: id, released }, "a removed agent's leases went back to the queue");
    return { deleted, released };
  }

  /** The agent holding this bearer token, or undefined. */
  authenticateAgent(token: string): Promise<Agent | undefined> {
    return this.units.agents.authenticate(token);
  }

  /** The agent registry with live figures: in flight, results in the last hour. */
  listAgents(): Promise<ListedAgent[]> {
    return this.units.agents.list();
  }

  /** Create an admin token; returns the token (shown once). */
  createAdminToken(name: string): Promise<{ id: string; name: string; token: string; createdAt: number }> {
    return this.units.agents.createAdminToken(name);
  }

  authenticateAdmin(token: string): Promise<boolean> {
    return this.units.agents.authenticateAdmin(token);
  }

  /** An agent's groups (vantage points), sorted; empty when it has none. */
  groupsOf(agentId: string): readonly string[] {
    return this.units.agents.groupsOf(agentId);
  }

  /** Replace an agent's groups (an empty list removes them). `PB_ERR_NOT_FOUND` for an unknown agent. */
  setAgentGroups(agentId: string, groups: readonly string[]): Promise<string[]> {
    return this.units.agents.setGroups(agentId, groups);
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
      const { scope, policies, leasing, agents, learning } = this.units;
      const now = this.now();
      const expired = await leasing.requeueExpired(now);
      await scope.reload();
      await leasing.resolveNamesIfDue();
      await policies.reload();
      await leasing.persistCycle();
      await leasing.syncSharedCycle(now);
      await agents.sweep(now);
      await leasing.releaseStrandedWork();
      await learning.sweep(now, options.learn === true);
      return { expired };
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Give back leases `agentId` holds and will not finish (POST /api/v1/agent/release): each is
   * made due now and requeued as an expired lease is (its round and host session kept), at once
   * instead of at its deadline. Returns how many of `ids` were this agent's live leases.
   */
  async releaseLeases(agentId: string, ids: readonly string[]): Promise<number> {
    const now = this.now();
    let released = 0;
    for (const id of new Set(ids)) {
      const lease = await this.store.getLease(id);
      if (lease === undefined || lease.agentId !== agentId || lease.deadline <= now) continue;
      if (await this.store.renewLease(id, now)) released++;
    }
    if (released > 0) await this.units.leasing.requeueExpired(now);
    return released;
  }

  /**
   * Give back the live leases `agentId` was handed under the lease requests `keys`, whose answers
   * it never received (the agent names them in `portbandit-work-abandoned`): queued again now, as
   * `releaseLeases` does. Returns how many were given back.
   */
  async releaseAbandoned(agentId: string, keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const wanted = new Set(keys);
    const now = this.now();
    const ids = (await this.store.listLeases({ agentId }))
      .filter((lease) => lease.requestKey !== undefined && wanted.has(lease.requestKey) && lease.deadline > now)
      .map((lease) => lease.id);
    return ids.length === 0 ? 0 : this.releaseLeases(agentId, ids);
  }

  /** Resolve after `ms` or as soon as new events are stored, whichever comes first. */
  waitForEvents(ms: number): Promise<void> {
    return this.units.waiters.wait(ms);
  }

  /** Tell long-lived streams to end (before the HTTP server waits for its connections). */
  beginClose(): void {
    this.closing = true;
    this.units.waiters.wake();
  }

  /** Resolve once finished visits queued for learning have been learned (learning runs after the submit is answered). */
  learningSettled(): Promise<void> {
    return this.units.learner.settled();
  }

  /** Flush everything (cycle, activity, learning) before the store closes. */
  async close(): Promise<void> {
    this.beginClose();
    await this.units.learner.settled();
    await this.units.leasing.persistCycle();
    await this.units.agents.flushActivity();
    await this.units.learning.close(this.now());
    this.screenshots.close();
  }

  /**
   * Hosts handed out and scanned this cycle per tag ("" = untagged) and the tag's address count:
   * counted by this process since it started or the cycle began; with several coordinators on one
   * PostgreSQL (each of which hands out and takes in only part of the cycle) counted in the store
   * (`storedCoverageRows`), at most every 5 s.
   */
  async cycleCoverage(): Promise<CycleCoverageRow[]> {
    const space = this.units.scope.addressSpace;
    if (!this.shared) return this.units.coverage.report(space);
    const progress = this.progress();
    const now = this.now();
    const cached = this.coverageCache;
    if (cached !== undefined && cached.cycle === progress.cycle && cached.space === space && now - cached.at < FINISHED_RECOUNT_MS)
      return cached.rows;
    const tags = [...space.sizeByTag().keys()];
    const empty = new Map<string, number>();
    const counted =
      progress.dispensed === 0
        ? { scanned: empty, pending: empty, inFlight: empty }
        : {
            ...(await this.visitsUnderWay(progress.cycle, progress.startedAt, tags)),
            scanned: await this.scannedPerTag(progress.startedAt, tags),
          };
    const rows = storedCoverageRows(space, counted);
    this.coverageCache = { cycle: progress.cycle, at: now, space, rows };
    return rows;
  }

  /**
   * Visits of the current cycle that are finished (no round left), over every tag. One process
   * counts them as their last rounds are stored. With several coordinators on one PostgreSQL each
   * sees only the rounds submitted to it, so there the store answers (the visits stored since the
   * cycle began less those with a later round in flight or queued), at most every 5 s.
   */
  async cycleVisitsFinished(): Promise<number> {
    if (!this.shared) return this.units.coverage.finishedTotal;
    const progress = this.progress();
    const now = this.now();
    const cached = this.finishedCache;
    if (cached !== undefined && cached.cycle === progress.cycle && now - cached.at < FINISHED_RECOUNT_MS) return cached.value;
    let value = 0;
    if (progress.dispensed > 0) {
      const under = await this.visitsUnderWay(progress.cycle, progress.startedAt, []);
      value = Math.max(0, under.scanned - under.pendingTotal);
    }
    this.finishedCache = { cycle: progress.cycle, at: now, value };
    return value;
  }

  /** The strategy's own belief of the open-port mass its budget covers, per policy (coverage.ts, estimateCoverage). */
  estimatedCoverage(): Array<{ tag: string; estimate: number }> {
    return estimateCoverage(this.units.learner, this.units.policies);
  }
}

/** The installation's seed (permutation and strategies), created on first open. */
async function installSeed(store: Store, log: Logger, now: () => number): Promise<string> {
  const install = await store.getDocument<InstallDocument>('coordinator', 'install');
  if (install) return install.value.seed;
  const seed = randomBytes(16).toString('hex');
  try {
    await store.putDocument<InstallDocument>('coordinator', 'install', { seed, createdAt: now() }, { at: now(), expectedRevision: 0 });
    log.info({ seed }, 'new installation: permutation and strategy seed created');
    return seed;
  } catch (error) {
    // Another process (serve and the CLI started together) created it first: use theirs.
    if (!isPortbanditError(error, 'PB_ERR_CONFLICT')) throw error;
    return (await store.getDocument<InstallDocument>('coordinator', 'install'))!.value.seed;
  }
}

/**
 * `PortRanges.fromPorts(ports).toString()` for a sorted list (a lease's ports, sorted when
 * handed out), without its intermediate arrays: one per submit.
 */
export function rangesOfSorted(ports: readonly number[]): string {
  let out = '';
  for (let i = 0; i < ports.length;) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1]! <= ports[j]! + 1) j++;
    out += `${out === '' ? '' : ','}${ports[i] === ports[j] ? ports[i] : `${ports[i]}-${ports[j]}`}`;
    i = j + 1;
  }
  return out;
}
