import { PortbanditError } from '../core/index.js';
import { ipKey } from './ip-key.js';
import { encodeScanCursor, resolveLimit, resolvePage } from './page.js';
import { PostgresDatabase, type PostgresOptions, type Queryable, type SchemaPart, pointReads, prepared } from './postgres-database.js';
import type { QueryNode } from './query-ast.js';
import { type ScanIndexFields, indexScan, validateScan } from './scan-index.js';
import { compileSqliteQuery, needsWords, type SqlColumns, type SqlCondition } from './sqlite-query.js';
import type {
  EventPage,
  IngestResult,
  NewStoreEvent,
  Page,
  PageRequest,
  ScanDocument,
  ScanIndex,
  ScanIngest,
  SearchOptions,
  SearchView,
  StoreCounts,
  StoreEvent,
} from './types.js';

/** What `ingestWith` stored, for an outbox record (absent for a duplicate). */
export interface IngestedWith extends IngestResult {
  readonly stored?: { readonly scan: ScanDocument; readonly events: readonly StoreEvent[] };
}

type Row = Record<string, unknown>;

const parse = <T>(text: unknown): T => JSON.parse(text as string) as T;

/** Where an event stands in read order: its transaction id (xid8 as text, or null to look it up) and sequence. */
interface EventPosition {
  readonly xid: string | null;
  readonly seq: number;
}

/**
 * `xid.seq` (a cursor), or an event's id `seq` (its transaction id is looked up: `c` below);
 * PB_ERR_CURSOR naming `where` for anything else.
 */
function parseEventPosition(text: string, where: string): EventPosition {
  const match = /^(?:(\d{1,20})\.)?(\d{1,16})$/u.exec(text);
  const seq = match ? Number(match[2]) : NaN;
  if (!match || !Number.isSafeInteger(seq) || (match[1] !== undefined && BigInt(match[1]) >= 2n ** 64n)) {
    throw new PortbanditError('PB_ERR_CURSOR', `'${text}' is not an event cursor`, { where });
  }
  return { xid: match[1] ?? null, seq };
}

/**
 * The cursor's transaction id as `c.x`: $1, or for an event id ($1 null) that event's (the
 * nearest one below it when it is gone), or 0.
 */
const EVENT_POSITION = `WITH c AS (SELECT COALESCE($1::xid8, (SELECT xid FROM events WHERE seq <= $2::int8 ORDER BY seq DESC LIMIT 1), '0'::xid8) AS x)`;

const toEvent = (row: Row): StoreEvent => ({ ...parse<NewStoreEvent>(row.doc), id: String(row.seq) });
const positionOf = (row: Row): string => `${row.x as string}.${row.seq as number}`;

/** The scan index tables: the SQLite layout (docs/store.md), with bytea address keys. */
export const INDEX_SCHEMA: SchemaPart = {
  name: 'index',
  migrations: [
    `
    CREATE TABLE scans (
      row bigserial PRIMARY KEY, scan_id text NOT NULL UNIQUE, ip text NOT NULL, ip_key bytea NOT NULL,
      finished_at bigint NOT NULL, words text NOT NULL, doc text NOT NULL
    );
    CREATE INDEX scans_host ON scans (ip_key, finished_at DESC, scan_id DESC);
    CREATE INDEX scans_time ON scans (finished_at, scan_id);
    CREATE TABLE scan_terms (
      field text NOT NULL, value text NOT NULL, scan_row bigint NOT NULL,
      PRIMARY KEY (field, value, scan_row)
    );
    CREATE INDEX scan_terms_row ON scan_terms (scan_row, field);
    CREATE TABLE latest (
      ip_key bytea PRIMARY KEY, scan_row bigint NOT NULL UNIQUE, finished_at bigint NOT NULL, scan_id text NOT NULL
    );
    CREATE INDEX latest_time ON latest (finished_at DESC, scan_id DESC);
    CREATE TABLE latest_terms (
      field text NOT NULL, value text NOT NULL, ip_key bytea NOT NULL,
      PRIMARY KEY (field, value, ip_key)
    );
    CREATE INDEX latest_terms_host ON latest_terms (ip_key);
    CREATE TABLE events (seq bigserial PRIMARY KEY, doc text NOT NULL);
    `,
    // 2: events are read in (transaction id, sequence) order up to the oldest transaction still
    // running (readEvents), so writers no longer queue on a lock held until their commit. Events
    // already stored share the migration's transaction id and keep their order.
    `
    ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
    CREATE INDEX events_position ON events (xid, seq);
    `,
  ],
};

/** The hot path's statements, prepared once per connection. */
const SQL = {
  scansGet: prepared('scans_get', 'SELECT scan_id, doc FROM scans WHERE scan_id = ANY($1::text[])'),
  latestsGet: prepared(
    'latests_get',
    'SELECT l.ip_key, s.doc FROM latest l JOIN scans s ON s.row = l.scan_row WHERE l.ip_key = ANY($1::bytea[])',
  ),
  eventsInsert: prepared(
    'events_insert',
    'INSERT INTO events (doc) SELECT d FROM unnest($1::text[]) WITH ORDINALITY AS t(d, i) ORDER BY i RETURNING seq',
  ),
};

/** Placeholders numbered in order: the SQLite compiler's `?` become `$n` from `start`. */
function numbered(sql: string, start = 1): string {
  let n = start;
  return sql.replace(/\?/gu, () => `$${n++}`);
}

const PG = { truth: 'TRUE', contains: (words: string) => `strpos(${words}, ?) > 0` };

const HISTORY: SqlColumns = {
  row: 's.row',
  ipKey: 's.ip_key',
  finishedAt: 's.finished_at',
  words: 's.words',
  hasTerm: 's.row IN (SELECT scan_row FROM scan_terms WHERE field = ? AND value = ?)',
  lacksTerm: 'NOT EXISTS (SELECT 1 FROM scan_terms WHERE field = ? AND value = ? AND scan_row = s.row)',
  hasField: 's.row IN (SELECT scan_row FROM scan_terms WHERE field = ?)',
  lacksField: 'NOT EXISTS (SELECT 1 FROM scan_terms WHERE field = ? AND scan_row = s.row)',
  ...PG,
};
const LATEST: SqlColumns = {
  row: 'l.scan_row',
  ipKey: 'l.ip_key',
  finishedAt: 'l.finished_at',
  words: 's.words',
  hasTerm: 'l.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = ? AND value = ?)',
  lacksTerm: 'NOT EXISTS (SELECT 1 FROM latest_terms WHERE field = ? AND value = ? AND ip_key = l.ip_key)',
  hasField: 'l.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = ?)',
  lacksField: 'NOT EXISTS (SELECT 1 FROM latest_terms WHERE field = ? AND ip_key = l.ip_key)',
  ...PG,
};

/** Open the PostgreSQL scan index alone (the coordinator uses it inside `openPostgresStore`). */
export async function openPostgresIndex(options: PostgresOptions): Promise<PostgresScanIndex> {
  return new PostgresScanIndex(await PostgresDatabase.open(options, [INDEX_SCHEMA]));
}

/**
 * The scan index on PostgreSQL: the same tables and query translation as SQLite (the query
 * compiler is shared; placeholders are renumbered), so both answer every query alike, and
 * every coordinator on the database searches everything any of them stored.
 */
export class PostgresScanIndex implements ScanIndex {
  readonly kind = 'postgres' as const;

  constructor(readonly db: PostgresDatabase) {}

  private async run<T>(what: string, work: (q: Queryable) => Promise<T>, tx = false): Promise<T> {
    try {
      return tx ? await this.db.transaction(work) : await work(this.db.pool);
    } catch (error) {
      throw this.db.wrap(error, what);
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  ingestScan(input: ScanIngest): Promise<IngestResult> {
    return this.run(
      'ingesting a scan',
      async (q) => {
        const { stored: _stored, ...result } = await this.ingestWith(q, input, undefined);
        return result;
      },
      true,
    );
  }

  /**
   * Store one visit inside the caller's transaction. `mayReplace` decides whether a known scanId
   * is replaced when `replace` is set (the composite store checks the lease); without it, a
   * replace is allowed when the new document has more rounds than the stored one.
   */
  async ingestWith(q: Queryable, input: ScanIngest, mayReplace: (() => Promise<boolean>) | undefined): Promise<IngestedWith> {
    const scan = validateScan(input.scan);
    const fields = indexScan(scan);
    const key = ipKey(scan.ip, 'scan.ip');
    const words = fields.words.length === 0 ? ' ' : ` ${fields.words.join(' ')} `;
    const doc = JSON.stringify(scan);
    let row: number;
    const inserted = (
      await q.query(
        `INSERT INTO scans (scan_id, ip, ip_key, finished_at, words, doc) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scan_id) DO NOTHING RETURNING row`,
        [scan.scanId, scan.ip, key, scan.finishedAt, words, doc],
      )
    ).rows[0];
    if (inserted) row = inserted.row as number;
    else {
      if (!input.replace) return { inserted: false, latest: false };
      const existing = (await q.query('SELECT row, doc FROM scans WHERE scan_id = $1 FOR UPDATE', [scan.scanId])).rows[0]!;
      const allowed = mayReplace
        ? await mayReplace()
        : (scan.rounds?.length ?? 1) > (parse<ScanDocument>(existing.doc).rounds?.length ?? 1);
      if (!allowed) return { inserted: false, latest: false };
      row = existing.row as number;
      await q.query('UPDATE scans SET finished_at = $1, words = $2, doc = $3 WHERE row = $4', [scan.finishedAt, words, doc, row]);
    }
    const pairs = facetPairs(fields);
    const names = pairs.map(([field]) => field);
    const values = pairs.map(([, value]) => value);
    // A later round's facet rows by difference: only those the new document lacks go, and the
    // insert skips the kept ones (as for a host's latest rows below).
    if (!inserted)
      await q.query(
        `DELETE FROM scan_terms t WHERE t.scan_row = $1
           AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS n(field, value) WHERE n.field = t.field AND n.value = t.value)`,
        [row, names, values],
      );
    if (pairs.length > 0)
      await q.query(
        'INSERT INTO scan_terms (field, value, scan_row) SELECT f, v, $3 FROM unnest($1::text[], $2::text[]) AS t(f, v) ON CONFLICT DO NOTHING',
        [names, values, row],
      );
    // The upsert decides "newer" under the host's row lock: concurrent ingests of one host
    // (two coordinators) apply in some order and the newest stays latest.
    const latest = (
      await q.query(
        `INSERT INTO latest (ip_key, scan_row, finished_at, scan_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (ip_key) DO UPDATE SET scan_row = excluded.scan_row, finished_at = excluded.finished_at, scan_id = excluded.scan_id
         WHERE latest.scan_row = excluded.scan_row OR (excluded.finished_at, excluded.scan_id COLLATE "C") > (latest.finished_at, latest.scan_id COLLATE "C")
         RETURNING (xmax = 0) AS fresh`,
        [key, row, scan.finishedAt, scan.scanId],
      )
    ).rows[0];
    if (latest) {
      // A host's first latest row (inserted, not updated: xmax 0) has no facet rows to clear
      // (latest rows are never deleted), as in the SQLite store: one statement less per new host.
      // Else only the rows the new scan lacks go; the insert below skips the ones kept.
      if (latest.fresh !== true)
        await q.query(
          `DELETE FROM latest_terms t WHERE t.ip_key = $1
             AND NOT EXISTS (SELECT 1 FROM scan_terms s WHERE s.scan_row = $2 AND s.field = t.field AND s.value = t.value)`,
          [key, row],
        );
      await q.query(
        'INSERT INTO latest_terms (field, value, ip_key) SELECT field, value, $1 FROM scan_terms WHERE scan_row = $2 ON CONFLICT DO NOTHING',
        [key, row],
      );
    }
    const events = input.events && input.events.length > 0 ? await this.insertEvents(q, input.events) : [];
    return { inserted: true, latest: latest !== undefined, stored: { scan, events } };
  }

  /**
   * Events get their sequence number at insert, not at commit, so with several writers a later
   * number can commit first. No lock orders them: readers order events by (transaction id,
   * sequence) and read only below the oldest transaction still running (readEvents), so a
   * reader never passes an event that has yet to commit. (A lock held until commit did this
   * before; under load every ingest queued on it for hundreds of milliseconds, holding a pool
   * connection and, with its open transaction, the cleanup of every busy table.)
   */
  async insertEvents(q: Queryable, events: readonly NewStoreEvent[]): Promise<StoreEvent[]> {
    if (events.length === 0) return [];
    const docs = events.map((e) => JSON.stringify(e));
    const { rows } = await SQL.eventsInsert(q, [docs]);
    // Sequence numbers were drawn in ORDER BY order: the i-th smallest belongs to the i-th event.
    const seqs = rows.map((r) => r.seq as number).sort((a, b) => a - b);
    return docs.map((doc, i) => ({ ...(JSON.parse(doc) as NewStoreEvent), id: String(seqs[i]) }));
  }

  /** Scans by id, read together (pointReads). */
  private readonly scanReads = pointReads<string, ScanDocument>((ids) =>
    this.run('reading a scan', async (q) => {
      const { rows } = await SQL.scansGet(q, [ids]);
      return new Map(rows.map((row) => [row.scan_id as string, parse<ScanDocument>(row.doc)]));
    }),
  );

  /** Hosts' latest scans by address key (hex), read together (pointReads). */
  private readonly latestReads = pointReads<string, ScanDocument>((keys) =>
    this.run('reading the latest scan', async (q) => {
      const { rows } = await SQL.latestsGet(q, [keys.map((key) => Buffer.from(key, 'hex'))]);
      return new Map(rows.map((row) => [(row.ip_key as Buffer).toString('hex'), parse<ScanDocument>(row.doc)]));
    }),
  );

  getScan(scanId: string): Promise<ScanDocument | undefined> {
    return this.scanReads(scanId);
  }

  getLatestScan(ip: string): Promise<ScanDocument | undefined> {
    let key: string;
    try {
      key = ipKey(ip).toString('hex');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.latestReads(key);
  }

  hostHistory(ip: string, page?: PageRequest): Promise<Page<ScanDocument>> {
    return this.run('reading host history', async (q) => {
      const key = ipKey(ip);
      return this.page(q, this.view('history', undefined), () => ({ sql: 's.ip_key = ?', params: [key] }), page);
    });
  }

  search(query: QueryNode | undefined, options: SearchOptions = {}): Promise<Page<ScanDocument>> {
    return this.run('searching', (q) =>
      this.page(q, this.view(options.view ?? 'latest', query), (c) => compileSqliteQuery(query, c), options),
    );
  }

  count(query: QueryNode | undefined, options: { view?: SearchView } = {}): Promise<number> {
    return this.run('counting', async (q) => {
      const view = this.view(options.view ?? 'latest', query);
      return this.countWhere(q, view.from, compileSqliteQuery(query, view.columns));
    });
  }

  private view(view: SearchView, query: QueryNode | undefined): { from: string; columns: SqlColumns; scanId: string } {
    if (view === 'history') return { from: 'scans s', columns: HISTORY, scanId: 's.scan_id' };
    return { from: needsWords(query) ? 'latest l JOIN scans s ON s.row = l.scan_row' : 'latest l', columns: LATEST, scanId: 'l.scan_id' };
  }

  private async countWhere(q: Queryable, from: string, where: SqlCondition): Promise<number> {
    const { rows } = await q.query(numbered(`SELECT COUNT(*)::int8 AS n FROM ${from} WHERE ${where.sql}`), where.params);
    return rows[0]!.n as number;
  }

  /** One newest-first page (as SQLite: sort and cut the (row, time, id) triples, then read the documents). */
  private async page(
    q: Queryable,
    view: { from: string; columns: SqlColumns; scanId: string },
    condition: (columns: SqlColumns) => SqlCondition,
    request: PageRequest | undefined,
  ): Promise<Page<ScanDocument>> {
    const { limit, offset, after } = resolvePage(request);
    const where = condition(view.columns);
    const total = await this.countWhere(q, view.from, where);
    const { row, finishedAt } = view.columns;
    const id = `${view.scanId} COLLATE "C"`;
    let inner = `SELECT ${row} AS r, ${finishedAt} AS f, ${id} AS i FROM ${view.from} WHERE (${where.sql})`;
    const params = [...where.params];
    if (after) {
      inner += ` AND (${finishedAt} < ? OR (${finishedAt} = ? AND ${id} < ?))`;
      params.push(after.finishedAt, after.finishedAt, after.scanId);
    }
    inner += ' ORDER BY f DESC, i DESC LIMIT ? OFFSET ?';
    params.push(limit + 1, offset);
    const sql = `SELECT d.doc FROM (${inner}) p JOIN scans d ON d.row = p.r ORDER BY p.f DESC, p.i DESC`;
    const rows = (await q.query(numbered(sql), params)).rows;
    const items = rows.slice(0, limit).map((r) => parse<ScanDocument>(r.doc));
    const last = items.at(-1);
    return { items, total, nextCursor: rows.length > limit && last ? encodeScanCursor(last) : undefined };
  }

  async *exportHistory(options: { since?: number; until?: number; batchSize?: number } = {}): AsyncIterable<ScanDocument> {
    const batch = resolveLimit(options.batchSize, 500, 'batchSize');
    let position = { finishedAt: (options.since ?? Number.MIN_SAFE_INTEGER) - 1, scanId: '\u{10FFFF}' };
    const until = options.until ?? Number.MAX_SAFE_INTEGER;
    for (;;) {
      const rows = await this.run(
        'exporting history',
        async (q) =>
          (
            await q.query(
              `SELECT finished_at, scan_id, doc FROM scans WHERE (finished_at > $1 OR (finished_at = $1 AND scan_id COLLATE "C" > $2)) AND finished_at < $3
             ORDER BY finished_at, scan_id COLLATE "C" LIMIT $4`,
              [position.finishedAt, position.scanId, until, batch],
            )
          ).rows,
      );
      for (const row of rows) yield parse<ScanDocument>(row.doc);
      if (rows.length < batch) return;
      const last = rows.at(-1)!;
      position = { finishedAt: last.finished_at as number, scanId: last.scan_id as string };
    }
  }

  appendEvents(events: readonly NewStoreEvent[]): Promise<void> {
    return this.run(
      'appending events',
      async (q) => {
        await this.insertEvents(q, events);
      },
      true,
    );
  }

  /**
   * Oldest first by position (transaction id, sequence), only events of transactions older than
   * the oldest one still running: everything below that has committed or rolled back, so no
   * event can appear behind a cursor already handed out. The cursor is a position (`xid.seq`);
   * an event's id (its sequence number, and every cursor before this order) is accepted too.
   */
  readEvents(options: { cursor?: string; limit?: number } = {}): Promise<EventPage> {
    let after: EventPosition;
    try {
      after = options.cursor === undefined ? { xid: '0', seq: 0 } : parseEventPosition(options.cursor, 'cursor');
    } catch (error) {
      return Promise.reject(error);
    }
    const limit = resolveLimit(options.limit, 1000);
    return this.run('reading events', async (q) => {
      const { rows } = await q.query(
        `${EVENT_POSITION}
         SELECT e.xid::text AS x, e.seq, e.doc FROM events e
          WHERE (e.xid, e.seq) > ((SELECT x FROM c), $2::int8) AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY e.xid, e.seq LIMIT $3`,
        [after.xid, after.seq, limit],
      );
      return { events: rows.map(toEvent), cursor: rows.length > 0 ? positionOf(rows.at(-1)!) : options.cursor };
    });
  }

  /** Newest first, in the same order and over the same settled events as `readEvents`. */
  readEventsBackward(options: { before?: string; limit?: number } = {}): Promise<EventPage> {
    let before: EventPosition | undefined;
    try {
      before = options.before === undefined ? undefined : parseEventPosition(options.before, 'before');
    } catch (error) {
      return Promise.reject(error);
    }
    const limit = resolveLimit(options.limit, 1000);
    return this.run('reading events backward', async (q) => {
      const { rows } =
        before === undefined
          ? await q.query(
              `SELECT e.xid::text AS x, e.seq, e.doc FROM events e WHERE e.xid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY e.xid DESC, e.seq DESC LIMIT $1`,
              [limit],
            )
          : await q.query(
              `${EVENT_POSITION}
               SELECT e.xid::text AS x, e.seq, e.doc FROM events e
                WHERE (e.xid, e.seq) < ((SELECT x FROM c), $2::int8) AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY e.xid DESC, e.seq DESC LIMIT $3`,
              [before.xid, before.seq, limit],
            );
      return { events: rows.map(toEvent), cursor: rows.length > 0 ? positionOf(rows.at(-1)!) : options.before };
    });
  }

  /** One transaction: the history rows and their scan_terms; a host's latest row is refused. */
  deleteHistory(scanIds: readonly string[]): Promise<{ deleted: number; refusedLatest: number }> {
    return this.run(
      'deleting history',
      async (q) => {
        const { gone: _gone, ...result } = await this.deleteHistoryWith(q, scanIds);
        return result;
      },
      true,
    );
  }

  /** `deleteHistory` inside the caller's transaction; `gone` names the scans deleted. */
  async deleteHistoryWith(q: Queryable, scanIds: readonly string[]): Promise<{ deleted: number; refusedLatest: number; gone: string[] }> {
    if (scanIds.length === 0) return { deleted: 0, refusedLatest: 0, gone: [] };
    const rows = (
      await q.query(
        `SELECT s.row AS row, s.scan_id AS scan_id, (l.scan_row IS NOT NULL) AS is_latest FROM scans s LEFT JOIN latest l ON l.scan_row = s.row
         WHERE s.scan_id = ANY($1::text[]) FOR UPDATE OF s`,
        [[...scanIds]],
      )
    ).rows;
    const dropped = rows.filter((r) => !r.is_latest);
    const drop = dropped.map((r) => r.row as number);
    if (drop.length > 0) {
      await q.query('DELETE FROM scan_terms WHERE scan_row = ANY($1::int8[])', [drop]);
      await q.query('DELETE FROM scans WHERE row = ANY($1::int8[])', [drop]);
    }
    return { deleted: drop.length, refusedLatest: rows.length - drop.length, gone: dropped.map((r) => r.scan_id as string) };
  }

  counts(options: { tag?: string } = {}): Promise<StoreCounts> {
    return this.run('counting', async (q) => {
      const tag = options.tag?.toLowerCase() ?? null;
      const row = (
        await q.query(
          `SELECT
            (SELECT COUNT(*) FROM latest l WHERE $1::text IS NULL OR l.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = 'tag' AND value = $1))::int8 AS hosts,
            (SELECT COUNT(*) FROM scans s WHERE $1::text IS NULL OR s.row IN (SELECT scan_row FROM scan_terms WHERE field = 'tag' AND value = $1))::int8 AS scans,
            (SELECT COUNT(*) FROM events)::int8 AS events,
            (SELECT COUNT(*) FROM latest_terms t WHERE t.field = 'port' AND ($1::text IS NULL OR t.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = 'tag' AND value = $1)))::int8 AS open_ports`,
          [tag],
        )
      ).rows[0]!;
      return { hosts: row.hosts as number, scans: row.scans as number, events: row.events as number, openPorts: row.open_ports as number };
    });
  }

  private topTerms(q: Queryable, field: 'port' | 'service', options: { tag?: string; limit?: number }): Promise<Row[]> {
    const limit = resolveLimit(options.limit, 20);
    // Ties: ports numerically, services by name (as SQLite's CAST(value AS INTEGER), value).
    const order = field === 'port' ? 'hosts DESC, t.value::int' : 'hosts DESC, t.value COLLATE "C"';
    const tag = options.tag?.toLowerCase() ?? null;
    return q
      .query(
        `SELECT t.value AS value, COUNT(*)::int8 AS hosts FROM latest_terms t
         WHERE t.field = $1 AND ($2::text IS NULL OR t.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = 'tag' AND value = $2))
         GROUP BY t.value ORDER BY ${order} LIMIT $3`,
        [field, tag, limit],
      )
      .then((r) => r.rows);
  }

  topPorts(options: { tag?: string; limit?: number } = {}): Promise<{ port: number; hosts: number }[]> {
    return this.run('computing top ports', async (q) =>
      (await this.topTerms(q, 'port', options)).map((row) => ({ port: Number(row.value), hosts: row.hosts as number })),
    );
  }

  topServices(options: { tag?: string; limit?: number } = {}): Promise<{ service: string; hosts: number }[]> {
    return this.run('computing top services', async (q) =>
      (await this.topTerms(q, 'service', options)).map((row) => ({ service: row.value as string, hosts: row.hosts as number })),
    );
  }

  scansPerHour(options: { since: number; until: number; tag?: string }): Promise<{ hourStart: number; scans: number }[]> {
    return this.run('computing scans per hour', async (q) => {
      const tag = options.tag?.toLowerCase() ?? null;
      const { rows } = await q.query(
        `SELECT (s.finished_at / 3600000) * 3600000 AS hour, COUNT(*)::int8 AS n FROM scans s
         WHERE s.finished_at >= $1 AND s.finished_at < $2 AND ($3::text IS NULL OR s.row IN (SELECT scan_row FROM scan_terms WHERE field = 'tag' AND value = $3))
         GROUP BY hour ORDER BY hour`,
        [options.since, options.until, tag],
      );
      return rows.map((row) => ({ hourStart: row.hour as number, scans: row.n as number }));
    });
  }
}

/** A scan's facets as (field, value) pairs, as the facet tables hold them (the SQLite store's order). */
export function facetPairs(fields: ScanIndexFields): [string, string][] {
  const pairs: [string, string][] = [];
  for (const port of fields.ports) pairs.push(['port', String(port)]);
  for (const [field, values] of Object.entries(fields.terms)) for (const value of values) pairs.push([field, value]);
  // A facet row (field 'screenshot', value 'true') for `screenshot:true`, as in SQLite.
  if (fields.screenshot) pairs.push(['screenshot', 'true']);
  return pairs;
}
