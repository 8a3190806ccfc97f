import type pg from 'pg';
import { PortbanditError } from '../core/index.js';
import { canonicalIp } from './ip-key.js';
import { resolveLimit } from './page.js';
import { PostgresDatabase, type PostgresOptions, type Queryable, pointReads, prepared, uniqueViolation } from './postgres-database.js';
import { queuePriority } from './queue-priority.js';
import { requeueItem } from './requeue.js';
import { readLeaseDoc, readQueuedDoc } from './lease-doc.js';
import type {
  AdminToken,
  Agent,
  AgentActivity,
  CoordinationStore,
  DocumentCollection,
  Lease,
  LearningItem,
  LearningRecord,
  NewAgent,
  OutboxEntry,
  OutboxRecord,
  QueuedWork,
  QueuedWorkInput,
  ScopeEntryInput,
  ScopeListName,
  ScopeListing,
  StoredDocument,
} from './types.js';

type Row = Record<string, unknown>;

const parse = <T>(text: unknown): T => JSON.parse(text as string) as T;

/**
 * Open the PostgreSQL coordination store: scope, documents, agents, tokens, leases and the work
 * queue in one schema, shared by every coordinator that opens the same URL and schema.
 * Concurrency holds in the database, not in the processes: the queue is dequeued with
 * `FOR UPDATE SKIP LOCKED`, a lease per address is a unique constraint, a document write with
 * `expectedRevision` is `UPDATE ... WHERE revision = $n`.
 */
export async function openPostgresCoordination(options: PostgresOptions): Promise<PostgresCoordinationStore> {
  return new PostgresCoordinationStore(await PostgresDatabase.open(options));
}

export class PostgresCoordinationStore implements CoordinationStore {
  readonly kind = 'postgres' as const;
  /** The connection holding this handle's roles (session advisory locks), once one was asked for. */
  private roleClient: pg.PoolClient | undefined;
  private readonly roles = new Set<string>();

  constructor(readonly db: PostgresDatabase) {}

  /** Run one call: its own transaction when `tx` is set, else a single statement on the pool. */
  protected async run<T>(what: string, work: (q: Queryable) => Promise<T>, tx = false): Promise<T> {
    try {
      return tx ? await this.db.transaction(work) : await work(this.db.pool);
    } catch (error) {
      throw this.db.wrap(error, what);
    }
  }

  async close(): Promise<void> {
    // Ending the session releases its advisory locks: another coordinator takes the roles over.
    this.roleClient?.release(true);
    this.roleClient = undefined;
    await this.db.close();
  }

  // ------------------------------------------------------------------ scope
  listScope(list: ScopeListName): Promise<ScopeListing> {
    return this.run('listing the scope', async (q) => {
      // One statement: the entries and the version of the same snapshot.
      const { rows } = await q.query(
        `SELECT (SELECT value FROM meta WHERE key = 'scope_version') AS version, range, tags, added_at
         FROM (SELECT 1) one LEFT JOIN scope_entries ON list = $1 ORDER BY range COLLATE "C"`,
        [list],
      );
      const version = Number(rows[0]?.version ?? 0);
      const entries = rows
        .filter((r) => r.range !== null)
        .map((r) => ({ range: r.range as string, tags: r.tags as string[], addedAt: r.added_at as number }));
      return { version, entries };
    });
  }

  private async scopeVersion(q: Queryable, bump: boolean): Promise<number> {
    const sql = bump
      ? `UPDATE meta SET value = value + 1 WHERE key = 'scope_version' RETURNING value`
      : `SELECT value FROM meta WHERE key = 'scope_version'`;
    return (await q.query(sql)).rows[0]!.value as number;
  }

  private async upsertScope(q: Queryable, list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number> {
    let changed = 0;
    for (const entry of entries) {
      const result = await q.query(
        `INSERT INTO scope_entries (list, range, tags, added_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (list, range) DO UPDATE SET tags = excluded.tags WHERE scope_entries.tags IS DISTINCT FROM excluded.tags`,
        [list, entry.range, JSON.stringify([...entry.tags]), at],
      );
      changed += result.rowCount ?? 0;
    }
    return changed;
  }

  addScopeEntries(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number> {
    return this.run(
      'adding scope entries',
      async (q) => {
        // Scope edits serialise on the version row: two editors cannot interleave their bumps.
        await q.query(`SELECT value FROM meta WHERE key = 'scope_version' FOR UPDATE`);
        const changed = await this.upsertScope(q, list, entries, at);
        return this.scopeVersion(q, changed > 0);
      },
      true,
    );
  }

  removeScopeEntries(list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }> {
    return this.run(
      'removing scope entries',
      async (q) => {
        await q.query(`SELECT value FROM meta WHERE key = 'scope_version' FOR UPDATE`);
        const removed =
          (await q.query('DELETE FROM scope_entries WHERE list = $1 AND range = ANY($2::text[])', [list, [...ranges]])).rowCount ?? 0;
        return { removed, version: await this.scopeVersion(q, removed > 0) };
      },
      true,
    );
  }

  replaceScope(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number> {
    return this.run(
      'replacing the scope',
      async (q) => {
        await q.query(`SELECT value FROM meta WHERE key = 'scope_version' FOR UPDATE`);
        await q.query('DELETE FROM scope_entries WHERE list = $1', [list]);
        await this.upsertScope(q, list, entries, at);
        return this.scopeVersion(q, true);
      },
      true,
    );
  }

  getScopeVersion(): Promise<number> {
    return this.run('reading the scope version', (q) => this.scopeVersion(q, false));
  }

  // ------------------------------------------------------------------ documents
  getDocument<T = unknown>(collection: DocumentCollection, key: string): Promise<StoredDocument<T> | undefined> {
    return this.run('reading a document', async (q) => {
      const { rows } = await q.query('SELECT key, value, revision, updated_at FROM documents WHERE collection = $1 AND key = $2', [
        collection,
        key,
      ]);
      return rows[0] ? toDocument<T>(rows[0]) : undefined;
    });
  }

  putDocument<T = unknown>(
    collection: DocumentCollection,
    key: string,
    value: T,
    options: { at: number; expectedRevision?: number; enqueue?: readonly QueuedWorkInput[] },
  ): Promise<StoredDocument<T>> {
    let enqueue: QueuedWorkInput[];
    try {
      enqueue = (options.enqueue ?? []).map((item) => ({ ...item, ip: canonicalIp(item.ip, 'enqueue.ip') }));
    } catch (error) {
      return Promise.reject(error);
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      return Promise.reject(this.db.wrap(error, `serialising ${collection}/${key}`));
    }
    if (json === undefined)
      return Promise.reject(
        new PortbanditError('PB_ERR_DOCUMENT_VALUE', 'the document value has no JSON form', { where: `${collection}/${key}` }),
      );
    const text = json;
    return this.run(
      `writing ${collection}/${key}`,
      async (q) => {
        const expected = options.expectedRevision;
        let rows: Row[];
        if (expected === undefined) {
          rows = (
            await q.query(
              `INSERT INTO documents (collection, key, value, revision, updated_at) VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value, revision = documents.revision + 1, updated_at = excluded.updated_at
             RETURNING revision`,
              [collection, key, text, options.at],
            )
          ).rows;
        } else if (expected === 0) {
          rows = (
            await q.query(
              `INSERT INTO documents (collection, key, value, revision, updated_at) VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (collection, key) DO NOTHING RETURNING revision`,
              [collection, key, text, options.at],
            )
          ).rows;
        } else {
          // Compare-and-set in the database: the row lock makes a concurrent writer wait and then miss.
          rows = (
            await q.query(
              `UPDATE documents SET value = $3, revision = revision + 1, updated_at = $4
             WHERE collection = $1 AND key = $2 AND revision = $5 RETURNING revision`,
              [collection, key, text, options.at, expected],
            )
          ).rows;
        }
        if (rows.length === 0) {
          const current =
            (await q.query('SELECT revision FROM documents WHERE collection = $1 AND key = $2', [collection, key])).rows[0]?.revision ?? 0;
          throw new PortbanditError(
            'PB_ERR_CONFLICT',
            `${collection}/${key} is at revision ${current}, not the expected ${expected}; reload and retry`,
            {
              where: `${collection}/${key}`,
            },
          );
        }
        await this.insertQueued(q, enqueue);
        return { key, value: parse<T>(text), revision: rows[0]!.revision as number, updatedAt: options.at };
      },
      enqueue.length > 0,
    );
  }

  listDocuments<T = unknown>(collection: DocumentCollection): Promise<StoredDocument<T>[]> {
    return this.run('listing documents', async (q) =>
      (
        await q.query('SELECT key, value, revision, updated_at FROM documents WHERE collection = $1 ORDER BY key COLLATE "C"', [collection])
      ).rows.map((r) => toDocument<T>(r)),
    );
  }

  deleteDocument(collection: DocumentCollection, key: string): Promise<boolean> {
    return this.run(
      'deleting a document',
      async (q) => ((await q.query('DELETE FROM documents WHERE collection = $1 AND key = $2', [collection, key])).rowCount ?? 0) > 0,
    );
  }

  // ------------------------------------------------------------------ agents and tokens
  createAgent(agent: NewAgent): Promise<Agent> {
    return this.run('creating an agent', async (q) => {
      try {
        const { rows } = await q.query(
          `INSERT INTO agents (id, name, token_hash, version, created_at, counters) VALUES ($1, $2, $3, $4, $5, '{}') RETURNING *`,
          [agent.id, agent.name, agent.tokenHash, agent.version ?? null, agent.createdAt],
        );
        return toAgent(rows[0]!);
      } catch (error) {
        if (uniqueViolation(error) !== undefined) {
          throw new PortbanditError('PB_ERR_CONFLICT', `an agent with id '${agent.id}' or the same token already exists`, {
            where: 'agent.id',
          });
        }
        throw error;
      }
    });
  }

  getAgent(id: string): Promise<Agent | undefined> {
    return this.run('reading an agent', async (q) => {
      const row = (await q.query('SELECT * FROM agents WHERE id = $1', [id])).rows[0];
      return row ? toAgent(row) : undefined;
    });
  }

  findAgentByTokenHash(tokenHash: string): Promise<Agent | undefined> {
    return this.run('finding an agent', async (q) => {
      const row = (await q.query('SELECT * FROM agents WHERE token_hash = $1', [tokenHash])).rows[0];
      return row ? toAgent(row) : undefined;
    });
  }

  listAgents(): Promise<Agent[]> {
    return this.run('listing agents', async (q) => (await q.query('SELECT * FROM agents ORDER BY id COLLATE "C"')).rows.map(toAgent));
  }

  recordAgentActivity(id: string, activity: AgentActivity): Promise<Agent> {
    return this.run(
      'recording agent activity',
      async (q) => {
        // Counters add up in the row, under its lock: coordinators flushing the same agent both count.
        const row = (await q.query('SELECT * FROM agents WHERE id = $1 FOR UPDATE', [id])).rows[0];
        if (!row) throw new PortbanditError('PB_ERR_NOT_FOUND', `no agent with id '${id}'`, { where: 'agent.id' });
        const counters = { ...(row.counters as Record<string, number>) };
        for (const [name, delta] of Object.entries(activity.increments ?? {})) counters[name] = (counters[name] ?? 0) + delta;
        const lastSeen = Math.max((row.last_seen_at as number | null) ?? activity.at, activity.at);
        const { rows } = await q.query('UPDATE agents SET last_seen_at = $1, version = $2, counters = $3 WHERE id = $4 RETURNING *', [
          lastSeen,
          activity.version ?? (row.version as string | null),
          JSON.stringify(counters),
          id,
        ]);
        return toAgent(rows[0]!);
      },
      true,
    );
  }

  deleteAgent(id: string): Promise<boolean> {
    return this.run('deleting an agent', async (q) => ((await q.query('DELETE FROM agents WHERE id = $1', [id])).rowCount ?? 0) > 0);
  }

  createAdminToken(token: AdminToken): Promise<AdminToken> {
    return this.run('creating an admin token', async (q) => {
      try {
        await q.query('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)', [
          token.id,
          token.name,
          token.tokenHash,
          token.createdAt,
        ]);
      } catch (error) {
        if (uniqueViolation(error) !== undefined) {
          throw new PortbanditError('PB_ERR_CONFLICT', `an admin token with id '${token.id}' or the same hash already exists`, {
            where: 'token.id',
          });
        }
        throw error;
      }
      return { id: token.id, name: token.name, tokenHash: token.tokenHash, createdAt: token.createdAt };
    });
  }

  findAdminTokenByHash(tokenHash: string): Promise<AdminToken | undefined> {
    return this.run('finding an admin token', async (q) => {
      const row = (await q.query('SELECT * FROM admin_tokens WHERE token_hash = $1', [tokenHash])).rows[0];
      return row ? toToken(row) : undefined;
    });
  }

  listAdminTokens(): Promise<AdminToken[]> {
    return this.run('listing admin tokens', async (q) =>
      (await q.query('SELECT * FROM admin_tokens ORDER BY id COLLATE "C"')).rows.map(toToken),
    );
  }

  deleteAdminToken(id: string): Promise<boolean> {
    return this.run(
      'deleting an admin token',
      async (q) => ((await q.query('DELETE FROM admin_tokens WHERE id = $1', [id])).rowCount ?? 0) > 0,
    );
  }

  /**
   * Create the bootstrap admin token only when no admin token exists, atomically across
   * coordinators (an advisory lock for the check and the insert): true when this call created it.
   */
  createFirstAdminToken(token: AdminToken): Promise<boolean> {
    return this.run(
      'creating the first admin token',
      async (q) => {
        await q.query('SELECT pg_advisory_xact_lock($1)', [this.db.lockKey('bootstrap-admin-token')]);
        if ((await q.query('SELECT 1 FROM admin_tokens LIMIT 1')).rows.length > 0) return false;
        await q.query('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)', [
          token.id,
          token.name,
          token.tokenHash,
          token.createdAt,
        ]);
        return true;
      },
      true,
    );
  }

  /**
   * A role is a session-level advisory lock on one dedicated connection: held until this handle
   * closes or its connection dies (a killed coordinator's roles free up when the server notices
   * the dropped connection). Asking again while held is answered without a round trip only after
   * checking the connection still works.
   */
  holdRole(role: string): Promise<boolean> {
    return this.run(`holding the ${role} role`, async () => {
      if (!this.roleClient) {
        const client = await this.db.pool.connect();
        client.on('error', () => {
          // The session (and every role) is gone: forget it; the next call starts over.
          if (this.roleClient === client) this.roleClient = undefined;
          this.roles.clear();
        });
        this.roleClient = client;
      }
      try {
        if (this.roles.has(role)) {
          await this.roleClient.query('SELECT 1');
          return true;
        }
        const { rows } = await this.roleClient.query('SELECT pg_try_advisory_lock($1) AS held', [this.db.lockKey(`role:${role}`)]);
        if (rows[0]!.held === true) this.roles.add(role);
        return this.roles.has(role);
      } catch (error) {
        this.roleClient?.release(true);
        this.roleClient = undefined;
        this.roles.clear();
        throw error;
      }
    });
  }

  /**
   * The window [after, barrier) of transaction ids, where the barrier is the oldest transaction
   * still running: everything below it has committed or aborted, so no item can appear in a
   * window already read (sequence numbers could: they are handed out before commit).
   */
  readLearning(after: string | undefined): Promise<{ items: LearningRecord[]; cursor: string }> {
    const from = after ?? '0';
    if (!/^\d{1,20}$/u.test(from))
      return Promise.reject(new PortbanditError('PB_ERR_CURSOR', `'${after}' is not a learning cursor`, { where: 'after' }));
    return this.run(
      'reading learning items',
      async (q) => {
        const barrier = (await q.query(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS b`)).rows[0]!.b as string;
        const { rows } = await q.query(
          // Ordered by the column (xid8), not by the text of it this query returns (ORDER BY
          // takes an output column's name first: '10' came before '9').
          `SELECT q.xid::text AS position, q.doc FROM learning_queue q WHERE q.xid >= $1::xid8 AND q.xid < $2::xid8 ORDER BY q.xid, q.seq`,
          [from, barrier],
        );
        const items = rows.map((r) => ({ ...parse<LearningItem>(r.doc), position: r.position as string }));
        return { items, cursor: BigInt(barrier) > BigInt(from) ? barrier : from };
      },
      true,
    );
  }

  pruneLearning(before: string): Promise<number> {
    if (!/^\d{1,20}$/u.test(before))
      return Promise.reject(new PortbanditError('PB_ERR_CURSOR', `'${before}' is not a learning cursor`, { where: 'before' }));
    return this.run(
      'pruning learning items',
      async (q) => (await q.query('DELETE FROM learning_queue WHERE xid < $1::xid8', [before])).rowCount ?? 0,
    );
  }

  // ------------------------------------------------------------------ outbox
  /**
   * Oldest first. Sequence numbers are handed out at insert, so with several writers a record
   * can commit after a later one; it is read in a later call (nothing is acknowledged past it),
   * so it is fed late, never lost.
   */
  readOutbox(limit: number): Promise<OutboxRecord[]> {
    return this.run('reading the outbox', async (q) => {
      const { rows } = await q.query('SELECT seq, doc FROM outbox ORDER BY seq LIMIT $1', [resolveLimit(limit, limit)]);
      return rows.map((r) => ({ ...parse<OutboxEntry>(r.doc), id: String(r.seq) }) as OutboxRecord);
    });
  }

  ackOutbox(ids: readonly string[]): Promise<number> {
    const seqs = ids.filter((id) => /^\d{1,15}$/u.test(id)).map(Number);
    if (seqs.length === 0) return Promise.resolve(0);
    return this.run(
      'acknowledging outbox records',
      async (q) => (await q.query('DELETE FROM outbox WHERE seq = ANY($1::int8[])', [seqs])).rowCount ?? 0,
    );
  }

  countOutbox(): Promise<number> {
    return this.run('counting the outbox', async (q) => Number((await q.query('SELECT COUNT(*)::int8 AS n FROM outbox')).rows[0]!.n));
  }

  /** Append an outbox record inside the caller's transaction. */
  protected async insertOutbox(q: Queryable, record: OutboxEntry): Promise<void> {
    await q.query('INSERT INTO outbox (doc) VALUES ($1)', [JSON.stringify(record)]);
  }

  /** Queue finished visits for the learner inside the caller's transaction. */
  protected async insertLearning(q: Queryable, items: readonly LearningItem[]): Promise<void> {
    if (items.length === 0) return;
    await SQL.learningInsert(q, [items.map((item) => JSON.stringify(item))]);
  }

  // ------------------------------------------------------------------ leases and queue
  /** Leases waiting for their group's statement (see putLease). */
  private pendingLeases: { lease: Lease; ip: string; resolve(): void; reject(error: unknown): void }[] = [];

  /**
   * Leases written in the same turn of the event loop (a batch lease) go in one statement: one
   * round trip instead of one per lease. Each caller gets what its own INSERT would have given:
   * a lease whose address or id is taken is refused alone (PB_ERR_CONFLICT), the others are
   * stored; an error of the statement itself fails the group.
   */
  putLease(lease: Lease): Promise<void> {
    let ip: string;
    try {
      ip = canonicalIp(lease.ip, 'lease.ip');
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<void>((resolve, reject) => {
      this.pendingLeases.push({ lease, ip, resolve, reject });
      if (this.pendingLeases.length === 1) setImmediate(() => this.flushLeases());
    });
  }

  private flushLeases(): void {
    const group = this.pendingLeases;
    this.pendingLeases = [];
    if (group.length === 1) {
      const { lease, ip, resolve, reject } = group[0]!;
      this.insertLease(lease, ip).then(resolve, reject);
      return;
    }
    this.run('storing leases', async (q) => {
      // The leases settle the queue items they were made from (hidden since their dequeue).
      // `taken`: the id existed before this statement (the statement's snapshot does not see
      // its own inserts); a lease not inserted otherwise lost on its address.
      const { rows } = await SQL.leasesInsert(q, [
        group.map((g) => g.lease.id),
        group.map((g) => g.ip),
        group.map((g) => g.lease.agentId),
        group.map((g) => g.lease.deadline),
        group.map((g) => JSON.stringify({ ...g.lease, ip: g.ip })),
      ]);
      return rows as { stored: boolean; taken: boolean }[];
    }).then(
      (rows) =>
        group.forEach(({ lease, ip, resolve, reject }, k) => {
          const row = rows[k]!;
          if (row.stored) resolve();
          else if (row.taken)
            reject(new PortbanditError('PB_ERR_CONFLICT', `a lease with id '${lease.id}' already exists`, { where: 'lease.id' }));
          else reject(new PortbanditError('PB_ERR_CONFLICT', `${ip} already has a lease in flight`, { where: 'lease.ip' }));
        }),
      (error: unknown) => group.forEach(({ reject }) => reject(error)),
    );
  }

  private insertLease(lease: Lease, ip: string): Promise<void> {
    return this.run('storing a lease', async (q) => {
      try {
        // The lease settles the queue item it was made from (hidden since its dequeue).
        await SQL.leaseInsert(q, [lease.id, ip, lease.agentId, lease.deadline, JSON.stringify({ ...lease, ip })]);
      } catch (error) {
        const constraint = uniqueViolation(error);
        if (constraint === 'leases_one_per_ip')
          throw new PortbanditError('PB_ERR_CONFLICT', `${ip} already has a lease in flight`, { where: 'lease.ip' });
        if (constraint !== undefined)
          throw new PortbanditError('PB_ERR_CONFLICT', `a lease with id '${lease.id}' already exists`, { where: 'lease.id' });
        throw error;
      }
    });
  }

  /** The leases of a batch's results, read together (pointReads). */
  private readonly leaseReads = pointReads<string, Lease>((ids) =>
    this.run('reading a lease', async (q) => {
      const { rows } = await SQL.leasesGet(q, [ids]);
      return new Map(rows.map((row) => [row.id as string, readLeaseDoc(row.doc)]));
    }),
  );

  getLease(id: string): Promise<Lease | undefined> {
    return this.leaseReads(id);
  }

  listLeases(filter: { agentId?: string; ip?: string } = {}): Promise<Lease[]> {
    return this.run('listing leases', async (q) => {
      const conditions: string[] = [];
      const params: unknown[] = [];
      if (filter.agentId !== undefined) {
        params.push(filter.agentId);
        conditions.push(`agent_id = $${params.length}`);
      }
      if (filter.ip !== undefined) {
        params.push(canonicalIp(filter.ip, 'ip'));
        conditions.push(`ip = $${params.length}`);
      }
      const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
      return (await q.query(`SELECT doc FROM leases${where} ORDER BY deadline, id COLLATE "C"`, params)).rows.map((r) =>
        readLeaseDoc(r.doc),
      );
    });
  }

  countLeases(filter: { agentId?: string; liveAt?: number } = {}): Promise<number> {
    return this.run('counting leases', async (q) => {
      const conditions: string[] = [];
      const params: unknown[] = [];
      if (filter.agentId !== undefined) conditions.push(`agent_id = $${params.push(filter.agentId)}`);
      if (filter.liveAt !== undefined) conditions.push(`deadline > $${params.push(filter.liveAt)}`);
      const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
      const { rows } = await q.query(`SELECT COUNT(*)::int8 AS n FROM leases${where}`, params);
      return Number(rows[0]!.n);
    });
  }

  renewLease(id: string, deadline: number): Promise<boolean> {
    return this.run('renewing a lease', async (q) => {
      // The document's copy of the deadline is rewritten in the same statement.
      const result = await q.query(
        `UPDATE leases SET deadline = $2, doc = jsonb_set(doc::jsonb, '{deadline}', to_jsonb($2::int8))::text WHERE id = $1`,
        [id, deadline],
      );
      return (result.rowCount ?? 0) > 0;
    });
  }

  completeLease(id: string): Promise<Lease | undefined> {
    return this.run('completing a lease', (q) => this.takeLease(q, id));
  }

  /** Delete a lease and return it (the DELETE decides: two coordinators completing it, one wins). */
  protected async takeLease(q: Queryable, id: string): Promise<Lease | undefined> {
    const row = (await SQL.leaseTake(q, [id])).rows[0];
    return row ? readLeaseDoc(row.doc) : undefined;
  }

  takeExpiredLeases(now: number, limit: number, options: { requeue?: boolean } = {}): Promise<Lease[]> {
    const n = resolveLimit(limit, limit);
    return this.run(
      'taking expired leases',
      async (q) => {
        // SKIP LOCKED: coordinators sweeping together take disjoint leases instead of waiting.
        const { rows } = await q.query(
          `DELETE FROM leases WHERE id IN (
             SELECT id FROM leases WHERE deadline <= $1 ORDER BY deadline, id COLLATE "C" LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING doc`,
          [now, n],
        );
        const leases = rows
          .map((r) => readLeaseDoc(r.doc))
          .sort((a, b) => a.deadline - b.deadline || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        if (options.requeue)
          await this.insertQueued(
            q,
            leases.map((lease) => requeueItem(lease, now)),
          );
        return leases;
      },
      true,
    );
  }

  /** Append to the queue, in order, in one statement; returns the items with their ids. */
  protected async insertQueued(q: Queryable, items: readonly QueuedWorkInput[]): Promise<QueuedWork[]> {
    if (items.length === 0) return [];
    const docs = items.map((item) => JSON.stringify(item));
    // WITH ORDINALITY keeps the caller's order in the sequence numbers.
    const { rows } = await SQL.queueInsert(q, [items.map((item) => item.ip), items.map((item) => queuePriority(item)), docs]);
    const seqs = rows.map((r) => r.seq as number).sort((a, b) => a - b);
    return docs.map((doc, i) => ({ ...readQueuedDoc(doc), id: String(seqs[i]) }));
  }

  enqueueWork(items: readonly QueuedWorkInput[]): Promise<QueuedWork[]> {
    let canonical: QueuedWorkInput[];
    try {
      canonical = items.map((item) => ({ ...item, ip: canonicalIp(item.ip, 'work.ip') }));
    } catch (error) {
      return Promise.reject(error);
    }
    return this.run('enqueueing work', (q) => this.insertQueued(q, canonical));
  }

  /**
   * The head of the queue that no other coordinator is taking right now. The items are hidden
   * for `holdMs` (default 60 s, by the database's clock) rather than deleted: the lease written
   * for an item's address deletes it (`putLease`), `removeQueuedWork` drops one that is not
   * needed, and an item whose coordinator died in between comes back when the time is up.
   */
  dequeueWork(limit: number, options: { holdMs?: number } = {}): Promise<QueuedWork[]> {
    const n = resolveLimit(limit, limit);
    const hold = Math.max(1000, Math.floor(options.holdMs ?? 60_000));
    return this.run('dequeueing work', async (q) => {
      const { rows } = await q.query(claimSql(), [n, hold]);
      return rows.sort(queueOrder).map(toQueued);
    });
  }

  /**
   * `dequeueWork` for an agent of `groups`: only items without `groups` or sharing one with
   * `groups` (the others stay visible in place for their agents), hidden for `holdMs` the same way.
   */
  dequeueWorkFor(limit: number, groups: readonly string[], options: { holdMs?: number } = {}): Promise<QueuedWork[]> {
    const n = resolveLimit(limit, limit);
    const hold = Math.max(1000, Math.floor(options.holdMs ?? 60_000));
    return this.run('dequeueing work for a group', async (q) => {
      const { rows } = await q.query(claimSql(`AND (doc::jsonb -> 'groups' IS NULL OR doc::jsonb -> 'groups' ?| $3::text[])`), [
        n,
        hold,
        [...groups],
      ]);
      return rows.sort(queueOrder).map(toQueued);
    });
  }

  listQueuedWork(limit?: number): Promise<QueuedWork[]> {
    const n = resolveLimit(limit, 10_000);
    return this.run('listing queued work', async (q) =>
      (await q.query('SELECT seq, doc FROM work_queue WHERE hidden_until = 0 ORDER BY priority, seq LIMIT $1', [n])).rows.map(toQueued),
    );
  }

  countQueuedWork(): Promise<number> {
    return this.run(
      'counting queued work',
      async (q) => (await q.query('SELECT COUNT(*)::int8 AS n FROM work_queue WHERE hidden_until = 0')).rows[0]!.n as number,
    );
  }

  /** Held items become visible again now (their hold ends), keeping their place in the queue. */
  releaseQueuedWork(ids: readonly string[]): Promise<number> {
    const seqs = ids.filter((id) => /^\d{1,15}$/u.test(id)).map(Number);
    if (seqs.length === 0) return Promise.resolve(0);
    return this.run(
      'releasing queued work',
      async (q) =>
        (await q.query('UPDATE work_queue SET hidden_until = 0 WHERE seq = ANY($1::int8[]) AND hidden_until > 0', [seqs])).rowCount ?? 0,
    );
  }

  removeQueuedWork(id: string): Promise<boolean> {
    if (!/^\d{1,15}$/u.test(id)) return Promise.resolve(false);
    return this.run(
      'removing queued work',
      async (q) => ((await q.query('DELETE FROM work_queue WHERE seq = $1', [Number(id)])).rowCount ?? 0) > 0,
    );
  }
}

/**
 * The claim of `dequeueWork`: the head of the queue in (class, sequence) order, never-held items
 * (work_queue_claim) and items whose hold ended (work_queue_held; normally none) merged, rows
 * another claim has locked skipped; each hidden for $2 ms from now. `filter` narrows both.
 * Not prepared: a generic plan does not know LIMIT's value and may sort the whole queue.
 */
export function claimSql(filter = ''): string {
  return `WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS ms),
     fresh AS (SELECT seq, priority FROM work_queue WHERE hidden_until = 0 ${filter}
               ORDER BY priority, seq LIMIT $1 FOR UPDATE SKIP LOCKED),
     ended AS (SELECT seq, priority FROM work_queue WHERE hidden_until > 0 AND hidden_until <= (SELECT ms FROM now) ${filter}
               ORDER BY priority, seq LIMIT $1 FOR UPDATE SKIP LOCKED),
     pick AS (SELECT seq FROM (SELECT * FROM fresh UNION ALL SELECT * FROM ended) AS u ORDER BY priority, seq LIMIT $1)
   UPDATE work_queue SET hidden_until = (SELECT ms FROM now) + $2 WHERE seq = ANY (ARRAY(SELECT seq FROM pick))
   RETURNING seq, priority, doc`;
}

/** The hot path's statements, prepared once per connection. */
const SQL = {
  leasesGet: prepared('leases_get', 'SELECT id, doc FROM leases WHERE id = ANY($1::text[])'),
  leaseTake: prepared('lease_take', 'DELETE FROM leases WHERE id = $1 RETURNING doc'),
  // The lease settles the queue item it was made from (hidden since its dequeue).
  leaseInsert: prepared(
    'lease_insert',
    `WITH l AS (INSERT INTO leases (id, ip, agent_id, deadline, doc) VALUES ($1, $2, $3, $4, $5) RETURNING ip)
     DELETE FROM work_queue w USING l WHERE w.ip = l.ip AND w.hidden_until > 0`,
  ),
  // A batch's leases; `taken`: the id existed before this statement (its snapshot does not see
  // its own inserts); a lease not inserted otherwise lost on its address.
  leasesInsert: prepared(
    'leases_insert',
    `WITH input AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[]) WITH ORDINALITY AS t(id, ip, agent_id, deadline, doc, i)),
         ins AS (
           INSERT INTO leases (id, ip, agent_id, deadline, doc) SELECT id, ip, agent_id, deadline, doc FROM input ORDER BY i
           ON CONFLICT DO NOTHING RETURNING id, ip),
         settled AS (DELETE FROM work_queue w USING ins WHERE w.ip = ins.ip AND w.hidden_until > 0)
         SELECT i, EXISTS (SELECT 1 FROM ins WHERE ins.id = input.id) AS stored, EXISTS (SELECT 1 FROM leases l WHERE l.id = input.id) AS taken FROM input ORDER BY i`,
  ),
  // WITH ORDINALITY keeps the caller's order in the sequence numbers.
  queueInsert: prepared(
    'queue_insert',
    `INSERT INTO work_queue (ip, priority, doc) SELECT p, r, d FROM unnest($1::text[], $2::int2[], $3::text[]) WITH ORDINALITY AS t(p, r, d, i) ORDER BY i RETURNING seq`,
  ),
  learningInsert: prepared(
    'learning_insert',
    'INSERT INTO learning_queue (doc) SELECT d FROM unnest($1::text[]) WITH ORDINALITY AS t(d, i) ORDER BY i',
  ),
};

function toDocument<T>(row: Row): StoredDocument<T> {
  return { key: row.key as string, value: parse<T>(row.value), revision: row.revision as number, updatedAt: row.updated_at as number };
}

function toAgent(row: Row): Agent {
  return {
    id: row.id as string,
    name: row.name as string,
    tokenHash: row.token_hash as string,
    createdAt: row.created_at as number,
    version: (row.version as string | null) ?? undefined,
    lastSeenAt: (row.last_seen_at as number | null) ?? undefined,
    counters: row.counters as Record<string, number>,
  };
}

function toToken(row: Row): AdminToken {
  return { id: row.id as string, name: row.name as string, tokenHash: row.token_hash as string, createdAt: row.created_at as number };
}

/** The queue's order (class, then sequence), for rows an UPDATE ... RETURNING gave back in no order. */
function queueOrder(a: Row, b: Row): number {
  return (a.priority as number) - (b.priority as number) || (a.seq as number) - (b.seq as number);
}

function toQueued(row: Row): QueuedWork {
  return { ...readQueuedDoc(row.doc), id: String(row.seq) };
}
