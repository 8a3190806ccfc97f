import { canonicalIp } from './ip-key.js';
import { PostgresCoordinationStore } from './postgres-coordination.js';
import { COORDINATION_SCHEMA, PostgresDatabase, type PostgresOptions } from './postgres-database.js';
import { INDEX_SCHEMA, PostgresScanIndex } from './postgres-index.js';
import type { QueryNode } from './query-ast.js';
import type { EventPage, IngestInput, IngestResult, NewStoreEvent, Page, PageRequest, QueuedWorkInput, ScanDocument, SearchOptions, SearchView, Store, StoreCounts } from './types.js';

export type { PostgresOptions } from './postgres-database.js';

/**
 * Open the whole store on PostgreSQL: the coordination tables and the scan index in one schema,
 * so every coordinator on the database shares the queue, the leases and what was found, and a
 * result, its lease and its follow-up commit in one transaction (as in SQLite).
 */
export async function openPostgresStore(options: PostgresOptions): Promise<PostgresStore> {
  return new PostgresStore(await PostgresDatabase.open(options, [COORDINATION_SCHEMA, INDEX_SCHEMA]), options.outbox ?? false);
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

  ingestScan(input: IngestInput): Promise<IngestResult> {
    let enqueue: QueuedWorkInput[] | undefined;
    try {
      enqueue = input.enqueue?.map((item) => ({ ...item, ip: canonicalIp(item.ip, 'enqueue.ip') }));
    } catch (error) {
      return Promise.reject(error);
    }
    return this.run(
      'ingesting a scan',
      async (q) => {
        const leaseId = input.leaseId;
        // A later round replaces the visit's document once per lease: the lease row, locked
        // here and deleted below in the same transaction, is the ticket.
        const mayReplace = async (): Promise<boolean> => leaseId !== undefined && (await q.query('SELECT 1 FROM leases WHERE id = $1 FOR UPDATE', [leaseId])).rows.length > 0;
        const { stored, ...result } = await this.index.ingestWith(q, input, mayReplace);
        if (!result.inserted) return result;
        if (this.outbox && stored) await this.insertOutbox(q, { kind: 'visit', scan: stored.scan, latest: result.latest, events: stored.events });
        const lease = leaseId === undefined ? undefined : await this.takeLease(q, leaseId);
        const queued = enqueue && enqueue.length > 0 ? await this.insertQueued(q, enqueue) : undefined;
        if (input.learn) await this.insertLearning(q, input.learn);
        return { ...result, ...(lease ? { lease } : {}), ...(queued ? { queued } : {}) };
      },
      true,
    );
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
