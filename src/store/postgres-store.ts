import { canonicalIp } from './ip-key.js';
import { PostgresCoordinationStore } from './postgres-coordination.js';
import { COORDINATION_SCHEMA, PostgresDatabase, type PostgresOptions, type Queryable } from './postgres-database.js';
import { INDEX_SCHEMA, PostgresScanIndex } from './postgres-index.js';
import type { QueryNode } from './query-ast.js';
import type {
  EventPage,
  IngestInput,
  IngestResult,
  NewStoreEvent,
  Page,
  PageRequest,
  QueuedWorkInput,
  ScanDocument,
  SearchOptions,
  SearchView,
  Store,
  StoreCounts,
  StoreEvent,
} from './types.js';

export type { PostgresOptions } from './postgres-database.js';

/**
 * Open the whole store on PostgreSQL: the coordination tables and the scan index in one schema,
 * so every coordinator on the database shares the queue, the leases and what was found, and a
 * result, its lease and its follow-up commit in one transaction (as in SQLite).
 */
export async function openPostgresStore(options: PostgresOptions): Promise<PostgresStore> {
  return new PostgresStore(await PostgresDatabase.open(options, [COORDINATION_SCHEMA, INDEX_SCHEMA]), options.outbox ?? false);
}

interface PendingIngest {
  readonly input: IngestInput;
  readonly enqueue: QueuedWorkInput[] | undefined;
  resolve(result: IngestResult): void;
  reject(error: unknown): void;
}

export class PostgresStore extends PostgresCoordinationStore implements Store {
  readonly index: PostgresScanIndex;

  constructor(
    db: PostgresDatabase,
    private readonly outbox = false,
  ) {
    super(db);
    this.index = new PostgresScanIndex(db);
  }

  /** Ingests waiting for their group's transaction (see ingestScan). */
  private pendingIngests: PendingIngest[] = [];
  /** Groups being written (close() waits for them). */
  private readonly flushing = new Set<Promise<void>>();

  /**
   * Group commit, as in the SQLite store: ingests called in the same turn of the event loop (a
   * batch of results) run in one transaction, in call order, on one connection; each promise
   * settles after that commit. When any of them fails (or the commit does), the group is rolled
   * back and each runs again in a transaction of its own, so one bad result never affects the
   * others and every answer is what a lone ingest would have given. One transaction per batch
   * instead of one per result: two round trips less per result, and the events lock
   * (insertEvents) is taken by one transaction per batch instead of queued for by every result.
   */
  ingestScan(input: IngestInput): Promise<IngestResult> {
    let enqueue: QueuedWorkInput[] | undefined;
    try {
      enqueue = input.enqueue?.map((item) => ({ ...item, ip: canonicalIp(item.ip, 'enqueue.ip') }));
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<IngestResult>((resolve, reject) => {
      this.pendingIngests.push({ input, enqueue, resolve, reject });
      if (this.pendingIngests.length === 1) setImmediate(() => this.flushIngests());
    });
  }

  /** Ingests still waiting for their turn are written (and awaited) before the pool closes. */
  override async close(): Promise<void> {
    this.flushIngests();
    await Promise.all(this.flushing);
    await super.close();
  }

  private flushIngests(): void {
    const group = this.pendingIngests;
    if (group.length === 0) return;
    this.pendingIngests = [];
    const written = this.writeGroup(group);
    this.flushing.add(written);
    void written.finally(() => this.flushing.delete(written));
  }

  private async writeGroup(group: readonly PendingIngest[]): Promise<void> {
    if (group.length > 1) {
      let results: IngestResult[] | undefined;
      let started = false;
      try {
        results = await this.db.transaction(async (q) => {
          started = true;
          const out: IngestResult[] = [];
          // The group's events go last, in call order, in one insert: the events lock (held until
          // commit, insertEvents) is then held for that insert and the commit, not for the group.
          // Their outbox records follow, each visit with its own events (ids from that insert).
          const events: NewStoreEvent[] = [];
          const visits: { readonly scan: ScanDocument; readonly latest: boolean; readonly events: number }[] = [];
          for (const { input, enqueue } of group) {
            const { events: own, ...rest } = input;
            const { result, stored } = await this.ingestWith(q, rest, enqueue, false);
            if (result.inserted && own) events.push(...own);
            if (result.inserted && stored) visits.push({ scan: stored.scan, latest: result.latest, events: own?.length ?? 0 });
            out.push(result);
          }
          const storedEvents = events.length > 0 ? await this.index.insertEvents(q, events) : [];
          if (this.outbox) {
            let next = 0;
            for (const visit of visits) {
              await this.insertOutbox(q, {
                kind: 'visit',
                scan: visit.scan,
                latest: visit.latest,
                events: storedEvents.slice(next, next + visit.events),
              });
              next += visit.events;
            }
          }
          return out;
        });
      } catch (error) {
        // No connection (the pool's wait timed out) or no BEGIN: each alone would have failed
        // the same way; retrying them one by one would only add to an overloaded pool.
        if (!started) {
          const failure = this.db.wrap(error, 'ingesting a scan');
          for (const pending of group) pending.reject(failure);
          return;
        }
        // Else each again on its own, below: its own outcome, as if it had never been grouped.
      }
      if (results) {
        group.forEach((pending, i) => pending.resolve(results[i]!));
        return;
      }
    }
    await Promise.all(
      group.map(({ input, enqueue, resolve, reject }) =>
        this.run('ingesting a scan', async (q) => (await this.ingestWith(q, input, enqueue, true)).result, true).then(resolve, reject),
      ),
    );
  }

  /**
   * One ingest inside the caller's transaction: the visit, its lease, its follow-up, its learning
   * item, and (with `withOutbox`, when the store keeps one) its outbox record.
   */
  private async ingestWith(
    q: Queryable,
    input: IngestInput,
    enqueue: QueuedWorkInput[] | undefined,
    withOutbox: boolean,
  ): Promise<{ result: IngestResult; stored?: { readonly scan: ScanDocument; readonly events: readonly StoreEvent[] } }> {
    const leaseId = input.leaseId;
    // A later round replaces the visit's document once per lease: the lease row, locked
    // here and deleted below in the same transaction, is the ticket.
    const mayReplace = async (): Promise<boolean> =>
      leaseId !== undefined && (await q.query('SELECT 1 FROM leases WHERE id = $1 FOR UPDATE', [leaseId])).rows.length > 0;
    const { stored, ...result } = await this.index.ingestWith(q, input, mayReplace);
    if (!result.inserted) return { result };
    if (withOutbox && this.outbox && stored)
      await this.insertOutbox(q, { kind: 'visit', scan: stored.scan, latest: result.latest, events: stored.events });
    const lease = leaseId === undefined ? undefined : await this.takeLease(q, leaseId);
    const queued = enqueue && enqueue.length > 0 ? await this.insertQueued(q, enqueue) : undefined;
    if (input.learn) await this.insertLearning(q, input.learn);
    return { result: { ...result, ...(lease ? { lease } : {}), ...(queued ? { queued } : {}) }, ...(stored ? { stored } : {}) };
  }

  getScan(scanId: string): Promise<ScanDocument | undefined> {
    return this.index.getScan(scanId);
  }
  getLatestScan(ip: string): Promise<ScanDocument | undefined> {
    return this.index.getLatestScan(ip);
  }
  hostHistory(ip: string, page?: PageRequest): Promise<Page<ScanDocument>> {
    return this.index.hostHistory(ip, page);
  }
  search(query: QueryNode | undefined, options?: SearchOptions): Promise<Page<ScanDocument>> {
    return this.index.search(query, options);
  }
  count(query: QueryNode | undefined, options?: { view?: SearchView }): Promise<number> {
    return this.index.count(query, options);
  }
  exportHistory(options?: { since?: number; until?: number; batchSize?: number }): AsyncIterable<ScanDocument> {
    return this.index.exportHistory(options);
  }
  appendEvents(events: readonly NewStoreEvent[]): Promise<void> {
    if (!this.outbox) return this.index.appendEvents(events);
    return this.run(
      'appending events',
      async (q) => {
        const stored = await this.index.insertEvents(q, events);
        if (stored.length > 0) await this.insertOutbox(q, { kind: 'events', events: stored });
      },
      true,
    );
  }
  readEvents(options?: { cursor?: string; limit?: number }): Promise<EventPage> {
    return this.index.readEvents(options);
  }
  readEventsBackward(options?: { before?: string; limit?: number }): Promise<EventPage> {
    return this.index.readEventsBackward(options);
  }
  deleteHistory(scanIds: readonly string[]): Promise<{ deleted: number; refusedLatest: number }> {
    if (!this.outbox) return this.index.deleteHistory(scanIds);
    return this.run(
      'deleting history',
      async (q) => {
        const { gone, ...result } = await this.index.deleteHistoryWith(q, scanIds);
        if (gone.length > 0) await this.insertOutbox(q, { kind: 'delete', scanIds: gone });
        return result;
      },
      true,
    );
  }
  counts(options?: { tag?: string }): Promise<StoreCounts> {
    return this.index.counts(options);
  }
  topPorts(options?: { tag?: string; limit?: number }): Promise<{ port: number; hosts: number }[]> {
    return this.index.topPorts(options);
  }
  topServices(options?: { tag?: string; limit?: number }): Promise<{ service: string; hosts: number }[]> {
    return this.index.topServices(options);
  }
  scansPerHour(options: { since: number; until: number; tag?: string }): Promise<{ hourStart: number; scans: number }[]> {
    return this.index.scansPerHour(options);
  }
}
