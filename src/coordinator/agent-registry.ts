import { PortbanditError, type Logger } from '../core/index.js';
import type { Agent, Store } from '../store/index.js';
import { checkGroups } from './groups.js';
import { generateId, generateToken, hashToken } from './tokens.js';

interface AgentActivityBuffer {
  at: number;
  version?: string;
  workItems: number;
  results: number;
  visits: number;
}

/**
 * What an agent's activity counts: `workItems` handed to it, `results` (every accepted round,
 * follow-up rounds included) and `visits` (host visits it began: the round that stored a new
 * visit; the visit's later rounds count only as results).
 */
export type AgentCounter = 'workItems' | 'results' | 'visits';

/** How often agents' last-seen time and counters are written to the store. */
export const ACTIVITY_FLUSH_MS = 10_000;

/** How long authenticate trusts a cached token before asking the store again. */
const AGENT_RECHECK_MS = 1000;

/** Most bearer tokens remembered by authenticate. */
const AGENT_TOKEN_CACHE = 100_000;

/** Agents whose activity is written per commit when flushing. */
const ACTIVITY_FLUSH_CHUNK = 100;

/** An agent as the registry lists it: with its groups and live figures. */
export type ListedAgent = Agent & { groups: string[]; inFlight: number; resultsLastHour: number; visitsLastHour: number };

/**
 * The agent registry and the tokens: agents (created with a token shown once, stored as a
 * hash), their groups (vantage points), their activity (last seen, counters, buffered and
 * written every ACTIVITY_FLUSH_MS), and the admin tokens.
 */
/** Slices of the hour before a start whose stored visits `snapshotStoredVisits` counts (5 minutes each). */
const STORED_BUCKETS = 12;

export class AgentRegistry {
  /**
   * Agents by their bearer token as presented, so a request does not hash its token (sha256 was
   * ~4% of a getwork). Memory only, emptied by `refresh` (revocations take effect as before);
   * the store keeps only hashes.
   */
  private readonly agentsByToken = new Map<string, { agent: Agent; checkedAt: number }>();
  private readonly activity = new Map<string, AgentActivityBuffer>();
  /** When each agent's results and visits of the last hour were accepted, by agent id. */
  private readonly recent = { results: new Map<string, number[]>(), visits: new Map<string, number[]>() };
  /** Agent groups by agent id (the `agentGroups` documents), loaded with the agents. */
  private readonly agentGroups = new Map<string, readonly string[]>();
  private lastActivityFlushAt = 0;
  /** When this process started counting `recent` (the store answers for the last hour before it). */
  private readonly countingSince: number;
  /**
   * Per agent, its visits stored in the hour before this process started, counted at start in
   * STORED_BUCKETS slices (`snapshotStoredVisits`). Counted then, not when asked: a visit's stored
   * document takes the finish time of its latest round, so a visit begun before a restart and
   * finished after it left the window (the dashboard said 152 visits of 256 after a restart
   * with 104 visits under way).
   */
  private readonly storedBefore = new Map<string, Array<{ readonly from: number; readonly to: number; readonly count: number }>>();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly now: () => number,
    /**
     * Several coordinators on one store: an agent's visits land on whichever coordinator it
     * submits to, so this process's own tally says nothing; `list` counts them in the store.
     */
    private readonly shared = false,
  ) {
    this.countingSince = now();
  }

  /** Forget cached tokens and reload every agent's groups from the store. */
  async refresh(): Promise<void> {
    this.agentsByToken.clear();
    this.agentGroups.clear();
    for (const doc of await this.store.listDocuments<{ groups: string[] }>('agentGroups')) this.agentGroups.set(doc.key, doc.value.groups);
  }

  /** Register an agent; returns the token (shown once, stored only as a hash). */
  async create(name: string, groups: readonly string[] = []): Promise<{ agent: Agent; token: string }> {
    const checked = checkGroups(groups, 'groups');
    const token = generateToken('agent');
    const agent = await this.store.createAgent({ id: generateId('agent'), name, tokenHash: hashToken(token), createdAt: this.now() });
    if (checked.length > 0) await this.setGroups(agent.id, checked);
    return { agent, token };
  }

  async delete(id: string): Promise<boolean> {
    await this.store.deleteDocument('agentGroups', id);
    const existed = await this.store.deleteAgent(id);
    await this.refresh();
    return existed;
  }

  /** The agent holding this bearer token, or undefined. */
  async authenticate(token: string): Promise<Agent | undefined> {
    // A cached token is trusted for at most AGENT_RECHECK_MS (wall time, not the coordinator's
    // clock): a revocation by another process (the CLI on the same store) takes effect within
    // that, and this process's own revocations at once (delete empties the cache).
    const checkedAt = performance.now();
    const known = this.agentsByToken.get(token);
    if (known && checkedAt - known.checkedAt < AGENT_RECHECK_MS) return known.agent;
    const agent = await this.store.findAgentByTokenHash(hashToken(token));
    if (agent) {
      // Bounded: a flood of distinct valid tokens cannot grow it past the agent count by much.
      if (this.agentsByToken.size >= AGENT_TOKEN_CACHE) this.agentsByToken.clear();
      this.agentsByToken.set(token, { agent, checkedAt });
    } else {
      this.agentsByToken.delete(token);
    }
    return agent;
  }

  /**
   * The agent registry with live figures: in flight, results (rounds) and host visits in the last
   * hour. Within an hour of this process's start, the visits of the part of the hour before it
   * come from the store (counted at start, in 5-minute slices); rounds are counted here only.
   * With a shared store the visits are counted in the store (the visits stored in the last hour
   * with the agent's id; a visit counts at the time of its latest round), one query per agent.
   */
  async list(): Promise<ListedAgent[]> {
    await this.flushActivity();
    const now = this.now();
    const hourAgo = now - 3_600_000;
    const agents = await this.store.listAgents();
    return Promise.all(
      agents.map(async (a) => ({
        ...a,
        groups: [...this.groupsOf(a.id)],
        inFlight: await this.store.countLeases({ agentId: a.id }),
        resultsLastHour: (this.recent.results.get(a.id) ?? []).filter((t) => t > hourAgo).length,
        visitsLastHour: this.shared
          ? await this.storedVisits(a.id, hourAgo, now + 1)
          : (this.recent.visits.get(a.id) ?? []).filter((t) => t > hourAgo).length +
            (this.storedBefore.get(a.id) ?? []).reduce((n, b) => ((b.from + b.to) / 2 > hourAgo ? n + b.count : n), 0),
      })),
    );
  }

  /**
   * Count each agent's visits stored in the hour before this process started, in slices of
   * 60 / STORED_BUCKETS minutes (a slice counts while its middle is within the last hour), once,
   * at start: see `storedBefore`. Costs one count query per agent, and STORED_BUCKETS more for one
   * that stored visits in that hour.
   */
  async snapshotStoredVisits(): Promise<void> {
    if (this.shared) return; // list() counts in the store
    const start = this.countingSince - 3_600_000;
    const width = 3_600_000 / STORED_BUCKETS;
    for (const agent of await this.store.listAgents()) {
      // One query for an agent that stored nothing in that hour (most agents of a long history).
      if ((await this.storedVisits(agent.id, start, this.countingSince)) === 0) continue;
      const buckets = [];
      for (let k = 0; k < STORED_BUCKETS; k++) {
        const from = start + k * width;
        const count = await this.storedVisits(agent.id, from, from + width);
        if (count > 0) buckets.push({ from, to: from + width, count });
      }
      if (buckets.length > 0) this.storedBefore.set(agent.id, buckets);
    }
  }

  /** The agent's visits stored with `from <= finishedAt < to` (0 if the index cannot say). */
  private async storedVisits(agentId: string, from: number, to: number): Promise<number> {
    try {
      return await this.store.count(
        {
          type: 'and',
          children: [
            { type: 'term', field: 'agent', value: agentId },
            { type: 'timeRange', from, to },
          ],
        },
        { view: 'history' },
      );
    } catch (error) {
      this.log.debug({ err: error, agent: agentId }, 'could not count the stored visits of the last hour');
      return 0;
    }
  }

  /** Note an agent's request (its version, a work item handed out, a result accepted, a visit begun); written by `flushActivity`. */
  touch(agentId: string, version: string | undefined, field: AgentCounter | undefined): void {
    const now = this.now();
    const buf = this.activity.get(agentId) ?? { at: now, workItems: 0, results: 0, visits: 0 };
    buf.at = Math.max(buf.at, now);
    if (version !== undefined) buf.version = version;
    if (field) buf[field]++;
    this.activity.set(agentId, buf);
    if (field === 'results' || field === 'visits') {
      const recent = this.recent[field];
      const list = recent.get(agentId) ?? [];
      list.push(now);
      // Keep the last hour only; prune lazily when the list grows.
      if (list.length > 64 && list[0]! <= now - 3_600_000)
        recent.set(
          agentId,
          list.filter((t) => t > now - 3_600_000),
        );
      else recent.set(agentId, list);
    }
  }

  /** Write the buffered activity of every agent to the store. */
  async flushActivity(): Promise<void> {
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
            increments: { workItems: buf.workItems, results: buf.results, visits: buf.visits },
          }),
        ),
      );
      outcomes.forEach((outcome, k) => {
        // The agent was deleted meanwhile: nothing to record.
        if (outcome.status === 'rejected') this.log.debug({ err: outcome.reason, agent: chunk[k]![0] }, 'agent activity dropped');
      });
    }
  }

  /**
   * The periodic part: one store write per active agent every ACTIVITY_FLUSH_MS is plenty for
   * "last seen" (1,000 agents flushed every second would cost more than the work they ask for);
   * agents revoked by another process (the CLI) stop working within that period.
   */
  async sweep(now: number): Promise<void> {
    if (now - this.lastActivityFlushAt < ACTIVITY_FLUSH_MS) return;
    this.lastActivityFlushAt = now;
    await this.flushActivity();
    await this.refresh();
  }

  // ------------------------------------------------------------------ admin tokens

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
  async setGroups(agentId: string, groups: readonly string[]): Promise<string[]> {
    const checked = checkGroups(groups, 'groups');
    if (!(await this.store.getAgent(agentId)))
      throw new PortbanditError('PB_ERR_NOT_FOUND', `no agent with id ${agentId}`, { where: 'agent' });
    if (checked.length === 0) {
      await this.store.deleteDocument('agentGroups', agentId);
      this.agentGroups.delete(agentId);
    } else {
      await this.store.putDocument('agentGroups', agentId, { groups: checked }, { at: this.now() });
      this.agentGroups.set(agentId, checked);
    }
    return checked;
  }

  /** True when some registered agent has groups: then visits have vantage points to keep. */
  anyGroups(): boolean {
    return this.agentGroups.size > 0;
  }

  /** Every group some registered agent belongs to, sorted and joined: changes when an agent's groups do. */
  groupsSignature(): string {
    const all = new Set<string>();
    for (const groups of this.agentGroups.values()) for (const g of groups) all.add(g);
    return [...all].sort().join(',');
  }

  /** True when some registered agent belongs to one of `allowed`. */
  routable(allowed: readonly string[]): boolean {
    for (const groups of this.agentGroups.values()) if (groups.some((g) => allowed.includes(g))) return true;
    return false;
  }
}
