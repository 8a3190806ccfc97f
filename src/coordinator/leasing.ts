import { PortbanditError, isPortbanditError, type Logger, PortRanges } from '../core/index.js';
import { HostSession, type HostContext } from '../../strategies/index.js';
import {
  type Agent,
  type Lease,
  type QueuedWork,
  type QueuedWorkInput,
  type ScanDocument,
  type Store,
  latestAnsweredScan,
  latestAnsweredScanFrom,
} from '../store/index.js';
import { contextPrefix, parseAddress } from './address.js';
import type { AgentRegistry } from './agent-registry.js';
import { Cycle, type CycleDocument, type CycleProgress } from './cycle.js';
import type { CycleCoverage } from './coverage.js';
import { mayScan, vantageGroup } from './groups.js';
import type { Learner } from './learner.js';
import { type LeaseSession, type StoredLeaseSession, readLeaseSession, storeLeaseSession, storedPortRanges } from './lease-session.js';
import type { CoordinatorMetrics } from './metrics.js';
import { DEFAULT_POLICY_KEY, rechecksSilent } from './policy.js';
import type { PolicyBook } from './policy-book.js';
import { MAX_LIKELY_PORTS, MAX_WORK_BATCH_PORTS, PROTOCOL_VERSION, type WorkItem } from '../protocol/index.js';
import type { ScopeService } from './scope-service.js';
import { generateId } from './tokens.js';
import { knownOpenOf, silentOf, visitOfLease } from './visit.js';

/** A work item whose lease write was issued (not yet awaited). */
interface Leased {
  /** The item with its ports as `portRanges` (and `ports` empty); `wireItem` makes it what the agent reads. */
  readonly item: WorkItem;
  readonly ports: PortRanges;
  readonly written: Promise<void>;
  /** The queue item it was made from (a shared queue settles it when the lease is written). */
  readonly queueId?: string;
  /** A later round of a visit begun by a manual rescan. */
  readonly manualRound?: true;
}

/** Where a manual rescan's visit is: its first round leased, a later round leased, or its next round queued. */
type RescanRound = 'first' | 'later' | 'waiting';

/** What a rescan request did: the work it queued, and the addresses being scanned now (not queued). */
export interface RescanOutcome {
  readonly queued: QueuedWork[];
  readonly scanning: string[];
}

/** Live-lease lookups a rescan request runs at once (one per address). */
const RESCAN_LOOKUPS = 64;

/** Work hand-out attempts per request before answering "no work" (skipped hosts, zero budgets). */
const MAX_ATTEMPTS = 32;

/** Addresses a coordinator claims from the shared cycle at a time (into the shared queue). */
const SHARED_CYCLE_BLOCK = 64;

/** Compare-and-set attempts on the shared cycle before giving up for this request. */
const SHARED_CYCLE_RETRIES = 16;
/** Claims of the shared cycle one lease request may make when others dequeue what it claimed. */
const SHARED_CLAIMS_PER_REQUEST = 8;
/** The largest block one claim takes for the requests waiting on it (one transaction of queue rows). */
const SHARED_CYCLE_BLOCK_MAX = 4096;

/** What leasing needs from the rest of the coordinator. */
export interface LeasingParts {
  readonly store: Store;
  readonly scope: ScopeService;
  readonly policies: PolicyBook;
  readonly agents: AgentRegistry;
  readonly learner: Learner;
  readonly coverage: CycleCoverage;
  readonly metrics: Pick<CoordinatorMetrics, 'workItems' | 'leasesExpired'>;
  readonly log: Logger;
  readonly now: () => number;
  /** The install seed: the permutation key of every cycle and the strategies' seed. */
  readonly seed: string;
  readonly leaseSeconds: number;
  /** Several coordinators share the store (PostgreSQL): one cycle, claimed a block at a time. */
  readonly shared: boolean;
}

/** How the asking agent reads work items. */
export interface WorkRequestOptions {
  /**
   * The agent reads `portRanges` (it said so with the header `Portbandit-Features: port-ranges`): items carry
   * their ports as a range spec and `ports` empty. Otherwise `ports` lists every port.
   */
  readonly portRanges?: boolean;
  /** The agent reads `silent` (header feature `silent-rounds`); otherwise items never carry it. */
  readonly silentRounds?: boolean;
  /** The agent reads `likely` (header feature `likely-ports`); otherwise items never carry it. */
  readonly likelyPorts?: boolean;
  /** The agent reads `skipDetection` and sends `silent` ports (header feature `skip-silent`); otherwise items never carry it. */
  readonly skipSilent?: boolean;
  /** The request's key (`portbandit-work-request`), stored with its leases. */
  readonly requestKey?: string;
}

/** The ports of `list` that a round hands out, once each, ascending. */
function withinRound(list: readonly number[], ports: PortRanges): number[] {
  return [...new Set(list)].filter((p) => ports.has(p)).sort((a, b) => a - b);
}

/** A work item as the agent reads it: with `portRanges` for an agent that asked for them, else the port list. */
function wireItem(leased: Leased, options: WorkRequestOptions): WorkItem {
  // An agent before `silent` or `likely` refuses items with a property its schema does not know.
  const { silent, likely, skipDetection, ...rest } = leased.item;
  const base = {
    ...rest,
    ...(options.silentRounds && silent ? { silent } : {}),
    ...(options.likelyPorts && likely ? { likely } : {}),
    // On every item (empty too): its presence tells the agent this coordinator stores `silent` ports.
    ...(options.skipSilent ? { skipDetection: skipDetection ?? [] } : {}),
  };
  if (options.portRanges) return base;
  const { portRanges: _spec, ...item } = base;
  return { ...item, ports: leased.ports.toArray() };
}

/**
 * Cycle and leasing: the permutation walk over the scope (one cycle at a time, paced by the
 * default policy's period), the work queue (manual rescans, follow-up rounds, expired leases,
 * work deferred to other agent groups), and the leases that hand work to agents. A lease
 * carries its host session, so any process can take the visit's next round.
 */
/** The ports of a queued item's canonical range spec (unreadable: counted as the whole space, the cautious size). */
function queuedPortCount(spec: string): number {
  try {
    return PortRanges.parse(spec).size;
  } catch {
    return 65_535;
  }
}

export class Leasing {
  private cycle: Cycle;
  /** False only after a dequeue found the queue empty and nothing was enqueued since. */
  private queueMaybeNonEmpty = true;
  /**
   * Ports of the largest item the last dequeue took (halving when smaller ones follow): how many
   * items a dequeue takes so that a batch ends near MAX_WORK_BATCH_PORTS. Every dequeued item is
   * served, so the count is chosen before it. Whole-port follow-ups (64,535 ports after a first
   * look) come 17 to an answer, not all the queue holds; 100-port items soon come `max` at once.
   * Starts at the whole port space: the first answer never overshoots.
   */
  private queuedItemPorts = 65_535;
  /** Cycle addresses put into the queue for another group's agents, not yet leased (no second copy). */
  private readonly deferredIps = new Set<string>();
  /** Restrictions no registered agent can serve, already logged this cycle. */
  private readonly unroutableLogged = new Set<string>();
  private readonly store: Store;
  private readonly scope: ScopeService;
  private readonly policies: PolicyBook;
  private readonly agents: AgentRegistry;
  private readonly learner: Learner;
  private readonly coverage: CycleCoverage;
  private readonly metrics: LeasingParts['metrics'];
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly seed: string;
  private readonly leaseSeconds: number;
  private readonly shared: boolean;

  /** `saved`: the stored cycle document (undefined: the first cycle starts now). */
  constructor(parts: LeasingParts, saved: CycleDocument | undefined) {
    ({
      store: this.store,
      scope: this.scope,
      policies: this.policies,
      agents: this.agents,
      learner: this.learner,
      coverage: this.coverage,
      metrics: this.metrics,
      log: this.log,
      now: this.now,
      seed: this.seed,
      leaseSeconds: this.leaseSeconds,
      shared: this.shared,
    } = parts);
    this.cycle = Cycle.resume(this.seed, saved, this.scope.scopeItems, this.now());
  }

  // ------------------------------------------------------------------ cycle

  progress(): CycleProgress {
    return this.cycle.progress();
  }

  /** The number of the cycle being walked. */
  get cycleNumber(): number {
    return this.cycle.number;
  }

  private inFlightCheck = { at: -Infinity, busy: false };

  /**
   * Whether a finished cycle whose period is over must wait because visits are still being
   * scanned (live leases: cycle work and its follow-ups, rescans). Without the wait a period
   * shorter than a cycle's scanning starts a second visit of every address still in flight, and
   * the leases pile up cycle after cycle (seen in the lab: 97 leases in flight for 32 addresses
   * after 8 cycles of 90 s, each taking ~140 s to scan). An expired lease does not hold the cycle.
   * Asked of the store at most once a second; a lease this coordinator hands out makes the cached
   * answer busy (an unpaced cycle over a small scope was begun again within that second while
   * the leases of the one just begun were live). (Several coordinators on PostgreSQL already
   * refuse a second lease per address.)
   */
  private async visitsInFlight(): Promise<boolean> {
    const now = this.now();
    const at = this.nextCycleAt();
    if (at !== undefined && now < at) return false; // the period decides first
    if (now - this.inFlightCheck.at < 1000) return this.inFlightCheck.busy;
    const busy = (await this.store.countLeases({ liveAt: now })) > 0;
    this.inFlightCheck = { at: now, busy };
    return busy;
  }

  /** When the paced cycle may start its next round over the scope (undefined while one runs). */
  nextCycleAt(): number | undefined {
    const period = this.policies.periodSeconds();
    return period === undefined ? undefined : this.cycle.nextStartAt(period * 1000);
  }

  /** Abandon the current cycle and start the next over the current scope. */
  async restartCycle(): Promise<CycleProgress> {
    if (this.scope.resolvesNames) await this.scope.resolveNames();
    if (this.shared) {
      await this.updateSharedCycle((cycle, now) => {
        cycle.restart(this.scope.scopeItems, now);
        return [];
      });
      return this.cycle.progress();
    }
    this.cycle.restart(this.scope.scopeItems, this.now());
    await this.persistCycle();
    return this.cycle.progress();
  }

  /** Write the cycle's position when it moved (one coordinator; a shared cycle is always written at once). */
  async persistCycle(): Promise<void> {
    // A shared cycle is written only by compare-and-set (updateSharedCycle), never blindly.
    if (this.shared) return;
    if (this.cycle.dirty) await this.store.putDocument('coordinator', 'cycle', this.cycle.take(), { at: this.now() });
  }

  /** Shared: where the common walk is (for progress and metrics), as the others moved it. */
  async syncSharedCycle(now: number): Promise<void> {
    if (!this.shared) return;
    const saved = await this.store.getDocument<CycleDocument>('coordinator', 'cycle');
    if (saved) this.cycle = Cycle.resume(this.seed, saved.value, this.scope.scopeItems, now);
  }

  /** Names are resolved at a cycle's end, once its period is over (see ScopeService.resolveNamesIfDue). */
  resolveNamesIfDue(): Promise<void> {
    return this.scope.resolveNamesIfDue(this.cycle, () => this.nextCycleAt());
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
    await this.scope.reload();
    for (let attempt = 0; attempt < SHARED_CYCLE_RETRIES; attempt++) {
      const now = this.now();
      const saved = await this.store.getDocument<CycleDocument>('coordinator', 'cycle');
      const cycle = Cycle.resume(this.seed, saved?.value, this.scope.scopeItems, now);
      const work = change(cycle, now);
      if (!cycle.dirty) {
        this.cycle = cycle;
        return 0;
      }
      try {
        await this.store.putDocument('coordinator', 'cycle', cycle.take(), {
          at: now,
          expectedRevision: saved?.revision ?? 0,
          enqueue: work,
        });
        this.cycle = cycle;
        return work.length;
      } catch (error) {
        if (!isPortbanditError(error, 'PB_ERR_CONFLICT')) throw error;
      }
    }
    this.log.warn('the shared cycle kept changing under this coordinator; no block claimed this time');
    return 0;
  }

  /** This process's running claim of the shared cycle, and the one the requests arriving meanwhile wait for. */
  private claimRunning: Promise<number> | undefined;
  private claimNext: { size: number; promise: Promise<number> } | undefined;

  /**
   * Claim the next block of the shared cycle into the shared queue; returns how many addresses.
   * One claim at a time per process, and the lease requests that arrive while one runs share the
   * next one, sized for all of them (capped): concurrent requests each racing their own
   * compare-and-set on the cycle document lost to each other until the retries ran out and
   * answered no work (943 of 1,006 leases empty in the bench's PostgreSQL closed loop, 1,000
   * agents), and claims queued one per request waited behind each other for seconds. Every
   * caller dequeues after its claim settles, from the queue the shared claim filled. Other
   * coordinators still race by compare-and-set.
   */
  private claimCycleBlock(size: number): Promise<number> {
    if (this.claimRunning === undefined) return this.startClaim(size);
    if (this.claimNext === undefined) {
      const next: { size: number; promise: Promise<number> } = { size: 0, promise: Promise.resolve(0) };
      next.promise = this.claimRunning
        .catch(() => 0)
        .then(() => {
          this.claimNext = undefined;
          return this.startClaim(next.size);
        });
      this.claimNext = next;
    }
    this.claimNext.size = Math.min(SHARED_CYCLE_BLOCK_MAX, this.claimNext.size + size);
    return this.claimNext.promise;
  }

  private startClaim(size: number): Promise<number> {
    const claim = this.claimCycleBlockNow(Math.min(SHARED_CYCLE_BLOCK_MAX, size)).finally(() => {
      if (this.claimRunning === claim) this.claimRunning = undefined;
    });
    this.claimRunning = claim;
    return claim;
  }

  private claimCycleBlockNow(size: number): Promise<number> {
    return this.updateSharedCycle((cycle, now) => {
      const period = this.policies.periodSeconds();
      const work: QueuedWorkInput[] = [];
      while (work.length < size) {
        // A block does not run into the next cycle: its addresses wait for the next claim.
        if (work.length > 0 && cycle.atEnd) break;
        const addr = cycle.next(this.scope.addressSpace, this.scope.scopeItems, now, period !== undefined ? period * 1000 : 0);
        if (!addr) break;
        work.push({ ip: addr.ip, tags: [...addr.tags], reason: 'cycle', enqueuedAt: now, cycle: addr.cycle });
      }
      return work;
    });
  }

  // ------------------------------------------------------------------ queue

  /**
   * Queue manual rescans (served before the cycle). Addresses outside the scope are refused.
   * Addresses being scanned now (a live lease) are not queued: the scan under way is their
   * rescan (`scanning`; one queued meanwhile is dropped when its turn comes).
   */
  async requestRescan(ips: readonly string[]): Promise<RescanOutcome> {
    const now = this.now();
    const hits = ips.map((ip, i) => {
      const hit = this.scope.lookup(ip);
      if (!hit)
        throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `${JSON.stringify(ip)} is not in the scope (or is blocklisted)`, {
          where: `ips[${i}]`,
        });
      return hit;
    });
    const scanning = new Set<string>();
    const unique = [...new Set(hits.map((h) => h.ip))];
    for (let i = 0; i < unique.length; i += RESCAN_LOOKUPS) {
      const slice = unique.slice(i, i + RESCAN_LOOKUPS);
      const live = await Promise.all(slice.map((ip) => this.hasLiveLease(ip, now)));
      slice.forEach((ip, k) => live[k] && scanning.add(ip));
    }
    const items = hits.flatMap((hit) => {
      if (scanning.has(hit.ip)) return [];
      // Reserved to the host's agent groups at once (no detour through an agent that may not take it).
      const groups = this.policies.groupsInUse() ? this.policies.allowedGroups(hit.tags) : undefined;
      return [
        {
          ip: hit.ip,
          tags: hit.tags,
          reason: 'manual' as const,
          enqueuedAt: now,
          ...(groups !== undefined ? { groups: [...groups] } : {}),
        },
      ];
    });
    const queued = items.length > 0 ? await this.store.enqueueWork(items) : [];
    // Only once committed: a getwork of the meantime may have seen the queue empty.
    this.queueMaybeNonEmpty = true;
    return { queued, scanning: [...scanning] };
  }

  /** Work was queued through another path (a follow-up round stored with a result): look in the queue again. */
  noteEnqueued(): void {
    this.queueMaybeNonEmpty = true;
  }

  /** The agents' groups when `releaseStrandedWork` last looked (it looks again when they change). */
  private strandedCheckedFor: string | undefined;

  /**
   * Queue items reserved to agent groups that no registered agent belongs to any more (an agent
   * deleted, or its groups changed, while a visit's next round from that vantage point waited)
   * would wait forever: no agent dequeues them. Once the agents' groups change, such items are
   * queued again for the groups the policies allow now (any agent when none), or dropped with a
   * warning when those have no agent either (as a cycle address is skipped then). Looks at the
   * queue's first 10,000 items. A coordinator killed between an item's removal and its
   * re-queueing loses that round (the visit's stored rounds stay). Returns how many moved.
   */
  async releaseStrandedWork(): Promise<number> {
    const signature = this.agents.groupsSignature();
    if (signature === this.strandedCheckedFor) return 0;
    let moved = 0;
    for (const item of await this.store.listQueuedWork(10_000)) {
      if (item.groups === undefined || this.agents.routable(item.groups)) continue;
      // Another coordinator (or an agent of a group just added) may have taken it meanwhile.
      if (!(await this.store.removeQueuedWork(item.id))) continue;
      const { id: _id, groups: _groups, ...rest } = item;
      const allowed = this.policies.groupsInUse() ? this.policies.allowedGroups(item.tags) : undefined;
      if (allowed !== undefined && !this.agents.routable(allowed)) {
        this.log.warn({ ip: item.ip, reason: item.reason, groups: item.groups }, 'queued work for agent groups without agents; dropped');
        continue;
      }
      await this.store.enqueueWork([{ ...rest, ...(allowed !== undefined ? { groups: [...allowed] } : {}) }]);
      moved++;
    }
    // Only once the queue was read through: a store that failed meanwhile is asked again next sweep.
    this.strandedCheckedFor = signature;
    if (moved > 0) {
      this.queueMaybeNonEmpty = true;
      this.log.info({ moved }, 'queued work for agent groups without agents queued again for the groups allowed now');
    }
    return moved;
  }

  /** Put every lease past its deadline back in the queue; returns how many. */
  async requeueExpired(now: number): Promise<number> {
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
    return expired;
  }

  /**
   * A cycle address the asking agent may not scan: queued for an agent of its groups (once per
   * address until leased), or skipped this cycle when no registered agent belongs to them.
   */
  private deferCycleAddress(ip: string, tags: readonly string[], cycle: number, allowed: readonly string[], out: QueuedWorkInput[]): void {
    if (allowed.length === 0 || !this.agents.routable(allowed)) {
      const key = `${allowed.join(',')}|${tags.join(',')}`;
      if (!this.unroutableLogged.has(key)) {
        this.unroutableLogged.add(key);
        this.log.warn(
          { tags, groups: allowed, cycle },
          allowed.length === 0
            ? "hosts whose tags' policies name no common agent group are not scanned"
            : 'no registered agent belongs to the groups allowed for these hosts: skipped this cycle',
        );
      }
      return;
    }
    if (this.deferredIps.has(ip)) return;
    this.deferredIps.add(ip);
    out.push({ ip, tags: [...tags], reason: 'cycle', enqueuedAt: this.now(), cycle, groups: [...allowed] });
  }

  // ------------------------------------------------------------------ work

  /**
   * Up to `max` work items for an agent in one pass: queued work first, then the cycle. Every
   * lease is issued in the same turn of the event loop and awaited together, so the store
   * commits them as one group (the SQLite store's group commit: one transaction for the burst).
   * A batch stops at the end of the cycle rather than start the next one inside it, so the
   * cycle's addresses in one batch are distinct. Items whose lease could not be stored are left
   * out (an error only when none could). A batch also stops once its items hold
   * MAX_WORK_BATCH_PORTS ports (the route then answers `more`).
   */
  async getWorkBatch(agent: Agent, max: number, version?: string, options: WorkRequestOptions = {}): Promise<WorkItem[]> {
    this.agents.touch(agent.id, version, undefined);
    const issued: Leased[] = [];
    const pending: QueuedWork[] = [];
    // Agent groups: with a policy naming groups, work goes only to agents of its groups; work
    // for other groups is queued for them (`deferred`, written with this batch's leases). With
    // agents in groups but no policy naming any, a visit's later rounds still stay at its vantage
    // point (its first agent's group): a follow-up from outside must not be finished from inside.
    const routing = this.policies.groupsInUse() || this.agents.anyGroups();
    const agentGroups = this.agents.groupsOf(agent.id);
    const deferred: QueuedWorkInput[] = [];
    let queueDry = false;
    let fromCycle = 0;
    let misses = 0;
    let claims = 0;
    // Ports handed out so far: no new work starts once they reach MAX_WORK_BATCH_PORTS.
    let ports = 0;
    // Addresses leased by this batch, to their visit's cycle: a rescan queued for one of them, or
    // the cycle reaching one a rescan took, would scan the host twice at once.
    const batchIps = new Map<string, number>();
    // Of those, the later rounds of manual rescans' visits (their first round is stored).
    const batchLaterRounds = new Set<string>();
    // The latest scans of dequeued hosts whose visit starts here, read ahead (readLatestAhead).
    const latestReads = new Map<string, Promise<ScanDocument | undefined>>();
    // Whether visits are in flight, asked before this batch leases anything (the answer is
    // cached, and a lease of this batch's other than a rescan's marks it busy): a rescan leased
    // by this batch is of the cycle about to begin and must not hold it. Asked later, the answer
    // would depend on whether the store had committed this batch's leases yet.
    if (this.cycle.atEnd && !this.shared) await this.visitsInFlight();
    // Every dequeued item is served (it left the queue), whatever the misses or the ports.
    while (issued.length < max && (pending.length > 0 || (misses < MAX_ATTEMPTS && ports < MAX_WORK_BATCH_PORTS))) {
      // Skip the dequeue transaction while the queue is known to be empty (the common case:
      // every enqueue goes through this process, and each sweep re-arms the check). A shared
      // queue is filled by other coordinators too: always asked. With agent groups in use, the
      // queue may hold items of other groups: it is only dry for this batch, not known empty.
      if (pending.length === 0 && (this.queueMaybeNonEmpty || this.shared) && !queueDry) {
        const groups = routing ? agentGroups : undefined;
        pending.push(...this.readLatestAhead(await this.dequeue(this.dequeueCount(max - issued.length, ports), groups), latestReads));
        // Shared: the cycle reaches agents through the shared queue, a claimed block at a time.
        // Requests that did not claim may dequeue the block this one claimed before it does (their
        // own first dequeue): then claim again, a few times at most (an empty answer with the
        // cycle far from done came back for ~1 lease request of 64 in 100 in the benchmark).
        while (pending.length === 0 && this.shared && claims < SHARED_CLAIMS_PER_REQUEST) {
          claims++;
          if ((await this.claimCycleBlock(Math.max(SHARED_CYCLE_BLOCK, max - issued.length))) === 0) claims = SHARED_CLAIMS_PER_REQUEST;
          else
            pending.push(...this.readLatestAhead(await this.dequeue(this.dequeueCount(max - issued.length, ports), groups), latestReads));
        }
        if (pending.length === 0) {
          if (routing) queueDry = true;
          else this.queueMaybeNonEmpty = false;
        }
      }
      const queued = pending.shift();
      let leased: Leased | null;
      if (queued) {
        try {
          leased = await this.leaseQueued(agent, queued, routing, agentGroups, deferred, options.requestKey, batchIps, latestReads);
        } catch (error) {
          // The request fails: the items it dequeued and did not lease go back at once, not
          // after their hold. (Nothing else in this loop throws while it holds dequeued items.)
          await this.releaseQueued([queued.id, ...pending.map((q) => q.id)]);
          throw error;
        }
        if (leased) leased = { ...leased, queueId: queued.id };
        else this.settleQueued(queued.id);
      } else if (this.shared) break;
      else {
        // The next address would open a new cycle: its addresses wait for the next request.
        if (fromCycle > 0 && this.cycle.atEnd) break;
        if (this.cycle.atEnd) {
          await this.resolveNamesIfDue();
          if (await this.visitsInFlight()) break;
        }
        const period = this.policies.periodSeconds();
        const addr = this.cycle.next(this.scope.addressSpace, this.scope.scopeItems, this.now(), period !== undefined ? period * 1000 : 0);
        if (!addr) break;
        if (this.coverage.begin(addr.cycle)) {
          this.unroutableLogged.clear();
          this.adopted.clear();
        }
        // A manual rescan (or another visit this batch leased) is scanning this address now: no
        // second lease. Its visit stands for the cycle's when it is of this cycle (not when this
        // batch began the next cycle after it).
        const under = await this.visitUnderWay(addr.ip, batchIps, batchLaterRounds);
        if (under !== undefined) {
          this.log.info(
            { ip: addr.ip, cycle: addr.cycle, visitCycle: under.cycle },
            'this address is being scanned already; no second lease',
          );
          if (under.cycle === addr.cycle) {
            this.coverage.handedOut(addr.tags);
            // A visit past its first round was not counted as scanned when that round was stored.
            if (under.pastFirstRound) this.coverage.scanned(addr.tags);
            this.adopted.add(addr.ip);
          }
          fromCycle++;
          continue;
        }
        const allowed = routing ? this.policies.allowedGroups(addr.tags) : undefined;
        if (!mayScan(agentGroups, allowed)) {
          this.deferCycleAddress(addr.ip, addr.tags, addr.cycle, allowed!, deferred);
          fromCycle++;
          misses++;
          continue;
        }
        leased = await this.startVisit(
          agent,
          addr.ip,
          addr.tags,
          'cycle',
          addr.cycle,
          vantageGroup(agentGroups, allowed),
          options.requestKey,
        );
        if (leased) {
          fromCycle++;
          this.coverage.handedOut(addr.tags);
        }
      }
      if (leased) {
        issued.push(leased);
        batchIps.set(leased.item.ip, leased.item.cycle);
        if (leased.manualRound) batchLaterRounds.add(leased.item.ip);
        // Visits in flight from now on (a rescan's first round excepted: the cycle checks its
        // address itself): a check cached before these leases must not begin the cycle again.
        if (leased.item.reason !== 'manual') this.inFlightCheck = { at: this.now(), busy: true };
        ports += leased.ports.size;
      } else misses++;
    }
    const deferring = deferred.length > 0 ? this.store.enqueueWork(deferred) : undefined;
    const outcomes = await Promise.allSettled(issued.map((l) => l.written));
    if (deferring) {
      try {
        await deferring;
        this.queueMaybeNonEmpty = true;
      } catch (error) {
        for (const d of deferred) this.deferredIps.delete(d.ip);
        this.log.error(
          { err: error, addresses: deferred.length },
          'addresses for other agent groups could not be queued; they wait for the next cycle',
        );
      }
    }
    const items: WorkItem[] = [];
    const failed: Array<{ ip: string; error: unknown }> = [];
    /** Queue items whose lease could not be written: given back now, not after their hold. */
    const unleased: string[] = [];
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
        const queueId = issued[i]!.queueId;
        if (queueId !== undefined) unleased.push(queueId);
        return;
      }
      this.agents.touch(agent.id, undefined, 'workItems');
      this.metrics.workItems.inc({ reason: item.reason });
      // Each round of a rescan's visit: the cycle's check reads the deadline of the round under way.
      if (item.reason === 'manual' && item.round === 0) this.noteRescanLeased(item.ip, item.cycle, item.deadline, 'first');
      else if (issued[i]!.manualRound) this.noteRescanLeased(item.ip, item.cycle, item.deadline, 'later');
      items.push(wireItem(issued[i]!, options));
    });
    await this.releaseQueued(unleased);
    if (failed.length > 0 && items.length === 0) throw failed[0]!.error;
    for (const f of failed) this.log.error({ err: f.error, ip: f.ip }, 'a lease could not be stored; its work item is not handed out');
    return items;
  }

  /**
   * Starts reading the latest scans of the dequeued items whose visit starts in this batch
   * (not a visit's later round, which carries its session), all at once: a store that answers
   * reads made together with one query (PostgreSQL: one round trip for a batch's hosts instead
   * of one per host, as the batch reaches each) then reads them together. Not for a store with
   * its own latest-answered read (SQLite: a local read per host is cheaper). A read that fails
   * fails the visit that uses it, as its own read would have; one never used is ignored.
   */
  private readLatestAhead(items: QueuedWork[], into: Map<string, Promise<ScanDocument | undefined>>): QueuedWork[] {
    if (this.store.latestAnsweredScan) return items;
    for (const item of items) {
      if (item.session !== undefined || into.has(item.ip)) continue;
      const read = this.store.getLatestScan(item.ip);
      read.catch(() => undefined);
      into.set(item.ip, read);
    }
    return items;
  }

  /** How many items the next dequeue takes: `want`, fewer when items of the last dequeue's size would pass the ports cap. */
  private dequeueCount(want: number, ports: number): number {
    const room = Math.max(1, MAX_WORK_BATCH_PORTS - ports);
    return Math.max(1, Math.min(want, Math.ceil(room / this.queuedItemPorts)));
  }

  /**
   * Take work from the queue. A shared queue hides what it hands out until the lease for it is
   * written, for about a lease's time: a coordinator killed in between does not lose it.
   */
  private async dequeue(n: number, groups?: readonly string[]): Promise<QueuedWork[]> {
    const hold = this.shared ? { holdMs: this.leaseSeconds * 1000 } : undefined;
    const taken = await (groups !== undefined
      ? hold
        ? this.store.dequeueWorkFor(n, groups, hold)
        : this.store.dequeueWorkFor(n, groups)
      : hold
        ? this.store.dequeueWork(n, hold)
        : this.store.dequeueWork(n));
    // Items without ports yet (rescans: the coordinator decides) say nothing about sizes.
    let largest = 0;
    for (const q of taken) if (q.portRanges !== undefined) largest = Math.max(largest, queuedPortCount(q.portRanges));
    if (largest > 0) this.queuedItemPorts = Math.max(largest, Math.floor(this.queuedItemPorts / 2), 1);
    return taken;
  }

  /**
   * Dequeued items whose lease was not written (it failed, or the request did): a shared queue
   * makes them visible again now. They used to wait out their hold, a whole lease time (900 s by
   * default, 20 s in the two-coordinator test).
   */
  private async releaseQueued(ids: readonly string[]): Promise<void> {
    if (!this.shared || ids.length === 0) return;
    // Awaited by the request (a failure path only): once it is answered, the items are visible,
    // so the agent's next request (or another coordinator's) can lease them.
    await this.store
      .releaseQueuedWork(ids)
      .catch((error: unknown) =>
        this.log.warn({ err: error, ids }, 'queue items could not be given back; they come back after their hold'),
      );
  }

  /** A dequeued item that will not be leased: a shared queue drops it now (else it comes back). */
  private settleQueued(id: string): void {
    if (!this.shared) return;
    this.store
      .removeQueuedWork(id)
      .catch((error: unknown) =>
        this.log.warn({ err: error, id }, 'a dropped queue item could not be removed; it comes back after its hold'),
      );
  }

  private async leaseQueued(
    agent: Agent,
    queued: QueuedWork,
    routing: boolean,
    agentGroups: readonly string[],
    deferred: QueuedWorkInput[],
    requestKey: string | undefined,
    batchIps: ReadonlyMap<string, number>,
    latestReads?: ReadonlyMap<string, Promise<ScanDocument | undefined>>,
  ): Promise<Leased | null> {
    // A rescan of an address being scanned (leased by this batch or live in the store): the
    // scan under way answers it, as a store holding one live lease per address refuses it.
    if (queued.reason === 'manual' && queued.session === undefined && (await this.beingScanned(queued.ip, batchIps))) {
      this.log.info({ ip: queued.ip }, 'address is being scanned; manual rescan dropped (the scan under way answers it)');
      return null;
    }
    const hit = await this.scope.lookupCurrent(queued.ip);
    if (!hit) {
      this.deferredIps.delete(queued.ip);
      this.log.info({ ip: queued.ip, reason: queued.reason }, 'queued target left the scope; dropped');
      return null;
    }
    const session =
      queued.portRanges !== undefined && queued.session ? readLeaseSession(queued.session, `queue item ${queued.id}`) : undefined;
    let allowed: readonly string[] | undefined;
    if (routing) {
      // Checked again here: the policies may have changed since the item was queued, and an
      // expired lease comes back without `groups` (its session names the visit's group).
      allowed = this.policies.allowedGroups(hit.tags);
      // The visit's vantage point, while some agent still belongs to it (else any allowed agent finishes the visit).
      if (
        session?.group !== undefined &&
        (allowed === undefined || allowed.includes(session.group)) &&
        this.agents.routable([session.group])
      )
        allowed = [session.group];
      if (!mayScan(agentGroups, allowed)) {
        if (allowed!.length === 0) {
          this.deferredIps.delete(queued.ip);
          this.log.warn(
            { ip: queued.ip, tags: hit.tags, reason: queued.reason },
            "queued target's tags name no common agent group; dropped",
          );
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
      const ports = storedPortRanges(queued.portRanges, `queue item ${queued.id}`);
      const leased = await this.lease(agent, hit.ip, hit.tags, ports, session, queued.round ?? 0, queued.reason, cycle, requestKey);
      return leased && session.manual === true ? { ...leased, manualRound: true } : leased;
    }
    const leased = await this.startVisit(
      agent,
      hit.ip,
      hit.tags,
      queued.reason,
      cycle,
      vantageGroup(agentGroups, allowed),
      requestKey,
      latestReads?.get(queued.ip),
    );
    // A cycle address queued for another agent group, or a block of the shared cycle (it reaches
    // agents through the queue), counts as handed out by the cycle when leased.
    if (leased && queued.reason === 'cycle' && (cycle === this.coverage.cycle || (this.shared && cycle === this.cycle.number))) {
      this.coverage.begin(cycle);
      this.coverage.handedOut(hit.tags);
    }
    return leased;
  }

  /** Addresses whose visit under way (a manual rescan) the cycle took for its own, this cycle. */
  private readonly adopted = new Set<string>();

  /**
   * Whether a stored round counts in the cycle's coverage (`finished`: the visit's last round):
   * a visit of the cycle does; a manual rescan only when the cycle reached its address while it
   * was scanned (else a host rescanned after the cycle's own visit counted twice, the dashboard
   * showing more hosts scanned than the tag has addresses).
   */
  coverageCounts(ip: string, session: LeaseSession, finished: boolean): boolean {
    if (session.manual !== true) return true;
    const adopted = this.adopted.has(ip);
    if (finished) this.adopted.delete(ip);
    return adopted;
  }

  /**
   * Addresses of manual rescans leased by this coordinator: their visit's cycle, where the visit
   * is (its first round leased, a later round leased, or its next round waiting in the queue),
   * and until when it is under way: the deadline of the round leased last, or, while a round
   * waits, a lease's time from when it was queued.
   */
  private readonly rescans = new Map<string, { readonly cycle: number; readonly deadline: number; readonly round: RescanRound }>();

  private noteRescanLeased(ip: string, cycle: number, deadline: number, round: RescanRound): void {
    if (this.rescans.size >= 1000) {
      const now = this.now();
      for (const [key, r] of this.rescans) if (r.deadline <= now) this.rescans.delete(key);
    }
    this.rescans.set(ip, { cycle, deadline, round });
  }

  /**
   * A round of a manual rescan's visit queued its next round (result intake): the visit stays
   * under way for the cycle's check, though no lease is live until that round is leased (it
   * may wait for an agent of its vantage group while agents of other groups ask for work).
   */
  noteRescanRoundQueued(ip: string, cycle: number): void {
    if (this.rescans.has(ip)) this.noteRescanLeased(ip, cycle, this.now() + this.leaseSeconds * 1000, 'waiting');
  }

  /** Whether `ip` is leased by this batch or has a live lease in the store. */
  private async beingScanned(ip: string, batchIps: ReadonlyMap<string, number>): Promise<boolean> {
    return batchIps.has(ip) || (await this.hasLiveLease(ip, this.now()));
  }

  /** Whether the store holds a lease of `ip` live at `now`. */
  private async hasLiveLease(ip: string, now: number): Promise<boolean> {
    return (await this.store.listLeases({ ip })).some((l) => l.deadline > now);
  }

  /**
   * The visit scanning `ip` (its cycle, and whether its first round is stored): one leased by
   * this batch, or a manual rescan this coordinator leased that is live in the store or whose
   * next round is queued; undefined when none. Only addresses with a recent rescan are looked up
   * in the store: the cycle's own leases are not checked (a restarted coordinator hands out again
   * addresses leased before it stopped).
   */
  private async visitUnderWay(
    ip: string,
    batchIps: ReadonlyMap<string, number>,
    batchLaterRounds: ReadonlySet<string>,
  ): Promise<{ readonly cycle: number; readonly pastFirstRound: boolean } | undefined> {
    const inBatch = batchIps.get(ip);
    if (inBatch !== undefined) return { cycle: inBatch, pastFirstRound: batchLaterRounds.has(ip) };
    const rescan = this.rescans.get(ip);
    if (rescan === undefined) return undefined;
    if (rescan.deadline > this.now() && (rescan.round === 'waiting' || (await this.beingScanned(ip, batchIps))))
      return { cycle: rescan.cycle, pastFirstRound: rescan.round !== 'first' };
    this.rescans.delete(ip);
    return undefined;
  }

  private async startVisit(
    agent: Agent,
    ip: string,
    tags: readonly string[],
    reason: WorkItem['reason'],
    cycle: number,
    group: string | undefined,
    requestKey: string | undefined,
    latestRead?: Promise<ScanDocument | undefined>,
  ): Promise<Leased | null> {
    const latest =
      group !== undefined
        ? await latestAnsweredScanFrom(this.store, ip, group, latestRead)
        : await latestAnsweredScan(this.store, ip, latestRead);
    const { family, value } = parseAddress(ip);
    const previousOpen = latest ? knownOpenOf(latest) : [];
    const previousSilent = latest ? silentOf(latest) : [];
    const host: HostContext = {
      ip,
      tags,
      prefix: contextPrefix(family, value),
      epoch: cycle,
      previousOpen,
      previousEpoch: latest ? latest.epoch : -1,
      probeable: PortRanges.ALL,
    };
    // The policy as it is now, after the read above: one deleted meanwhile (its strategy
    // dropped) made this lease answer 500.
    const key = this.policies.keyOf(tags);
    const strategy = this.learner.strategy(key);
    const session = new HostSession(strategy, host, this.seed);
    const ports = session.next();
    if (ports === null) return null;
    const blob: LeaseSession = {
      state: session.toJSON(),
      policy: key,
      epoch: cycle,
      prefix: host.prefix,
      previousOpen,
      previousEpoch: host.previousEpoch,
      ...(reason === 'manual' ? { manual: true as const } : {}),
      ...(previousSilent.length > 0 ? { previousSilent } : {}),
      ...(latest ? { baselineScanId: latest.scanId } : {}),
      ...(group !== undefined ? { group } : {}),
    };
    // A learner's order is its ranking for this host; a list's or a draw's says nothing of it.
    // Its head, for a host none of whose known open ports is in the round, is the round's
    // `likely` ports, kept in the session for the round's next lease should this one be given
    // back or expire.
    const ranges = PortRanges.fromPorts(ports);
    const likely = strategy.learns === false || previousOpen.some((p) => ranges.has(p)) ? [] : ports.slice(0, MAX_LIKELY_PORTS);
    return this.lease(agent, ip, tags, ranges, likely.length > 0 ? { ...blob, likely } : blob, 0, reason, cycle, requestKey);
  }

  /** A work item and its lease's write, issued but not awaited (getWorkBatch awaits a batch's writes together). */
  private lease(
    agent: Agent,
    ip: string,
    tags: readonly string[],
    ports: PortRanges,
    session: LeaseSession,
    round: number,
    reason: WorkItem['reason'],
    cycle: number,
    requestKey: string | undefined,
  ): Leased {
    const now = this.now();
    const portRanges = ports.toString();
    const visitId = session.visitId ?? session.priorScanId;
    // Stored compact: the ports and the session's port lists as range specs (a whole-port item
    // was a ~0.76 MB row of number lists; now a few hundred bytes).
    const lease: Lease<StoredLeaseSession> = {
      // A later round's id names its visit, so a retried submit of it is recognised as a duplicate.
      id: visitId !== undefined ? `${visitOfLease(visitId) ?? visitId}.${round}.${generateId('r').slice(2)}` : generateId('lease'),
      ip,
      agentId: agent.id,
      portRanges,
      tags: [...tags],
      session: storeLeaseSession(session),
      issuedAt: now,
      deadline: now + this.leaseSeconds * 1000,
      round,
      cycle,
      reason,
      ...(requestKey !== undefined ? { requestKey } : {}),
    };
    const written = this.store.putLease(lease);
    // Handled: a write failing while the batch is still being built (a store with I/O between
    // its reads) must not count as an unhandled rejection; getWorkBatch reads the outcome.
    written.catch(() => {});
    const policy = this.policies.policy(this.policies.has(session.policy) ? session.policy : DEFAULT_POLICY_KEY)!;
    const verify = withinRound(session.previousOpen, ports);
    const likely = round === 0 && verify.length === 0 ? (session.likely ?? []).filter((p) => ports.has(p)) : [];
    // Ports silent at the last visit: -sV is skipped on them but in the cycles that recheck them.
    const skipDetection = rechecksSilent(policy, cycle, session.manual === true) ? [] : withinRound(session.previousSilent ?? [], ports);
    const item: WorkItem = {
      protocol: PROTOCOL_VERSION,
      leaseId: lease.id,
      ip,
      tags: lease.tags,
      ports: [],
      portRanges,
      ...(verify.length > 0 ? { verify } : {}),
      // Nothing known open: the agent's sight check tries these first (the strategy's head).
      ...(likely.length > 0 ? { likely } : {}),
      skipDetection,
      round,
      // A later round of a visit that has found nothing yet: the agent scans it after the rounds
      // of hosts that answered (their next rounds are what the operator waits for).
      ...(round > 0 && session.state.found.length === 0 ? { silent: true as const } : {}),
      cycle,
      reason,
      issuedAt: now,
      deadline: lease.deadline,
      scan: policy.scan,
    };
    return { item, ports, written };
  }
}
