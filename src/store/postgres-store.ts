import { canonicalIp, ipKey } from './ip-key.js';
import { PostgresCoordinationStore } from './postgres-coordination.js';
import { COORDINATION_SCHEMA, PostgresDatabase, type PostgresOptions, type Queryable, prepared } from './postgres-database.js';
import { INDEX_SCHEMA, PostgresScanIndex, facetPairs } from './postgres-index.js';
import type { QueryNode } from './query-ast.js';
import { indexScan, validateScan } from './scan-index.js';
import type {
  EventPage,
  IngestInput,
  IngestResult,
  Lease,
  NewStoreEvent,
  OutboxEntry,
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
 * Ingests that the set-based group path may write together: no scan id, address or lease twice
 * (the one-by-one path decides those in call order, each seeing the one before).
 */
function independent(group: readonly PendingIngest[]): boolean {
  const ids = new Set<string>();
  const ips = new Set<string>();
  const leases = new Set<string>();
  for (const { input } of group) {
    const ip = typeof input.scan?.ip === 'string' ? input.scan.ip : '';
    if (ids.has(input.scan?.scanId) || ips.has(ip)) return false;
    ids.add(input.scan?.scanId);
    ips.add(ip);
    if (input.leaseId !== undefined) {
      if (leases.has(input.leaseId)) return false;
      leases.add(input.leaseId);
    }
  }
  return true;
}

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

/** The set-based group ingest's statements, prepared once per connection. */
const SQL = {
  scansInsert: prepared(
    'group_scans_insert',
    `INSERT INTO scans (scan_id, ip, ip_key, finished_at, words, doc)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int8[], $5::text[], $6::text[]) ON CONFLICT (scan_id) DO NOTHING
       RETURNING row, scan_id`,
  ),
  scansLock: prepared('group_scans_lock', 'SELECT row, scan_id FROM scans WHERE scan_id = ANY($1::text[]) ORDER BY ip_key FOR UPDATE'),
  leasesLock: prepared('group_leases_lock', 'SELECT id FROM leases WHERE id = ANY($1::text[]) ORDER BY ip FOR UPDATE'),
  scansUpdate: prepared(
    'group_scans_update',
    `UPDATE scans s SET finished_at = u.f, words = u.w, doc = u.d
           FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[]) AS u(r, f, w, d) WHERE s.row = u.r`,
  ),
  // A later round's facet rows by difference, as a host's latest ones below.
  termsPrune: prepared(
    'group_terms_prune',
    `DELETE FROM scan_terms t WHERE t.scan_row = ANY($1::int8[])
       AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[], $4::int8[]) AS n(field, value, scan_row)
                        WHERE n.scan_row = t.scan_row AND n.field = t.field AND n.value = t.value)`,
  ),
  termsInsert: prepared(
    'group_terms_insert',
    'INSERT INTO scan_terms (field, value, scan_row) SELECT * FROM unnest($1::text[], $2::text[], $3::int8[]) ON CONFLICT DO NOTHING',
  ),
  latestUpsert: prepared(
    'group_latest_upsert',
    `INSERT INTO latest (ip_key, scan_row, finished_at, scan_id) SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::text[])
       ON CONFLICT (ip_key) DO UPDATE SET scan_row = excluded.scan_row, finished_at = excluded.finished_at, scan_id = excluded.scan_id
       WHERE latest.scan_row = excluded.scan_row OR (excluded.finished_at, excluded.scan_id COLLATE "C") > (latest.finished_at, latest.scan_id COLLATE "C")
       RETURNING scan_row, (xmax = 0) AS fresh`,
  ),
  // A host's facet rows that its new latest scan lacks (most visits change none): the kept rows
  // are neither deleted nor inserted again (the insert below skips them on conflict), so an
  // unchanged host costs index lookups, not dead rows and their WAL.
  latestTermsPrune: prepared(
    'group_latest_terms_prune',
    `DELETE FROM latest_terms t WHERE t.ip_key = ANY($1::bytea[])
       AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[], $4::bytea[]) AS n(field, value, ip_key)
                        WHERE n.ip_key = t.ip_key AND n.field = t.field AND n.value = t.value)`,
  ),
  // The rows the group just wrote to scan_terms, sent again rather than joined back (one index
  // lookup of scan_terms per visit less; the same rows, as the group computed them).
  latestTermsInsert: prepared(
    'group_latest_terms_insert',
    'INSERT INTO latest_terms (field, value, ip_key) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) ON CONFLICT DO NOTHING',
  ),
  leasesTake: prepared('group_leases_take', 'DELETE FROM leases WHERE id = ANY($1::text[]) RETURNING id, doc'),
  outboxInsert: prepared(
    'group_outbox_insert',
    'INSERT INTO outbox (doc) SELECT d FROM unnest($1::text[]) WITH ORDINALITY AS t(d, i) ORDER BY i',
  ),
};

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
   * instead of one per result: two round trips less per result.
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
      const setBased = independent(group);
      try {
        results = await this.db.transaction(async (q) => {
          started = true;
          if (setBased) return this.ingestGroupWith(q, group);
          const out: IngestResult[] = [];
          // The group's events go last, in call order, in one insert; their outbox records
          // follow, each visit with its own events (ids from that insert).
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
    // One after another, in call order: each sees the ones before it, as the group would have
    // (run side by side, a later round could be stored before the visit it belongs to).
    for (const { input, enqueue, resolve, reject } of group) {
      await this.run('ingesting a scan', async (q) => (await this.ingestWith(q, input, enqueue, true)).result, true).then(resolve, reject);
    }
  }

  /**
   * A group of independent ingests (no scan id, address or lease twice: `independent`) inside
   * the caller's transaction, one statement per table for the whole group instead of one per
   * visit: each caller gets what the one-by-one path (`ingestWith`, in call order) gives. Rows are
   * written in address order, so two coordinators' groups lock shared rows (latest per host) in
   * the same order.
   */
  private async ingestGroupWith(q: Queryable, group: readonly PendingIngest[]): Promise<IngestResult[]> {
    const items = group.map(({ input, enqueue }, index) => {
      const scan = validateScan(input.scan);
      const fields = indexScan(scan);
      return {
        index,
        input,
        enqueue,
        scan,
        fields,
        key: ipKey(scan.ip, 'scan.ip'),
        words: fields.words.length === 0 ? ' ' : ` ${fields.words.join(' ')} `,
        doc: JSON.stringify(scan),
        row: undefined as number | undefined,
      };
    });
    const byKey = [...items].sort((a, b) => Buffer.compare(a.key, b.key));
    const inserted = await SQL.scansInsert(q, [
      byKey.map((i) => i.scan.scanId),
      byKey.map((i) => i.scan.ip),
      byKey.map((i) => i.key),
      byKey.map((i) => i.scan.finishedAt),
      byKey.map((i) => i.words),
      byKey.map((i) => i.doc),
    ]);
    const rowOf = new Map(inserted.rows.map((r) => [r.scan_id as string, r.row as number]));
    for (const item of items) item.row = rowOf.get(item.scan.scanId);
    // Known scan ids: a later round of a visit replaces it once per lease (the lease row, locked
    // here and deleted below, is the ticket), as in `ingestWith`.
    const replacedRowSet = new Set<number>();
    const replacing = byKey.filter((i) => i.row === undefined && i.input.replace === true && i.input.leaseId !== undefined);
    if (replacing.length > 0) {
      const known = await SQL.scansLock(q, [replacing.map((i) => i.scan.scanId)]);
      const held = await SQL.leasesLock(q, [replacing.map((i) => i.input.leaseId!)]);
      const knownRow = new Map(known.rows.map((r) => [r.scan_id as string, r.row as number]));
      const leased = new Set(held.rows.map((r) => r.id as string));
      const replaced = replacing.filter((i) => leased.has(i.input.leaseId!) && knownRow.has(i.scan.scanId));
      for (const item of replaced) {
        item.row = knownRow.get(item.scan.scanId);
        replacedRowSet.add(item.row!);
      }
      if (replaced.length > 0) {
        await SQL.scansUpdate(q, [
          replaced.map((i) => i.row!),
          replaced.map((i) => i.scan.finishedAt),
          replaced.map((i) => i.words),
          replaced.map((i) => i.doc),
        ]);
      }
    }
    const stored = byKey.filter((i) => i.row !== undefined);
    const results: IngestResult[] = items.map(() => ({ inserted: false, latest: false }));
    if (stored.length === 0) return results;
    const terms = { field: [] as string[], value: [] as string[], row: [] as number[] };
    for (const item of stored) {
      for (const [field, value] of facetPairs(item.fields)) {
        terms.field.push(field);
        terms.value.push(value);
        terms.row.push(item.row!);
      }
    }
    const replacedRows = [...replacedRowSet];
    if (replacedRows.length > 0) await SQL.termsPrune(q, [replacedRows, terms.field, terms.value, terms.row]);
    if (terms.field.length > 0) await SQL.termsInsert(q, [terms.field, terms.value, terms.row]);
    // Newer than the host's latest (finishedAt, then scan id) or already it: as `ingestWith`'s upsert.
    const latest = await SQL.latestUpsert(q, [
      stored.map((i) => i.key),
      stored.map((i) => i.row!),
      stored.map((i) => i.scan.finishedAt),
      stored.map((i) => i.scan.scanId),
    ]);
    const fresh = new Map(latest.rows.map((r) => [r.scan_row as number, r.fresh === true]));
    const becameLatest = stored.filter((i) => fresh.has(i.row!));
    // A host's first latest row has no facet rows to clear (latest rows are never deleted).
    const stale = becameLatest.filter((i) => fresh.get(i.row!) !== true);
    const latestTerms = { field: [] as string[], value: [] as string[], key: [] as Buffer[] };
    for (const item of becameLatest) {
      for (const [field, value] of facetPairs(item.fields)) {
        latestTerms.field.push(field);
        latestTerms.value.push(value);
        latestTerms.key.push(item.key);
      }
    }
    if (stale.length > 0) await SQL.latestTermsPrune(q, [stale.map((i) => i.key), latestTerms.field, latestTerms.value, latestTerms.key]);
    if (latestTerms.field.length > 0) await SQL.latestTermsInsert(q, [latestTerms.field, latestTerms.value, latestTerms.key]);
    const leaseIds = stored.filter((i) => i.input.leaseId !== undefined).map((i) => i.input.leaseId!);
    const taken =
      leaseIds.length === 0
        ? new Map<string, string>()
        : new Map((await SQL.leasesTake(q, [leaseIds])).rows.map((r) => [r.id as string, r.doc as string]));
    // In call order from here: the queue, the learning queue, events and the outbox keep it.
    const inOrder = stored.sort((a, b) => a.index - b.index);
    const queued = await this.insertQueued(
      q,
      inOrder.flatMap((i) => i.enqueue ?? []),
    );
    const learn = inOrder.flatMap((i) => i.input.learn ?? []);
    if (learn.length > 0) await this.insertLearning(q, learn);
    const storedEvents = await this.index.insertEvents(
      q,
      inOrder.flatMap((i) => i.input.events ?? []),
    );
    let nextQueued = 0;
    let nextEvent = 0;
    const records: OutboxEntry[] = [];
    for (const item of inOrder) {
      const isLatest = fresh.has(item.row!);
      const leaseDoc = item.input.leaseId === undefined ? undefined : taken.get(item.input.leaseId);
      const own = queued.slice(nextQueued, (nextQueued += item.enqueue?.length ?? 0));
      results[item.index] = {
        inserted: true,
        latest: isLatest,
        ...(leaseDoc !== undefined ? { lease: JSON.parse(leaseDoc) as Lease } : {}),
        ...(own.length > 0 ? { queued: own } : {}),
      };
      const events = storedEvents.slice(nextEvent, (nextEvent += item.input.events?.length ?? 0));
      if (this.outbox) records.push({ kind: 'visit', scan: item.scan, latest: isLatest, events });
    }
    if (records.length > 0) await SQL.outboxInsert(q, [records.map((r) => JSON.stringify(r))]);
    return results;
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
