import { canonicalIp, PortbanditError, type Logger, PortRanges } from '../core/index.js';
import { HostSession, type HostContext, type HostResult } from '../../strategies/index.js';
import { type Agent, type Lease, type QueuedWorkInput, type ScanDocument, type Store, latestAnsweredScan } from '../store/index.js';
import type { AgentRegistry } from './agent-registry.js';
import type { CycleCoverage } from './coverage.js';
import type { EventWaiters } from './event-waiters.js';
import type { Learner } from './learner.js';
import { type LeaseSession, readLeaseSession, storeHostResult, storeLeaseSession, storedPortRanges } from './lease-session.js';
import type { Leasing } from './leasing.js';
import type { CoordinatorMetrics } from './metrics.js';
import { DEFAULT_POLICY_KEY } from './policy.js';
import type { ResultSubmission, SubmitResponse } from '../protocol/index.js';
import type { ScopeService } from './scope-service.js';
import { type ScreenshotArchive, checkScreenshots, withScreenshots } from './screenshots.js';
import { checkSubmission } from './submission-checks.js';
import { foldRound, visitOfLease } from './visit.js';

/** What result intake needs from the rest of the coordinator. */
export interface ResultIntakeParts {
  readonly store: Store;
  readonly scope: ScopeService;
  readonly leasing: Pick<Leasing, 'cycleNumber' | 'noteEnqueued' | 'coverageCounts' | 'noteRescanRoundQueued'>;
  readonly agents: Pick<AgentRegistry, 'touch'>;
  readonly learner: Learner;
  readonly coverage: CycleCoverage;
  readonly waiters: EventWaiters;
  readonly screenshots: ScreenshotArchive;
  readonly metrics: Pick<CoordinatorMetrics, 'results'>;
  readonly log: Logger;
  readonly now: () => number;
  /** The install seed (the host sessions' seed). */
  readonly seed: string;
  readonly screenshotBudgetBytes: number;
  /** Several coordinators share the store: finished visits go to the learning queue. */
  readonly shared: boolean;
}

/**
 * Result intake: an agent's result checked against its lease (agent, address, ports, times,
 * free-form field caps, screenshots), folded into its visit with the events it causes, and
 * stored with the visit's next round or its learning in one write. Then the long-poll waiters
 * are woken and the learner is fed.
 */
export class ResultIntake {
  private readonly p: ResultIntakeParts;

  constructor(parts: ResultIntakeParts) {
    this.p = parts;
  }

  /**
   * Store an agent's result. Bound to the lease: another agent, an unknown or expired lease, a
   * different address, an address no longer in scope or a port that was not handed out is
   * rejected. A second submission of a stored lease is answered as a duplicate.
   */
  async submit(agent: Agent, input: ResultSubmission): Promise<SubmitResponse> {
    const { store, metrics } = this.p;
    this.p.agents.touch(agent.id, input.agentVersion, undefined);
    const lease = await store.getLease(input.leaseId);
    if (!lease) {
      const stored = await store.getScan(visitOfLease(input.leaseId) ?? input.leaseId);
      if (stored && stored.agentId === agent.id && (stored.rounds ?? [stored.scanId]).includes(input.leaseId)) {
        metrics.results.inc({ outcome: 'duplicate' });
        return { scanId: stored.scanId, accepted: false, duplicate: true, followUp: false, events: 0 };
      }
      metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_CONFLICT', `lease ${input.leaseId} is unknown or has expired (its target went back to the queue)`, {
        where: 'leaseId',
      });
    }
    if (lease.agentId !== agent.id) {
      metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_FORBIDDEN', `lease ${lease.id} was handed to another agent`, { where: 'leaseId' });
    }
    checkSubmission(input, lease, this.p.now()); // deadline, timestamps, free-form field caps (issue 11)
    const shots = checkScreenshots(input); // open ports only, size caps, PNG/JPEG by their bytes
    const ip = safeNormalizeIp(input.ip);
    if (ip !== lease.ip) {
      metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_LEASE_ADDRESS', `lease ${lease.id} is for ${lease.ip}, not ${JSON.stringify(input.ip)}`, {
        where: 'ip',
      });
    }
    const hit = await this.p.scope.lookupCurrent(ip);
    if (!hit) {
      metrics.results.inc({ outcome: 'rejected' });
      throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `${ip} is no longer in the scope; result refused`, { where: 'ip' });
    }
    // The lease's ports as ranges: each reported port is a binary search away (a whole-port
    // lease was a Set of 65,535 numbers built per result).
    const given = storedPortRanges(lease.portRanges, `lease ${lease.id}`);
    input.ports.forEach((p, i) => {
      if (!given.has(p.port)) {
        metrics.results.inc({ outcome: 'rejected' });
        throw new PortbanditError('PB_ERR_LEASE_PORT', `port ${p.port} was not in the work item`, { where: `ports[${i}].port` });
      }
    });
    if (input.unknownPorts !== undefined && input.unknownPorts !== '') {
      const outside = firstOutside(PortRanges.parse(input.unknownPorts, 'unknownPorts'), given);
      if (outside !== undefined) {
        metrics.results.inc({ outcome: 'rejected' });
        throw new PortbanditError('PB_ERR_LEASE_PORT', `port ${outside} was not in the work item`, { where: 'unknownPorts' });
      }
    }
    if (input.finishedAt < input.startedAt) {
      throw new PortbanditError('PB_ERR_TIMESTAMP', 'finishedAt is before startedAt', { where: 'finishedAt' });
    }
    const session = readLeaseSession(lease.session, `lease ${lease.id}`);
    const visitId = session.visitId ?? session.priorScanId;
    const prior = visitId !== undefined ? await store.getScan(visitId) : undefined;
    const baseline =
      session.baselineScanId !== undefined
        ? await store.getScan(session.baselineScanId)
        : prior
          ? undefined
          : await latestAnsweredScan(store, ip);
    const {
      scan: folded,
      events,
      open,
      unknown,
    } = foldRound({
      visitId: prior?.scanId ?? lease.id,
      leaseId: lease.id,
      ip,
      tags: hit.tags,
      agentId: agent.id,
      epoch: session.epoch,
      cycle: lease.cycle ?? this.p.leasing.cycleNumber,
      leasePorts: given,
      submission: input,
      prior,
      baseline,
    });
    const scan = withScreenshots(folded, prior, shots);
    // Images before the scan that names them: a crash in between leaves an unnamed image (which
    // the budget drops in time), never a scan pointing at nothing.
    if (shots.length > 0) {
      const evicted = this.p.screenshots.put(scan.scanId, ip, shots, this.p.now());
      if (evicted > 0)
        this.p.log.info({ evicted, budget: this.p.screenshotBudgetBytes }, 'screenshot budget reached: dropped the oldest images');
    }
    // The session's next step is decided before the write, so a follow-up round is queued in
    // the same transaction as this round's result (one write to wait for, and never one without
    // the other after a crash).
    const next = this.advanceSession(lease, given.size, session, hit.tags, input, scan, open, unknown);
    const ingested = await store.ingestScan({
      scan: this.annotateVisit(scan, session),
      events,
      leaseId: lease.id,
      ...(prior ? { replace: true } : {}),
      ...(next.followUp ? { enqueue: [next.followUp] } : {}),
      // Shared: the finished visit goes to the elected learner in the same transaction.
      ...(this.p.shared && next.learn
        ? { learn: [{ key: next.learn.key, result: storeHostResult(next.learn.result), at: this.p.now() }] }
        : {}),
    });
    if (!ingested.inserted) {
      metrics.results.inc({ outcome: 'duplicate' });
      return { scanId: scan.scanId, accepted: false, duplicate: true, followUp: false, events: 0 };
    }
    this.p.agents.touch(agent.id, undefined, 'results');
    // A round that stored a new visit (no earlier round of it) is a host visit this agent began.
    if (prior === undefined) this.p.agents.touch(agent.id, undefined, 'visits');
    metrics.results.inc({ outcome: 'accepted' });
    if (events.length > 0) this.p.waiters.wake();
    if ((lease.cycle ?? 0) === this.p.coverage.cycle && this.p.leasing.coverageCounts(lease.ip, session, !next.followUp)) {
      if (lease.round === 0) this.p.coverage.scanned(hit.tags);
      if (!next.followUp) this.p.coverage.finished(hit.tags);
    }
    if (next.followUp) {
      this.p.leasing.noteEnqueued();
      if (session.manual === true && lease.cycle !== undefined) this.p.leasing.noteRescanRoundQueued(lease.ip, lease.cycle);
    } else if (next.learn && !this.p.shared) this.p.learner.add(next.learn.key, next.learn.result, this.p.now());
    return { scanId: scan.scanId, accepted: true, duplicate: false, followUp: next.followUp !== undefined, events: events.length };
  }

  /** What a visit records besides its rounds: its vantage group, the scope names of its address. */
  private annotateVisit(scan: ScanDocument, session: LeaseSession): ScanDocument {
    const names = this.p.scope.namesOf(scan.ip);
    if (session.group === undefined && names === undefined) return scan;
    return {
      ...scan,
      ...(session.group !== undefined ? { group: session.group } : {}),
      ...(names !== undefined ? { names: [...names] } : {}),
    };
  }

  /**
   * Report the round to the host session: the follow-up round to queue, or the finished visit
   * to learn from (neither for a silent host). Changes nothing; `submit` acts on it once the
   * result is stored.
   */
  private advanceSession(
    lease: Lease,
    leasePortCount: number,
    session: LeaseSession,
    tags: readonly string[],
    input: ResultSubmission,
    scan: ScanDocument,
    open: readonly number[],
    unknown: readonly number[],
  ): { followUp?: QueuedWorkInput; learn?: { key: string; result: HostResult } } {
    const learner = this.p.learner;
    const key = learner.has(session.policy) ? session.policy : DEFAULT_POLICY_KEY;
    const host: HostContext = {
      ip: lease.ip,
      tags,
      prefix: session.prefix,
      epoch: session.epoch,
      previousOpen: session.previousOpen,
      previousEpoch: session.previousEpoch,
      probeable: PortRanges.ALL,
    };
    const hs = new HostSession(learner.strategy(key), host, this.p.seed, session.state);
    // The visit as folded (foldRound): down only when no round of it answered.
    if (input.status === 'down' && scan.host?.status === 'down') {
      // A silent host says nothing about its ports: do not teach the model "all closed". But the
      // rest of a split first look is still due, as when masscan finds nothing open (neither tells
      // a dead address from a host behind a firewall): a connect sweep that got no answer at all
      // reports `down`, and an unprivileged agent's visits must not end where a masscan agent's
      // go on. Its ports are reported unknown (probed, not learned from).
      const pending = hs.hasDeferredRest ? hs.nextPorts() : null;
      if (pending === null) {
        hs.abandon();
        return {};
      }
      hs.report([], pending);
    } else hs.report(open, unknown.length > 0 ? unknown : undefined);
    // A round that observed nothing (every port unknown) ends the visit: following up on it
    // would spend the allowance blind.
    const next = unknown.length > 0 && unknown.length >= leasePortCount ? (hs.abandon(), null) : hs.nextPorts();
    if (next !== null) {
      // A first round's likely ports are for its own leases only.
      const { priorScanId: _old, likely: _likely, ...rest } = session;
      // Queued compact, as leases are: the ports and the session's port lists as range specs.
      const state = hs.toJSON();
      const blob = storeLeaseSession({ ...rest, state, visitId: scan.scanId });
      return {
        followUp: {
          ip: lease.ip,
          tags: [...tags],
          reason: 'followup',
          enqueuedAt: this.p.now(),
          // The session's pending list is these ports, already a spec when long (storedPortList).
          portRanges: typeof blob.state.pending === 'string' ? blob.state.pending : PortRanges.fromPorts(next).toString(),
          session: blob,
          round: lease.round + 1,
          ...(lease.cycle !== undefined ? { cycle: lease.cycle } : {}),
          // The visit's later rounds are scanned from the same vantage point.
          ...(session.group !== undefined ? { groups: [session.group] } : {}),
          // Behind the rounds of visits that answered (src/store/queue-priority.ts).
          ...(state.found.length === 0 ? { silent: true } : {}),
        },
      };
    }
    return { learn: { key, result: hs.result() } };
  }
}

/** The first port of `ports` outside `given`, or undefined (range by range, never port by port). */
function firstOutside(ports: PortRanges, given: PortRanges): number | undefined {
  const b = ports.bounds;
  const g = given.bounds;
  let k = 0;
  for (let i = 0; i < b.length; i += 2) {
    let p = b[i]!;
    const end = b[i + 1]!;
    while (p <= end) {
      while (k < g.length && g[k + 1]! < p) k += 2;
      if (k >= g.length || g[k]! > p) return p;
      p = g[k + 1]! + 1; // covered up to the end of this given range
    }
  }
  return undefined;
}

function safeNormalizeIp(ip: string): string {
  try {
    return canonicalIp(ip, 'ip');
  } catch {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`, { where: 'ip' });
  }
}
