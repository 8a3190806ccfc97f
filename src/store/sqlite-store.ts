import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { PortbanditError, isPortbanditError } from '../core/index.js';
import { ipKey, canonicalIp } from './ip-key.js';
import { encodeScanCursor, resolveLimit, resolvePage } from './page.js';
import { type ScanIndexFields, indexScan, validateScan } from './scan-index.js';
import { queuePriority } from './queue-priority.js';
import { requeueItem } from './requeue.js';
import { readLeaseDoc, readQueuedDoc } from './lease-doc.js';
import { BACKSTOP_CHECKPOINT_PAGES, lazyCheckpointer, startCheckpointer } from './sqlite-checkpointer.js';
import { migrateSqlite } from './sqlite-schema.js';
import { HISTORY_COLUMNS, LATEST_COLUMNS, compileSqliteQuery, needsWords, type SqlColumns, type SqlCondition } from './sqlite-query.js';
import type { QueryNode } from './query-ast.js';
import type {
  AdminToken,
  Agent,
  AgentActivity,
  DocumentCollection,
  EventPage,
  IngestInput,
  IngestResult,
  Lease,
  LearningItem,
  LearningRecord,
  NewAgent,
  NewStoreEvent,
  OutboxEntry,
  OutboxRecord,
  Page,
  PageRequest,
  QueuedWork,
  QueuedWorkInput,
  ScanDocument,
  ScopeEntryInput,
  ScopeListName,
  ScopeListing,
  SearchOptions,
  SearchView,
  Store,
  StoreCounts,
  StoredDocument,
  StoreEvent,
} from './types.js';
import { ANSWERED_SEARCH_DEPTH } from './types.js';

export interface SqliteStoreOptions {
  /** Database file (its directory is created), or ':memory:' for a throw-away store. */
  readonly path: string;
  /**
   * Copy the WAL into the database file on a worker thread every this many ms (default 1000),
   * instead of inside the commits of the event loop's thread; 0 = SQLite's own automatic
   * checkpoints (sqlite-checkpointer.ts says why).
   */
  readonly checkpointIntervalMs?: number;
  /** WAL length (pages) from which the checkpoint worker resets the WAL (default RESTART_PAGES, 1 GiB). */
  readonly checkpointRestartPages?: number;
  /**
   * Record every stored visit, event append and history deletion in the outbox, in the same
   * transaction, for a feeder to carry to a separate search index (docs/store.md). Default false.
   */
  readonly outbox?: boolean;
  /**
   * How long a write waits for another connection's lock before failing with PB_ERR_STORE_BUSY
   * (503 with Retry-After over HTTP), ms (default 5,000).
   */
  readonly busyTimeoutMs?: number;
  /**
   * A read-only connection (sqlite-thread.ts reads on the calling thread through one): no
   * migration, no checkpoints; a write fails. The database must exist, at this schema version.
   */
  readonly readOnly?: boolean;
}

/**
 * Default of SqliteStoreOptions.checkpointIntervalMs. A pass copies each changed page once however
 * often it was committed, so rarer passes copy less: 1 s cost ~25% less CPU per lease than 250 ms.
 */
export const CHECKPOINT_INTERVAL_MS = 1000;

type Row = Record<string, unknown>;
type LazyCheckpointer = ReturnType<typeof lazyCheckpointer>;

/** Open (and create or migrate) a SQLite store: WAL journal, one connection, prepared statements. */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  try {
    const readOnly = options.readOnly === true;
    if (options.path !== ':memory:' && !readOnly) mkdirSync(dirname(options.path), { recursive: true });
    const db = new Database(options.path, { readonly: readOnly, fileMustExist: readOnly });
    if (!readOnly) db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    // The default 2 MiB page cache thrashes on a /16 of hosts (terms + latest + documents);
    // 64 MiB of cache plus memory-mapped reads keep searches and ingest off the read() path.
    db.pragma('cache_size = -65536');
    db.pragma('mmap_size = 268435456');
    db.pragma('temp_store = MEMORY');
    migrateSqlite(db, options.path);
    const interval = options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS;
    let checkpointer: LazyCheckpointer | undefined;
    if (options.path !== ':memory:' && interval > 0 && !readOnly) {
      let warned = false;
      checkpointer = lazyCheckpointer(() => {
        db.pragma(`wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
        return startCheckpointer(
          options.path,
          interval,
          (message) => {
            if (!warned)
              process.emitWarning(
                `SQLite checkpoints on the worker thread failed (${options.path}): ${message}; the automatic checkpoint takes over`,
              );
            warned = true;
          },
          options.checkpointRestartPages,
        );
      });
    }
    return new SqliteStore(db, options.path, checkpointer, options.outbox ?? false);
  } catch (error) {
    throw wrapError(error, `opening ${options.path}`);
  }
}

function wrapError(error: unknown, what: string): PortbanditError {
  if (isPortbanditError(error)) return error;
  // Another connection held the database past the busy timeout (5 s): overload, not damage.
  if (isBusy(error))
    return new PortbanditError('PB_ERR_STORE_BUSY', `SQLite store stayed locked while ${what}: ${(error as Error).message}`, {
      cause: error,
    });
  return new PortbanditError('PB_ERR_STORE', `SQLite store failed while ${what}: ${(error as Error)?.message ?? String(error)}`, {
    cause: error,
  });
}

/** SQLITE_BUSY (and its extended codes) or SQLITE_LOCKED: the database was locked by another connection. */
function isBusy(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? String((error as { code?: unknown }).code) : '';
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && String((error as { code?: unknown }).code).startsWith('SQLITE_CONSTRAINT');
}

/** Grouped writes per transaction (a batch lease of 64 and a batch of 64 results fit in one); more wait for the next turn. */
const MAX_GROUP_WRITES = 128;

/** Facet rows per INSERT statement (3 parameters each). */
const TERM_ROWS_PER_STATEMENT = 64;

/** Event rows per INSERT statement. */
const EVENT_ROWS_PER_STATEMENT = 32;

const parse = <T>(text: unknown): T => JSON.parse(text as string) as T;

/** A grouped write waiting for its commit (SqliteStore.batched). */
interface PendingWrite {
  what: string;
  work: () => unknown;
  resolve: (result: never) => void;
  reject: (error: unknown) => void;
}

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly file: string;
  private readonly stmt: ReturnType<typeof prepareStatements>;
  private readonly cache = new Map<string, Database.Statement>();
  /** Multi-row facet inserts by row count (1..TERM_ROWS_PER_STATEMENT), per table. */
  private readonly termInserts: Database.Statement[] = [];
  private readonly latestTermInserts: Database.Statement[] = [];
  /** Multi-row event inserts by row count (1..EVENT_ROWS_PER_STATEMENT). */
  private readonly eventInserts: Database.Statement[] = [];
  /** One savepoint around a grouped write (reused: building a transaction function per write shows in profiles). */
  private readonly savepoint: (work: () => unknown) => unknown;
  /** A group of writes in one BEGIN IMMEDIATE transaction, no savepoint per write (flushWrites). */
  private readonly group: (batch: readonly { work: () => unknown }[]) => unknown[];
  /** A deferred group commit's retry is on a timer. */
  private retryScheduled = false;
  /** A flush is due in this turn's check phase (setImmediate). */
  private flushDue = false;
  /** A flush of leases is due once this turn's callbacks have run to their awaits (process.nextTick). */
  private leaseFlushDue = false;
  /** Grouped writes waiting for their commit: leases (an agent waits on them) and the rest. */
  private readonly pendingLeases: PendingWrite[] = [];
  private readonly pendingWrites: PendingWrite[] = [];

  constructor(
    db: Database.Database,
    file: string,
    private readonly checkpointer: LazyCheckpointer | undefined,
    private readonly outbox: boolean,
  ) {
    this.db = db;
    this.file = file;
    this.stmt = prepareStatements(db);
    this.savepoint = db.transaction((work: () => unknown) => work());
    this.group = db.transaction((batch: readonly { work: () => unknown }[]) => batch.map(({ work }) => work())).immediate;
  }

  /** Run synchronous SQLite work, mapping backend failures to PB_ERR_STORE. */
  private async run<T>(what: string, work: () => T): Promise<T> {
    try {
      return work();
    } catch (error) {
      throw wrapError(error, `${what} (${this.file})`);
    }
  }

  async close(): Promise<void> {
    // Stopped first, so that the writes flushed here do not start a worker that has not run yet.
    // The worker's connection closes before the main one: the last to close checkpoints and removes the WAL.
    const stopping = this.checkpointer?.close();
    this.flushWrites(true);
    await stopping;
    this.flushWrites(true);
    await this.run('closing', () => this.db.close());
  }

  // ------------------------------------------------------------------ scope
  listScope(list: ScopeListName): Promise<ScopeListing> {
    return this.run('listing the scope', () => {
      const entries = (this.stmt.scopeList.all(list) as Row[]).map((row) => ({
        range: row.range as string,
        tags: parse<string[]>(row.tags),
        addedAt: row.added_at as number,
      }));
      return { version: this.scopeVersion(), entries };
    });
  }

  private scopeVersion(): number {
    return (this.stmt.metaGet.get('scope_version') as Row).value as number;
  }

  private bumpScopeVersion(): number {
    this.stmt.metaBump.run('scope_version');
    return this.scopeVersion();
  }

  addScopeEntries(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number> {
    return this.run('adding scope entries', () =>
      this.db
        .transaction(() => {
          let changed = 0;
          for (const entry of entries) {
            changed += this.stmt.scopeUpsert.run(list, entry.range, JSON.stringify([...entry.tags]), at).changes;
          }
          return changed > 0 ? this.bumpScopeVersion() : this.scopeVersion();
        })
        .immediate(),
    );
  }

  removeScopeEntries(list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }> {
    return this.run('removing scope entries', () =>
      this.db
        .transaction(() => {
          let removed = 0;
          for (const range of ranges) removed += this.stmt.scopeDelete.run(list, range).changes;
          return { removed, version: removed > 0 ? this.bumpScopeVersion() : this.scopeVersion() };
        })
        .immediate(),
    );
  }

  replaceScope(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number> {
    return this.run('replacing the scope', () =>
      this.db
        .transaction(() => {
          this.stmt.scopeClear.run(list);
          for (const entry of entries) this.stmt.scopeUpsert.run(list, entry.range, JSON.stringify([...entry.tags]), at);
          return this.bumpScopeVersion();
        })
        .immediate(),
    );
  }

  getScopeVersion(): Promise<number> {
    return this.run('reading the scope version', () => this.scopeVersion());
  }

  // ------------------------------------------------------------------ documents
  getDocument<T = unknown>(collection: DocumentCollection, key: string): Promise<StoredDocument<T> | undefined> {
    return this.run('reading a document', () => {
      const row = this.stmt.docGet.get(collection, key) as Row | undefined;
      return row ? toDocument<T>(row) : undefined;
    });
  }

  putDocument<T = unknown>(
    collection: DocumentCollection,
    key: string,
    value: T,
    options: { at: number; expectedRevision?: number; enqueue?: readonly QueuedWorkInput[] },
  ): Promise<StoredDocument<T>> {
    // Serialised now, in the caller's turn, not inside the shared commit: a learned state is
    // ~1 MB of JSON that every write grouped with it would otherwise wait for.
    let serialized: string | undefined;
    try {
      serialized = JSON.stringify(value);
    } catch (error) {
      return Promise.reject(wrapError(error, `serialising ${collection}/${key}`));
    }
    // Grouped, behind the lease writes (leases commit first): the coordinator's cycle position (a
    // document) then never commits ahead of the leases for the targets it has handed out, so a
    // crash skips none. A crash between the leases' commit and the next one (the same turn's
    // other writes) leaves the position behind them: those addresses are handed out again.
    return this.batched('writing a document', false, () => {
      const row = this.stmt.docGet.get(collection, key) as Row | undefined;
      const current = row ? (row.revision as number) : 0;
      if (options.expectedRevision !== undefined && options.expectedRevision !== current) {
        throw new PortbanditError(
          'PB_ERR_CONFLICT',
          `${collection}/${key} is at revision ${current}, not the expected ${options.expectedRevision}; reload and retry`,
          { where: `${collection}/${key}` },
        );
      }
      const json = serialized;
      if (json === undefined)
        throw new PortbanditError('PB_ERR_DOCUMENT_VALUE', 'the document value has no JSON form', { where: `${collection}/${key}` });
      this.stmt.docPut.run(collection, key, json, current + 1, options.at);
      for (const item of options.enqueue ?? []) this.insertQueued({ ...item, ip: canonicalIp(item.ip, 'enqueue.ip') });
      // The stored copy is parsed only if the caller reads it: a learned state is ~1 MB of JSON
      // (~20 ms to parse) that the writer never looks at again.
      let stored: T | undefined;
      return {
        key,
        get value(): T {
          return (stored ??= parse<T>(json));
        },
        revision: current + 1,
        updatedAt: options.at,
      };
    });
  }

  listDocuments<T = unknown>(collection: DocumentCollection): Promise<StoredDocument<T>[]> {
    return this.run('listing documents', () => (this.stmt.docList.all(collection) as Row[]).map((row) => toDocument<T>(row)));
  }

  deleteDocument(collection: DocumentCollection, key: string): Promise<boolean> {
    return this.run('deleting a document', () => this.stmt.docDelete.run(collection, key).changes > 0);
  }

  // ------------------------------------------------------------------ agents and tokens
  createAgent(agent: NewAgent): Promise<Agent> {
    return this.run('creating an agent', () => {
      try {
        this.stmt.agentInsert.run(agent.id, agent.name, agent.tokenHash, agent.version ?? null, agent.createdAt, '{}');
      } catch (error) {
        if (isUniqueViolation(error)) {
          throw new PortbanditError('PB_ERR_CONFLICT', `an agent with id '${agent.id}' or the same token already exists`, {
            where: 'agent.id',
          });
        }
        throw error;
      }
      return toAgent(this.stmt.agentGet.get(agent.id) as Row);
    });
  }

  getAgent(id: string): Promise<Agent | undefined> {
    return this.run('reading an agent', () => {
      const row = this.stmt.agentGet.get(id) as Row | undefined;
      return row ? toAgent(row) : undefined;
    });
  }

  findAgentByTokenHash(tokenHash: string): Promise<Agent | undefined> {
    return this.run('finding an agent', () => {
      const row = this.stmt.agentByHash.get(tokenHash) as Row | undefined;
      return row ? toAgent(row) : undefined;
    });
  }

  listAgents(): Promise<Agent[]> {
    return this.run('listing agents', () => (this.stmt.agentList.all() as Row[]).map(toAgent));
  }

  recordAgentActivity(id: string, activity: AgentActivity): Promise<Agent> {
    // Grouped: the coordinator flushes its agents' activity together, one commit for all.
    return this.batched('recording agent activity', false, () => {
      const row = this.stmt.agentGet.get(id) as Row | undefined;
      if (!row) throw new PortbanditError('PB_ERR_NOT_FOUND', `no agent with id '${id}'`, { where: 'agent.id' });
      const counters = parse<Record<string, number>>(row.counters);
      for (const [name, delta] of Object.entries(activity.increments ?? {})) counters[name] = (counters[name] ?? 0) + delta;
      const lastSeen = Math.max((row.last_seen_at as number | null) ?? activity.at, activity.at);
      this.stmt.agentActivity.run(lastSeen, activity.version ?? (row.version as string | null), JSON.stringify(counters), id);
      return toAgent(this.stmt.agentGet.get(id) as Row);
    });
  }

  deleteAgent(id: string): Promise<boolean> {
    return this.run('deleting an agent', () => this.stmt.agentDelete.run(id).changes > 0);
  }

  createAdminToken(token: AdminToken): Promise<AdminToken> {
    return this.run('creating an admin token', () => {
      try {
        this.stmt.tokenInsert.run(token.id, token.name, token.tokenHash, token.createdAt);
      } catch (error) {
        if (isUniqueViolation(error)) {
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
    return this.run('finding an admin token', () => {
      const row = this.stmt.tokenByHash.get(tokenHash) as Row | undefined;
      return row ? toToken(row) : undefined;
    });
  }

  listAdminTokens(): Promise<AdminToken[]> {
    return this.run('listing admin tokens', () => (this.stmt.tokenList.all() as Row[]).map(toToken));
  }

  deleteAdminToken(id: string): Promise<boolean> {
    return this.run('deleting an admin token', () => this.stmt.tokenDelete.run(id).changes > 0);
  }

  // ------------------------------------------------------------------ leases and queue
  putLease(lease: Lease): Promise<void> {
    return this.batched('storing a lease', true, () => {
      const ip = canonicalIp(lease.ip, 'lease.ip');
      try {
        this.stmt.leaseInsert.run(lease.id, ip, lease.agentId, lease.deadline, JSON.stringify({ ...lease, ip }));
      } catch (error) {
        if (isUniqueViolation(error))
          throw new PortbanditError('PB_ERR_CONFLICT', `a lease with id '${lease.id}' already exists`, { where: 'lease.id' });
        throw error;
      }
    });
  }

  getLease(id: string): Promise<Lease | undefined> {
    return this.run('reading a lease', () => {
      const row = this.stmt.leaseGet.get(id) as Row | undefined;
      return row ? toLease(row) : undefined;
    });
  }

  listLeases(filter: { agentId?: string; ip?: string } = {}): Promise<Lease[]> {
    return this.run('listing leases', () => {
      // Separate statements per filter so each can use its index (an `? IS NULL OR` test cannot).
      const conditions: string[] = [];
      const params: unknown[] = [];
      if (filter.agentId !== undefined) {
        conditions.push('agent_id = ?');
        params.push(filter.agentId);
      }
      if (filter.ip !== undefined) {
        conditions.push('ip = ?');
        params.push(canonicalIp(filter.ip, 'ip'));
      }
      const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
      return (this.prepared(`SELECT doc FROM leases${where} ORDER BY deadline, id`).all(...params) as Row[]).map(toLease);
    });
  }

  countLeases(filter: { agentId?: string; liveAt?: number } = {}): Promise<number> {
    return this.run('counting leases', () => {
      if (filter.liveAt !== undefined) {
        if (filter.agentId !== undefined)
          return (
            this.prepared('SELECT COUNT(*) AS n FROM leases WHERE agent_id = ? AND deadline > ?').get(filter.agentId, filter.liveAt) as Row
          ).n as number;
        return (this.stmt.leaseCountLive.get(filter.liveAt) as Row).n as number;
      }
      return (
        filter.agentId === undefined ? (this.stmt.leaseCountAll.get() as Row) : (this.stmt.leaseCountAgent.get(filter.agentId) as Row)
      ).n as number;
    });
  }

  renewLease(id: string, deadline: number): Promise<boolean> {
    return this.run('renewing a lease', () =>
      this.db
        .transaction(() => {
          const row = this.stmt.leaseGet.get(id) as Row | undefined;
          if (!row) return false;
          this.stmt.leaseRenew.run(deadline, JSON.stringify({ ...toLease(row), deadline }), id);
          return true;
        })
        .immediate(),
    );
  }

  completeLease(id: string): Promise<Lease | undefined> {
    return this.batched('completing a lease', false, () => this.takeLease(id));
  }

  private takeLease(id: string): Lease | undefined {
    // One statement (DELETE ... RETURNING), not a read and a delete: one per stored result.
    const row = this.stmt.leaseTake.get(id) as Row | undefined;
    return row ? toLease(row) : undefined;
  }

  takeExpiredLeases(now: number, limit: number, options: { requeue?: boolean } = {}): Promise<Lease[]> {
    return this.run('taking expired leases', () =>
      this.db
        .transaction(() => {
          const rows = this.stmt.leaseExpired.all(now, resolveLimit(limit, limit)) as Row[];
          const leases = rows.map(toLease);
          for (const lease of leases) {
            this.stmt.leaseDelete.run(lease.id);
            if (options.requeue) this.insertQueued(requeueItem(lease, now));
          }
          return leases;
        })
        .immediate(),
    );
  }

  private insertQueued(item: QueuedWorkInput): QueuedWork {
    const { json, id } = this.insertQueuedDoc(item);
    return { ...readQueuedDoc(json), id };
  }

  /** Queue an item; its stored JSON and id (the caller builds the copy it returns, if any). */
  private insertQueuedDoc(item: QueuedWorkInput): { json: string; id: string } {
    const json = JSON.stringify(item);
    return { json, id: String(this.stmt.queueInsert.run(queuePriority(item), json).lastInsertRowid) };
  }

  enqueueWork(items: readonly QueuedWorkInput[]): Promise<QueuedWork[]> {
    return this.batched('enqueueing work', false, () =>
      items.map((item) => this.insertQueued({ ...item, ip: canonicalIp(item.ip, 'work.ip') })),
    );
  }

  /**
   * Its own small transaction at once, not the group commit: the caller (getwork) must then write
   * the lease, and two group commits in a row put a follow-up round's getwork a whole extra turn
   * of the event loop behind. At a paced 538 pairs/s, getwork p99 inside the server went from
   * 34-47 ms to 8-10 ms. A dequeue does not see writes still waiting for the group commit (an
   * enqueue of the same turn), as if it had run before them; that is all a queue needs.
   */
  dequeueWork(limit: number): Promise<QueuedWork[]> {
    return this.run('dequeueing work', () =>
      this.db
        .transaction(() => {
          const rows = this.stmt.queueHead.all(resolveLimit(limit, limit)) as Row[];
          for (const row of rows) this.stmt.queueDelete.run(row.seq);
          return rows.map(toQueued);
        })
        .immediate(),
    );
  }

  listQueuedWork(limit?: number): Promise<QueuedWork[]> {
    return this.run('listing queued work', () => (this.stmt.queueHead.all(resolveLimit(limit, 10_000)) as Row[]).map(toQueued));
  }

  countQueuedWork(): Promise<number> {
    return this.run('counting queued work', () => (this.stmt.queueCount.get() as Row).n as number);
  }

  /** A dequeue removed its items (one process: nothing to come back for): nothing is held. */
  releaseQueuedWork(_ids: readonly string[]): Promise<number> {
    return Promise.resolve(0);
  }

  removeQueuedWork(id: string): Promise<boolean> {
    return this.run('removing queued work', () => /^\d+$/u.test(id) && this.stmt.queueDelete.run(Number(id)).changes > 0);
  }

  // ------------------------------------------------------------------ work routed by agent group
  private queueForGroups: Database.Statement | undefined;

  /** `dequeueWork` for an agent of `groups`: skips items reserved to other groups (a scan of the queue, which stays small). */
  dequeueWorkFor(limit: number, groups: readonly string[]): Promise<QueuedWork[]> {
    const wanted = JSON.stringify([...groups]);
    return this.run('dequeueing work for a group', () =>
      this.db
        .transaction(() => {
          this.queueForGroups ??= this.db.prepare(
            `SELECT seq, doc FROM work_queue
           WHERE json_type(doc, '$.groups') IS NULL
              OR EXISTS (SELECT 1 FROM json_each(doc, '$.groups') g WHERE g.value IN (SELECT value FROM json_each(?)))
           ORDER BY priority, seq LIMIT ?`,
          );
          const rows = this.queueForGroups.all(wanted, resolveLimit(limit, limit)) as Row[];
          for (const row of rows) this.stmt.queueDelete.run(row.seq);
          return rows.map(toQueued);
        })
        .immediate(),
    );
  }

  // ------------------------------------------------------------------ several coordinators
  createFirstAdminToken(token: AdminToken): Promise<boolean> {
    return this.run('creating the first admin token', () =>
      this.db
        .transaction(() => {
          if ((this.stmt.tokenList.all() as Row[]).length > 0) return false;
          this.stmt.tokenInsert.run(token.id, token.name, token.tokenHash, token.createdAt);
          return true;
        })
        .immediate(),
    );
  }

  // ------------------------------------------------------------------ history retention
  private retentionStmts: { isLatest: Database.Statement; deleteScan: Database.Statement } | undefined;

  /** One transaction: the history rows and their scan_terms; a host's latest row is refused. */
  deleteHistory(scanIds: readonly string[]): Promise<{ deleted: number; refusedLatest: number }> {
    // Writes still waiting for the group commit go first: an ingest of the same turn is seen.
    this.flushWrites(true);
    return this.run('deleting history', () => {
      this.retentionStmts ??= {
        isLatest: this.db.prepare('SELECT 1 FROM latest WHERE scan_row = ?'),
        deleteScan: this.db.prepare('DELETE FROM scans WHERE row = ?'),
      };
      const stmts = this.retentionStmts;
      return this.db
        .transaction(() => {
          let deleted = 0;
          let refusedLatest = 0;
          const gone: string[] = [];
          for (const id of scanIds) {
            const row = (this.stmt.scanRow.get(id) as Row | undefined)?.row as number | undefined;
            if (row === undefined) continue;
            if (stmts.isLatest.get(row) !== undefined) {
              refusedLatest++;
              continue;
            }
            this.stmt.scanTermsClear.run(row);
            if (stmts.deleteScan.run(row).changes > 0) {
              deleted++;
              gone.push(id);
            }
          }
          if (this.outbox && gone.length > 0) this.stmt.outboxInsert.run(JSON.stringify({ kind: 'delete', scanIds: gone }));
          return { deleted, refusedLatest };
        })
        .immediate();
    });
  }

  /** One process owns a SQLite store (the CLI next to `serve` never learns): it holds every role. */
  holdRole(_role: string): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** One writer commits in sequence order, so a sequence number is a safe position. */
  readLearning(after: string | undefined): Promise<{ items: LearningRecord[]; cursor: string }> {
    return this.run('reading learning items', () => {
      const from = after === undefined ? 0 : Number(after);
      if (!Number.isSafeInteger(from) || from < 0)
        throw new PortbanditError('PB_ERR_CURSOR', `'${after}' is not a learning cursor`, { where: 'after' });
      const rows = this.stmt.learningFrom.all(from) as Row[];
      const items = rows.map((row) => ({ ...parse<LearningItem>(row.doc), position: String(row.seq) }));
      return { items, cursor: String(rows.length > 0 ? (rows.at(-1)!.seq as number) + 1 : from) };
    });
  }

  pruneLearning(before: string): Promise<number> {
    return this.run('pruning learning items', () => this.stmt.learningPrune.run(Number(before)).changes);
  }

  // ------------------------------------------------------------------ outbox
  /**
   * Events inserted in the current transaction, many per statement; with `stored`, returned with
   * their sequence numbers as ids (for the outbox; else an empty list, nothing to build). One
   * writer, AUTOINCREMENT: the rows of one INSERT get consecutive numbers in VALUES order.
   */
  private insertEvents(events: readonly NewStoreEvent[], stored = true): StoreEvent[] {
    const out: StoreEvent[] = [];
    for (let i = 0; i < events.length; i += EVENT_ROWS_PER_STATEMENT) {
      const docs = events.slice(i, i + EVENT_ROWS_PER_STATEMENT).map((event) => JSON.stringify(event));
      let statement = this.eventInserts[docs.length];
      if (!statement) {
        statement = this.db.prepare(`INSERT INTO events (doc) VALUES ${docs.map(() => '(?)').join(', ')}`);
        this.eventInserts[docs.length] = statement;
      }
      const last = Number(statement.run(docs).lastInsertRowid);
      if (stored) docs.forEach((json, k) => out.push({ ...parse<NewStoreEvent>(json), id: String(last - docs.length + 1 + k) }));
    }
    return out;
  }

  readOutbox(limit: number): Promise<OutboxRecord[]> {
    // Grouped writes acknowledged so far are in it (a read in the same turn would miss them).
    this.flushWrites(true);
    return this.run('reading the outbox', () =>
      (this.stmt.outboxHead.all(resolveLimit(limit, limit)) as Row[]).map(
        (row) => ({ ...parse<OutboxEntry>(row.doc), id: String(row.seq) }) as OutboxRecord,
      ),
    );
  }

  ackOutbox(ids: readonly string[]): Promise<number> {
    return this.run('acknowledging outbox records', () =>
      this.db
        .transaction(() => {
          let removed = 0;
          for (const id of ids) if (/^\d{1,15}$/u.test(id)) removed += this.stmt.outboxDelete.run(Number(id)).changes;
          return removed;
        })
        .immediate(),
    );
  }

  countOutbox(): Promise<number> {
    return this.run('counting the outbox', () => (this.stmt.outboxCount.get() as Row).n as number);
  }

  // ------------------------------------------------------------------ scans
  ingestScan(input: IngestInput): Promise<IngestResult> {
    return this.batched('ingesting a scan', false, () => this.ingestOne(input));
  }

  /**
   * Group commit of the hot writes (ingests, leases, enqueued work): calls made in the same turn
   * of the event loop share one transaction (one WAL commit; up to MAX_GROUP_WRITES of them, the
   * rest in the next turns, in order). Each promise settles after the commit, so whatever was
   * acknowledged is committed; a crash loses only writes whose callers were still waiting. Writes
   * apply in call order, but for leases (`lease`): they go first, in a commit of their own made
   * as soon as their request has issued them (flushLeasesSoon), and the other writes in the
   * check phase, after the lease answers are on their way: an agent with idle scanners waits on
   * its leases, while a submit's ingests (64 per batch, ~0.2 ms each) only wait to be
   * acknowledged. A lease write depends on no other pending write (an ingest's
   * follow-up work is dequeued only once committed). A read issued in the same turn before the
   * flush does not see pending writes yet (callers await the write before depending on it).
   */
  private batched<T>(what: string, lease: boolean, work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      (lease ? this.pendingLeases : this.pendingWrites).push({ what, work, resolve: resolve as (result: never) => void, reject });
      if (lease) this.flushLeasesSoon();
      else this.flushSoon();
    });
  }

  /**
   * Leases commit as soon as the request that wrote them has issued all its writes (a batch
   * lease's 64 `putLease` calls are made before it awaits them), not in the check phase behind
   * whatever else is queued there (a batch of results' next slice, ~5-8 ms each).
   */
  private flushLeasesSoon(): void {
    if (this.leaseFlushDue) return;
    this.leaseFlushDue = true;
    process.nextTick(() => {
      this.leaseFlushDue = false;
      this.flushWrites();
    });
  }

  private flushSoon(): void {
    if (this.flushDue) return;
    this.flushDue = true;
    setImmediate(() => {
      this.flushDue = false;
      this.flushWrites();
    });
  }

  private flushWrites(force = false): void {
    if (this.pendingLeases.length === 0 && this.pendingWrites.length === 0) return;
    this.checkpointer?.start();
    // The checkpoint worker is copying the last frames so that this commit restarts the WAL: the
    // writes wait (a few ms, bounded), the event loop does not.
    if (!force && this.checkpointer?.shouldDefer(performance.now())) {
      if (!this.retryScheduled) {
        this.retryScheduled = true;
        setTimeout(() => {
          this.retryScheduled = false;
          this.flushWrites();
        }, 1);
      }
      return;
    }
    // At most MAX_GROUP_WRITES per transaction (all on close or a forced flush): 1,000 agents
    // submitting batches at once queued ~60,000 writes in one turn, one synchronous commit that
    // held the event loop for seconds; the rest follow in the next turns, in call order.
    const batch = force
      ? [...this.pendingLeases.splice(0), ...this.pendingWrites.splice(0)]
      : this.pendingLeases.length > 0
        ? this.pendingLeases.splice(0, MAX_GROUP_WRITES)
        : this.pendingWrites.splice(0, MAX_GROUP_WRITES);
    if (this.pendingLeases.length > 0 || this.pendingWrites.length > 0) this.flushSoon();
    // The common case first: every write succeeds, and the group commits without a savepoint per
    // write (a SAVEPOINT and a RELEASE each were ~10-17% of the CPU of a host visit). A write that
    // throws rolls the whole group back; it is then run again with a savepoint per write, so the
    // failing write rolls back only itself (the writes touch nothing but the database and its
    // statement cache, so running them twice is safe).
    let results: unknown[] | undefined;
    try {
      results = this.group(batch);
    } catch {
      results = undefined;
    }
    if (results !== undefined) {
      batch.forEach((item, i) => item.resolve(results[i] as never));
      return;
    }
    const outcomes: ({ ok: true; result: unknown } | { ok: false; error: PortbanditError })[] = [];
    try {
      this.db
        .transaction(() => {
          for (const { what, work } of batch) {
            try {
              outcomes.push({ ok: true, result: this.savepoint(work) });
            } catch (error) {
              outcomes.push({ ok: false, error: wrapError(error, `${what} (${this.file})`) });
            }
          }
        })
        .immediate();
    } catch (error) {
      const failure = wrapError(error, `committing ${batch.length} grouped writes (${this.file})`);
      for (const item of batch) item.reject(failure);
      return;
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.result as never);
      else item.reject(outcome.error);
    });
  }

  /** One ingest inside the batch transaction (`batched` wraps it in a savepoint). */
  private ingestOne(input: IngestInput): IngestResult {
    const scan = validateScan(input.scan);
    const fields = indexScan(scan);
    const key = ipKey(scan.ip, 'scan.ip');
    return ((): IngestResult => {
      const words = fields.words.length === 0 ? ' ' : ` ${fields.words.join(' ')} `;
      let row: number;
      const terms = termPairs(fields);
      /** The visit's facets as stored before this round (a later round of a stored visit). */
      let before: string[] | undefined;
      const existing = this.stmt.scanRow.get(scan.scanId) as Row | undefined;
      if (existing !== undefined) {
        // A later round of a stored visit replaces the visit's document, exactly once per lease:
        // the lease goes in the same transaction, so a retried submit finds it gone.
        if (!input.replace || input.leaseId === undefined || !this.stmt.leaseGet.get(input.leaseId))
          return { inserted: false, latest: false };
        row = existing.row as number;
        this.stmt.scanUpdate.run(scan.finishedAt, words, JSON.stringify(scan), row);
        before = termPairsOf(this.stmt.scanTermsOf.all(row) as Row[]);
        this.changeTerms('scan_terms', row, before, terms);
      } else {
        row = Number(this.stmt.scanInsert.run(scan.scanId, scan.ip, key, scan.finishedAt, words, JSON.stringify(scan)).lastInsertRowid);
        this.insertTermRows('scan_terms', row, terms);
      }
      const current = this.stmt.latestGet.get(key) as Row | undefined;
      const newer =
        current === undefined ||
        current.scan_row === row ||
        scan.finishedAt > (current.finished_at as number) ||
        (scan.finishedAt === current.finished_at && scan.scanId > (current.scan_id as string));
      if (newer) {
        this.stmt.latestPut.run(key, row, scan.finishedAt, scan.scanId);
        // The host's facets become the scan's. Only what changed is written: a later round, or the
        // next visit of a host whose ports stayed the same, rewrites no facet row (a row deleted
        // and inserted again costs two index updates in each of the table's two indexes).
        if (current === undefined) this.insertTermRows('latest_terms', key, terms);
        else {
          const held = current.scan_row === row && before !== undefined ? before : termPairsOf(this.stmt.latestTermsOf.all(key) as Row[]);
          this.changeTerms('latest_terms', key, held, terms);
        }
      }
      const events = this.insertEvents(input.events ?? [], this.outbox);
      if (this.outbox) this.stmt.outboxInsert.run(JSON.stringify({ kind: 'visit', scan, latest: newer, events }));
      const result: IngestResult = { inserted: true, latest: newer };
      // The completed lease and the queued copies are parsed only if the caller reads them (the
      // coordinator does not): a lease carries its host session, kilobytes of JSON per result.
      const leaseDoc = input.leaseId === undefined ? undefined : (this.stmt.leaseTake.get(input.leaseId) as Row | undefined)?.doc;
      if (leaseDoc !== undefined) lazyProperty(result, 'lease', () => readLeaseDoc(leaseDoc));
      const queued = input.enqueue?.map((item) => this.insertQueuedDoc({ ...item, ip: canonicalIp(item.ip, 'enqueue.ip') }));
      if (queued && queued.length > 0) lazyProperty(result, 'queued', () => queued.map(({ json, id }) => ({ ...readQueuedDoc(json), id })));
      for (const item of input.learn ?? []) this.stmt.learningInsert.run(JSON.stringify(item));
      return result;
    })();
  }

  /** Make a facet table's rows of one scan (or host) `after` from `before` (flat field, value pairs): delete what went, insert what came. */
  private changeTerms(
    table: 'scan_terms' | 'latest_terms',
    owner: number | Buffer,
    before: readonly string[],
    after: readonly string[],
  ): void {
    const had = new Set<string>();
    for (let i = 0; i < before.length; i += 2) had.add(`${before[i]}\u0000${before[i + 1]}`);
    const added: string[] = [];
    for (let i = 0; i < after.length; i += 2) {
      if (!had.delete(`${after[i]}\u0000${after[i + 1]}`)) added.push(after[i]!, after[i + 1]!);
    }
    const drop = table === 'scan_terms' ? this.stmt.scanTermDelete : this.stmt.latestTermDelete;
    for (const gone of had) {
      const cut = gone.indexOf('\u0000');
      drop.run(gone.slice(0, cut), gone.slice(cut + 1), owner);
    }
    this.insertTermRows(table, owner, added);
  }

  /**
   * Facet rows of one scan (`scan_terms`) or host (`latest_terms`), many per statement: one
   * statement per row made the per-call overhead (bind, step, reset across the native boundary)
   * the larger part of an ingest.
   */
  private insertTermRows(table: 'scan_terms' | 'latest_terms', owner: number | Buffer, pairs: readonly string[]): void {
    for (let i = 0; i < pairs.length; i += 2 * TERM_ROWS_PER_STATEMENT) {
      const params: (string | number | Buffer)[] = [];
      for (let k = i; k < Math.min(pairs.length, i + 2 * TERM_ROWS_PER_STATEMENT); k += 2) params.push(pairs[k]!, pairs[k + 1]!, owner);
      this.termInsertRows(table, params.length / 3).run(params);
    }
  }

  private termInsertRows(table: 'scan_terms' | 'latest_terms', rows: number): Database.Statement {
    const cache = table === 'scan_terms' ? this.termInserts : this.latestTermInserts;
    let statement = cache[rows];
    if (!statement) {
      const owner = table === 'scan_terms' ? 'scan_row' : 'ip_key';
      statement = this.db.prepare(
        `INSERT OR IGNORE INTO ${table} (field, value, ${owner}) VALUES ${Array.from({ length: rows }, () => '(?, ?, ?)').join(', ')}`,
      );
      cache[rows] = statement;
    }
    return statement;
  }

  getScan(scanId: string): Promise<ScanDocument | undefined> {
    return this.run('reading a scan', () => {
      const row = this.stmt.scanGet.get(scanId) as Row | undefined;
      return row ? parse<ScanDocument>(row.doc) : undefined;
    });
  }

  getLatestScan(ip: string): Promise<ScanDocument | undefined> {
    return this.run('reading the latest scan', () => {
      const row = this.stmt.latestDoc.get(ipKey(ip)) as Row | undefined;
      return row ? parse<ScanDocument>(row.doc) : undefined;
    });
  }

  private answeredStmt: Database.Statement | undefined;

  /**
   * In SQL: the host's ANSWERED_SEARCH_DEPTH newest scans are tested in SQLite (json_extract) and
   * one document is read, where reading them as a page parsed all of them (a host a connect
   * sweep found down for 20 cycles: ~90-110 us per call, twice per visit; docs/store.md).
   */
  latestAnsweredScan(ip: string): Promise<ScanDocument | undefined> {
    return this.run('reading the latest answered scan', () => {
      this.answeredStmt ??= this.db.prepare(
        `SELECT doc FROM (SELECT doc, finished_at, scan_id FROM scans WHERE ip_key = ? ORDER BY finished_at DESC, scan_id DESC LIMIT ${ANSWERED_SEARCH_DEPTH})
         WHERE json_extract(doc, '$.host.status') IS NOT 'down' ORDER BY finished_at DESC, scan_id DESC LIMIT 1`,
      );
      const row = this.answeredStmt.get(ipKey(ip)) as Row | undefined;
      return row ? parse<ScanDocument>(row.doc) : undefined;
    });
  }

  hostHistory(ip: string, page?: PageRequest): Promise<Page<ScanDocument>> {
    return this.run('reading host history', () => {
      const key = ipKey(ip);
      return this.page(this.view('history', undefined), (c) => ({ sql: `${c.ipKey} = ?`, params: [key] }), page);
    });
  }

  search(query: QueryNode | undefined, options: SearchOptions = {}): Promise<Page<ScanDocument>> {
    return this.run('searching', () => this.page(this.view(options.view ?? 'latest', query), (c) => compileSqliteQuery(query, c), options));
  }

  count(query: QueryNode | undefined, options: { view?: SearchView } = {}): Promise<number> {
    return this.run('counting', () => {
      const view = this.view(options.view ?? 'latest', query);
      const where = compileSqliteQuery(query, view.columns);
      return this.countWhere(view.from, where);
    });
  }

  /**
   * The FROM clause and column map of a view. Latest-per-host reads only the narrow `latest`
   * table (its key, time and scan row) unless free text needs the scans' word lists.
   */
  private view(view: SearchView, query: QueryNode | undefined): { from: string; columns: SqlColumns; scanId: string } {
    if (view === 'history') return { from: 'scans s', columns: HISTORY_COLUMNS, scanId: 's.scan_id' };
    return {
      from: needsWords(query) ? 'latest l JOIN scans s ON s.row = l.scan_row' : 'latest l',
      columns: LATEST_COLUMNS,
      scanId: 'l.scan_id',
    };
  }

  /** Dynamic search SQL is prepared once per distinct text (the text has no values in it). */
  private prepared(sql: string): Database.Statement {
    let statement = this.cache.get(sql);
    if (!statement) {
      if (this.cache.size >= 256) this.cache.clear();
      statement = this.db.prepare(sql);
      this.cache.set(sql, statement);
    }
    return statement;
  }

  private countWhere(from: string, where: SqlCondition): number {
    // A single term (`port:22`, `tag:dmz`) is counted on its index alone: each host (or scan)
    // has a term at most once, so the index range's size is the answer.
    let sql = `SELECT COUNT(*) AS n FROM ${from} WHERE ${where.sql}`;
    if (where.sql === LATEST_COLUMNS.hasTerm && from === 'latest l')
      sql = 'SELECT COUNT(*) AS n FROM latest_terms WHERE field = ? AND value = ?';
    if (where.sql === HISTORY_COLUMNS.hasTerm && from === 'scans s')
      sql = 'SELECT COUNT(*) AS n FROM scan_terms WHERE field = ? AND value = ?';
    return (this.prepared(sql).get(...where.params) as Row).n as number;
  }

  /**
   * One newest-first page: first the matching (row, time, id) triples are sorted and cut to the
   * page, then only those rows' documents are read. SQL text comes from fixed fragments; values
   * are bound.
   */
  private page(
    view: { from: string; columns: SqlColumns; scanId: string },
    condition: (columns: SqlColumns) => SqlCondition,
    request: PageRequest | undefined,
  ): Page<ScanDocument> {
    const { limit, offset, after } = resolvePage(request);
    const where = condition(view.columns);
    const total = this.countWhere(view.from, where);
    const { row, finishedAt } = view.columns;
    let inner = `SELECT ${row} AS r, ${finishedAt} AS f, ${view.scanId} AS i FROM ${view.from} WHERE (${where.sql})`;
    const params = [...where.params];
    if (after) {
      inner += ` AND (${finishedAt} < ? OR (${finishedAt} = ? AND ${view.scanId} < ?))`;
      params.push(after.finishedAt, after.finishedAt, after.scanId);
    }
    inner += ` ORDER BY f DESC, i DESC LIMIT ? OFFSET ?`;
    params.push(limit + 1, offset);
    const sql = `SELECT d.doc FROM (${inner}) p JOIN scans d ON d.row = p.r ORDER BY p.f DESC, p.i DESC`;
    const rows = this.prepared(sql).all(...params) as Row[];
    const items = rows.slice(0, limit).map((r) => parse<ScanDocument>(r.doc));
    const last = items.at(-1);
    const nextCursor = rows.length > limit && last ? encodeScanCursor(last) : undefined;
    return { items, total, nextCursor };
  }

  async *exportHistory(options: { since?: number; until?: number; batchSize?: number } = {}): AsyncIterable<ScanDocument> {
    const batch = resolveLimit(options.batchSize, 500, 'batchSize');
    let position = { finishedAt: (options.since ?? Number.MIN_SAFE_INTEGER) - 1, scanId: '\u{10FFFF}' };
    const until = options.until ?? Number.MAX_SAFE_INTEGER;
    for (;;) {
      const rows = await this.run(
        'exporting history',
        () => this.stmt.exportPage.all(position.finishedAt, position.finishedAt, position.scanId, until, batch) as Row[],
      );
      for (const row of rows) yield parse<ScanDocument>(row.doc);
      if (rows.length < batch) return;
      const last = rows.at(-1)!;
      position = { finishedAt: last.finished_at as number, scanId: last.scan_id as string };
    }
  }

  // ------------------------------------------------------------------ events
  appendEvents(events: readonly NewStoreEvent[]): Promise<void> {
    return this.run('appending events', () =>
      this.db
        .transaction(() => {
          const stored = this.insertEvents(events);
          if (this.outbox && stored.length > 0) this.stmt.outboxInsert.run(JSON.stringify({ kind: 'events', events: stored }));
        })
        .immediate(),
    );
  }

  readEvents(options: { cursor?: string; limit?: number } = {}): Promise<EventPage> {
    return this.run('reading events', () => {
      const after = options.cursor === undefined ? 0 : Number(options.cursor);
      if (!Number.isSafeInteger(after) || after < 0) {
        throw new PortbanditError('PB_ERR_CURSOR', `'${options.cursor}' is not an event cursor`, { where: 'cursor' });
      }
      const rows = this.stmt.eventsAfter.all(after, resolveLimit(options.limit, 1000)) as Row[];
      const events = rows.map((row) => ({ ...parse<NewStoreEvent>(row.doc), id: String(row.seq) }));
      return { events, cursor: rows.length > 0 ? String(rows.at(-1)!.seq) : options.cursor };
    });
  }

  readEventsBackward(options: { before?: string; limit?: number } = {}): Promise<EventPage> {
    return this.run('reading events backward', () => {
      const before = options.before === undefined ? Number.MAX_SAFE_INTEGER : Number(options.before);
      if (!Number.isSafeInteger(before) || before < 0) {
        throw new PortbanditError('PB_ERR_CURSOR', `'${options.before}' is not an event cursor`, { where: 'before' });
      }
      const rows = this.stmt.eventsBefore.all(before, resolveLimit(options.limit, 1000)) as Row[];
      const events = rows.map((row) => ({ ...parse<NewStoreEvent>(row.doc), id: String(row.seq) }));
      return { events, cursor: rows.length > 0 ? String(rows.at(-1)!.seq) : options.before };
    });
  }

  // ------------------------------------------------------------------ statistics
  counts(options: { tag?: string } = {}): Promise<StoreCounts> {
    return this.run('counting', () => {
      const tag = options.tag?.toLowerCase() ?? null;
      const row = this.stmt.counts.get(tag, tag, tag, tag, tag, tag) as Row;
      return { hosts: row.hosts as number, scans: row.scans as number, events: row.events as number, openPorts: row.open_ports as number };
    });
  }

  /** Hosts per value of one field over latest-per-host; the tagged form drives from the tag's hosts. */
  private topTerms(field: 'port' | 'service', options: { tag?: string; limit?: number }): Row[] {
    const limit = resolveLimit(options.limit, 20);
    if (options.tag === undefined) return this.stmt.topTerms.all(field, limit) as Row[];
    return this.stmt.topTermsTagged.all(options.tag.toLowerCase(), field, limit) as Row[];
  }

  topPorts(options: { tag?: string; limit?: number } = {}): Promise<{ port: number; hosts: number }[]> {
    return this.run('computing top ports', () =>
      this.topTerms('port', options).map((row) => ({ port: Number(row.value), hosts: row.hosts as number })),
    );
  }

  topServices(options: { tag?: string; limit?: number } = {}): Promise<{ service: string; hosts: number }[]> {
    return this.run('computing top services', () =>
      this.topTerms('service', options).map((row) => ({ service: row.value as string, hosts: row.hosts as number })),
    );
  }

  scansPerHour(options: { since: number; until: number; tag?: string }): Promise<{ hourStart: number; scans: number }[]> {
    return this.run('computing scans per hour', () => {
      const tag = options.tag?.toLowerCase() ?? null;
      return (this.stmt.perHour.all(options.since, options.until, tag, tag) as Row[]).map((row) => ({
        hourStart: row.hour as number,
        scans: row.n as number,
      }));
    });
  }
}

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
    counters: parse<Record<string, number>>(row.counters),
  };
}

function toToken(row: Row): AdminToken {
  return { id: row.id as string, name: row.name as string, tokenHash: row.token_hash as string, createdAt: row.created_at as number };
}

function toLease(row: Row): Lease {
  return readLeaseDoc(row.doc);
}

/** A scan's facets as flat (field, value) pairs, as the facet tables hold them. */
function termPairs(fields: ScanIndexFields): string[] {
  const pairs: string[] = [];
  for (const port of fields.ports) pairs.push('port', String(port));
  for (const [field, values] of Object.entries(fields.terms)) for (const value of values) pairs.push(field, value);
  if (fields.screenshot) pairs.push('screenshot', 'true');
  return pairs;
}

function termPairsOf(rows: readonly Row[]): string[] {
  const pairs: string[] = [];
  for (const row of rows) pairs.push(row.field as string, row.value as string);
  return pairs;
}

/** An enumerable property computed on first read, then kept (a plain value to every reader, `toEqual` included). */
function lazyProperty<T extends object>(target: T, key: string, compute: () => unknown): void {
  let value: unknown;
  let computed = false;
  Object.defineProperty(target, key, {
    enumerable: true,
    configurable: true,
    get() {
      if (!computed) {
        value = compute();
        computed = true;
      }
      return value;
    },
  });
}

function toQueued(row: Row): QueuedWork {
  return { ...readQueuedDoc(row.doc), id: String(row.seq) };
}

function prepareStatements(db: Database.Database) {
  // Optional tag filters: two parameters each (the tag twice, or null twice for no filter).
  const historyTag = (rowExpr: string): string =>
    `(? IS NULL OR ${rowExpr} IN (SELECT scan_row FROM scan_terms WHERE field = 'tag' AND value = ?))`;
  const latestTag = (keyExpr: string): string =>
    `(? IS NULL OR ${keyExpr} IN (SELECT ip_key FROM latest_terms WHERE field = 'tag' AND value = ?))`;
  return {
    metaGet: db.prepare('SELECT value FROM meta WHERE key = ?'),
    metaBump: db.prepare('UPDATE meta SET value = value + 1 WHERE key = ?'),
    scopeList: db.prepare('SELECT range, tags, added_at FROM scope_entries WHERE list = ? ORDER BY range'),
    // An upsert that changes nothing (same tags) reports 0 changes thanks to the WHERE clause.
    scopeUpsert: db.prepare(
      'INSERT INTO scope_entries (list, range, tags, added_at) VALUES (?, ?, ?, ?) ON CONFLICT (list, range) DO UPDATE SET tags = excluded.tags WHERE tags <> excluded.tags',
    ),
    scopeDelete: db.prepare('DELETE FROM scope_entries WHERE list = ? AND range = ?'),
    scopeClear: db.prepare('DELETE FROM scope_entries WHERE list = ?'),
    docGet: db.prepare('SELECT key, value, revision, updated_at FROM documents WHERE collection = ? AND key = ?'),
    docPut: db.prepare(
      'INSERT INTO documents (collection, key, value, revision, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value, revision = excluded.revision, updated_at = excluded.updated_at',
    ),
    docList: db.prepare('SELECT key, value, revision, updated_at FROM documents WHERE collection = ? ORDER BY key'),
    docDelete: db.prepare('DELETE FROM documents WHERE collection = ? AND key = ?'),
    agentInsert: db.prepare('INSERT INTO agents (id, name, token_hash, version, created_at, counters) VALUES (?, ?, ?, ?, ?, ?)'),
    agentGet: db.prepare('SELECT * FROM agents WHERE id = ?'),
    agentByHash: db.prepare('SELECT * FROM agents WHERE token_hash = ?'),
    agentList: db.prepare('SELECT * FROM agents ORDER BY id'),
    agentActivity: db.prepare('UPDATE agents SET last_seen_at = ?, version = ?, counters = ? WHERE id = ?'),
    agentDelete: db.prepare('DELETE FROM agents WHERE id = ?'),
    tokenInsert: db.prepare('INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)'),
    tokenByHash: db.prepare('SELECT * FROM admin_tokens WHERE token_hash = ?'),
    tokenList: db.prepare('SELECT * FROM admin_tokens ORDER BY id'),
    tokenDelete: db.prepare('DELETE FROM admin_tokens WHERE id = ?'),
    leaseInsert: db.prepare('INSERT INTO leases (id, ip, agent_id, deadline, doc) VALUES (?, ?, ?, ?, ?)'),
    leaseGet: db.prepare('SELECT doc FROM leases WHERE id = ?'),
    leaseCountAll: db.prepare('SELECT COUNT(*) AS n FROM leases'),
    leaseCountLive: db.prepare('SELECT COUNT(*) AS n FROM leases WHERE deadline > ?'),
    leaseCountAgent: db.prepare('SELECT COUNT(*) AS n FROM leases WHERE agent_id = ?'),
    leaseRenew: db.prepare('UPDATE leases SET deadline = ?, doc = ? WHERE id = ?'),
    leaseDelete: db.prepare('DELETE FROM leases WHERE id = ?'),
    leaseTake: db.prepare('DELETE FROM leases WHERE id = ? RETURNING doc'),
    leaseExpired: db.prepare('SELECT doc FROM leases WHERE deadline <= ? ORDER BY deadline, id LIMIT ?'),
    queueInsert: db.prepare('INSERT INTO work_queue (priority, doc) VALUES (?, ?)'),
    queueHead: db.prepare('SELECT seq, doc FROM work_queue ORDER BY priority, seq LIMIT ?'),
    queueDelete: db.prepare('DELETE FROM work_queue WHERE seq = ?'),
    queueCount: db.prepare('SELECT COUNT(*) AS n FROM work_queue'),
    learningInsert: db.prepare('INSERT INTO learning_queue (doc) VALUES (?)'),
    learningFrom: db.prepare('SELECT seq, doc FROM learning_queue WHERE seq >= ? ORDER BY seq'),
    learningPrune: db.prepare('DELETE FROM learning_queue WHERE seq < ?'),
    outboxInsert: db.prepare('INSERT INTO outbox (doc) VALUES (?)'),
    outboxHead: db.prepare('SELECT seq, doc FROM outbox ORDER BY seq LIMIT ?'),
    outboxDelete: db.prepare('DELETE FROM outbox WHERE seq = ?'),
    outboxCount: db.prepare('SELECT COUNT(*) AS n FROM outbox'),
    scanRow: db.prepare('SELECT row FROM scans WHERE scan_id = ?'),
    scanUpdate: db.prepare('UPDATE scans SET finished_at = ?, words = ?, doc = ? WHERE row = ?'),
    scanTermsClear: db.prepare('DELETE FROM scan_terms WHERE scan_row = ?'),
    scanTermsOf: db.prepare('SELECT field, value FROM scan_terms WHERE scan_row = ?'),
    scanTermDelete: db.prepare('DELETE FROM scan_terms WHERE field = ? AND value = ? AND scan_row = ?'),
    latestTermsOf: db.prepare('SELECT field, value FROM latest_terms WHERE ip_key = ?'),
    latestTermDelete: db.prepare('DELETE FROM latest_terms WHERE field = ? AND value = ? AND ip_key = ?'),
    scanInsert: db.prepare('INSERT INTO scans (scan_id, ip, ip_key, finished_at, words, doc) VALUES (?, ?, ?, ?, ?, ?)'),
    scanGet: db.prepare('SELECT doc FROM scans WHERE scan_id = ?'),
    latestGet: db.prepare('SELECT scan_row, finished_at, scan_id FROM latest WHERE ip_key = ?'),
    latestPut: db.prepare(
      'INSERT INTO latest (ip_key, scan_row, finished_at, scan_id) VALUES (?, ?, ?, ?) ON CONFLICT (ip_key) DO UPDATE SET scan_row = excluded.scan_row, finished_at = excluded.finished_at, scan_id = excluded.scan_id',
    ),
    latestDoc: db.prepare('SELECT s.doc FROM latest l JOIN scans s ON s.row = l.scan_row WHERE l.ip_key = ?'),
    exportPage: db.prepare(
      'SELECT finished_at, scan_id, doc FROM scans WHERE (finished_at > ? OR (finished_at = ? AND scan_id > ?)) AND finished_at < ? ORDER BY finished_at, scan_id LIMIT ?',
    ),
    eventsAfter: db.prepare('SELECT seq, doc FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),
    eventsBefore: db.prepare('SELECT seq, doc FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?'),
    counts: db.prepare(`SELECT
        (SELECT COUNT(*) FROM latest l WHERE ${latestTag('l.ip_key')}) AS hosts,
        (SELECT COUNT(*) FROM scans s WHERE ${historyTag('s.row')}) AS scans,
        (SELECT COUNT(*) FROM events) AS events,
        (SELECT COUNT(*) FROM latest_terms t WHERE t.field = 'port' AND ${latestTag('t.ip_key')}) AS open_ports`),
    topTerms: db.prepare(`SELECT t.value AS value, COUNT(*) AS hosts FROM latest_terms t WHERE t.field = ?
        GROUP BY t.value ORDER BY hosts DESC, CAST(t.value AS INTEGER), t.value LIMIT ?`),
    topTermsTagged: db.prepare(`SELECT t.value AS value, COUNT(*) AS hosts FROM latest_terms t
        WHERE t.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = 'tag' AND value = ?) AND t.field = ?
        GROUP BY t.value ORDER BY hosts DESC, CAST(t.value AS INTEGER), t.value LIMIT ?`),
    perHour: db.prepare(`SELECT (s.finished_at / 3600000) * 3600000 AS hour, COUNT(*) AS n FROM scans s
        WHERE s.finished_at >= ? AND s.finished_at < ? AND ${historyTag('s.row')}
        GROUP BY hour ORDER BY hour`),
  };
}
