import { randomInt } from 'node:crypto';
import { Client, errors, type estypes } from '@elastic/elasticsearch';
import { PortbanditError, isPortbanditError } from '../core/index.js';
import { compileEsQuery, type EsQuery } from './elasticsearch-query.js';
import { canonicalIp } from './ip-key.js';
import { encodeScanCursor, resolveLimit, resolvePage } from './page.js';
import type { QueryNode } from './query-ast.js';
import { indexScan, validateScan } from './scan-index.js';
import type {
  EventPage,
  IngestResult,
  NewStoreEvent,
  OutboxRecord,
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

export interface ElasticsearchStoreOptions {
  /** Cluster URL (`http://127.0.0.1:9200`), or pass `client`. */
  readonly node?: string;
  /** A configured client (auth, TLS, or the test mock's connection). */
  readonly client?: Client;
  /** Index name prefix: indices are `${prefix}-scans`, `-latest`, `-events`, `-kv`. Default `portbandit`. */
  readonly prefix?: string;
  /**
   * Backoff for `_bulk` items (or requests) Elasticsearch rejects with 429 under load: up to
   * `retries` re-sends (default 6), waiting about `baseDelayMs` (default 100) doubled each time,
   * at most `maxDelayMs` (default 5,000), with jitter.
   */
  readonly bulkRetry?: { readonly retries?: number; readonly baseDelayMs?: number; readonly maxDelayMs?: number };
}

/** Bounded retries for the event counter's compare-and-set (read, compare, write if unchanged). */
const MAX_RETRIES = 20;

/** Elasticsearch's index.max_result_window: from + size beyond it is refused (pages continue with search_after). */
const MAX_LISTING = 10_000;

const keyword = { type: 'keyword' } as const;
/**
 * Search facets: indexScan caps words and terms (MAX_WORD_LENGTH, MAX_TERM_LENGTH), and
 * `ignore_above` is the net behind it: a longer value is stored, not indexed, instead of failing
 * the whole document (Lucene refuses a term over 32,766 bytes). Applies to indices this version
 * creates; an older index keeps its mapping.
 */
const facet = { type: 'keyword', ignore_above: 1024 } as const;
const long = { type: 'long' } as const;
const opaque = { type: 'object', enabled: false } as const;

/** Scans (history and latest): the document is opaque; search fields are extracted by indexScan. */
const SCAN_MAPPINGS = {
  dynamic: 'strict',
  properties: {
    scanId: keyword,
    ip: { type: 'ip' },
    finishedAt: long,
    port: { type: 'integer' },
    service: facet,
    product: facet,
    version: facet,
    cpe: facet,
    script: facet,
    tag: facet,
    agent: facet,
    group: facet,
    name: facet,
    words: facet,
    openPortCount: { type: 'integer' },
    screenshot: keyword,
    doc: opaque,
  },
} as const;

/** Scan fields added after the first release: put into the mapping of existing indices at open. */
const ADDED_SCAN_FIELDS = { screenshot: keyword, group: keyword, name: keyword } as const;

const EVENT_MAPPINGS = { dynamic: 'strict', properties: { seq: long, doc: opaque } } as const;

/**
 * One counter document: the event sequence of events ingested through `ingestScan` /
 * `appendEvents` directly (the index alone). Events fed from an outbox carry the coordination
 * store's numbers and never touch it. (Indices made by older versions have more kv fields, unused.)
 */
const KV_MAPPINGS = { dynamic: 'strict', properties: { kind: keyword, key: keyword, body: opaque } } as const;

interface KvSource {
  kind: string;
  key: string;
  body: unknown;
}

interface Versioned<T> {
  source: T;
  seqNo: number;
  primaryTerm: number;
}

/**
 * The scan index on Elasticsearch (history, latest per host, events, search, statistics). It sits
 * beside a SQLite or PostgreSQL coordination store, fed from that store's outbox by an
 * `OutboxFeeder` (`applyOutbox`); Elasticsearch holds no coordination state (docs/store.md).
 */
export interface ElasticsearchScanIndex extends ScanIndex {
  readonly kind: 'elasticsearch';
  /**
   * Make every scan, latest and event write so far visible to search (`POST _refresh`). Writes
   * force no refresh; a test (or tool) that searches right after writing calls this.
   */
  refresh(): Promise<void>;
  /**
   * Apply outbox records in order, in `_bulk` requests: history and latest documents with
   * external versions (finishedAt), events by the coordination store's ids, deletions. Idempotent:
   * applying a record again (a replay after a crash before the acknowledgement) changes nothing.
   * 429s are re-sent with backoff; any other failure throws and nothing should be acknowledged.
   */
  applyOutbox(records: readonly OutboxRecord[]): Promise<void>;
  /**
   * Bind the index prefix to one coordination database (`storeId`, its identity document): the
   * first caller records it; a different one is refused with `PB_ERR_CONFIG`. Fed events are keyed
   * by the coordination store's ids, so a second database feeding the same prefix would have its
   * events taken for replays of the first's and skipped.
   */
  claimOwner(storeId: string): Promise<void>;
}

/** Open the scan index, creating its indices (with mappings) when missing. */
export async function openElasticsearchScanIndex(options: ElasticsearchStoreOptions): Promise<ElasticsearchScanIndex> {
  const client = options.client ?? (options.node ? new Client({ node: options.node }) : undefined);
  if (!client)
    throw new PortbanditError('PB_ERR_CONFIG', 'the Elasticsearch index needs a node URL or a client', {
      where: 'store.elasticsearch.node',
    });
  const prefix = options.prefix ?? 'portbandit';
  if (!/^[a-z0-9][a-z0-9_-]*$/u.test(prefix)) {
    throw new PortbanditError('PB_ERR_CONFIG', `'${prefix}' is not a usable index prefix; expected lower-case letters, digits, - and _`, {
      where: 'store.elasticsearch.prefix',
    });
  }
  const bulkRetry = { retries: 6, baseDelayMs: 100, maxDelayMs: 5000, ...options.bulkRetry };
  for (const [key, value] of Object.entries(bulkRetry)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new PortbanditError('PB_ERR_CONFIG', `bulkRetry.${key} must be a non-negative integer, got ${JSON.stringify(value)}`, {
        where: `store.elasticsearch.bulkRetry.${key}`,
      });
    }
  }
  const index = new ElasticsearchIndex(client, prefix, options.client === undefined, bulkRetry);
  await index.ensureIndices();
  return index;
}

/** Ids are base64url so any key (slashes, colons, empty) is a safe URL path segment. */
function encodeId(kind: string, key: string): string {
  return `${kind}.${Buffer.from(key).toString('base64url')}`;
}

function statusOf(error: unknown): number | undefined {
  return error instanceof errors.ResponseError ? error.statusCode : undefined;
}

class ElasticsearchIndex implements ElasticsearchScanIndex {
  readonly kind = 'elasticsearch' as const;
  private readonly index: { scans: string; latest: string; events: string; kv: string };

  constructor(
    private readonly client: Client,
    prefix: string,
    private readonly ownsClient: boolean,
    private readonly bulkRetry: { retries: number; baseDelayMs: number; maxDelayMs: number },
  ) {
    this.index = { scans: `${prefix}-scans`, latest: `${prefix}-latest`, events: `${prefix}-events`, kv: `${prefix}-kv` };
  }

  /** Map client failures to PB_ERR_STORE, keeping our own coded errors. */
  private async run<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isPortbanditError(error)) throw error;
      const status = statusOf(error);
      throw new PortbanditError(
        'PB_ERR_STORE',
        `Elasticsearch store failed while ${what}${status ? ` (HTTP ${status})` : ''}: ${(error as Error)?.message}`,
        {
          cause: error,
        },
      );
    }
  }

  async ensureIndices(): Promise<void> {
    await this.run('creating indices', async () => {
      const wanted: [string, unknown][] = [
        [this.index.scans, SCAN_MAPPINGS],
        [this.index.latest, SCAN_MAPPINGS],
        [this.index.events, EVENT_MAPPINGS],
        [this.index.kv, KV_MAPPINGS],
      ];
      for (const [index, mappings] of wanted) {
        if (await this.client.indices.exists({ index })) {
          // Indices made by an older version lack fields added since (`screenshot`, `group`, `name`); adding is all ES allows.
          if (mappings === SCAN_MAPPINGS) await this.client.indices.putMapping({ index, properties: ADDED_SCAN_FIELDS });
          continue;
        }
        try {
          await this.client.indices.create({ index, mappings: mappings as estypes.MappingTypeMapping });
        } catch (error) {
          // Another coordinator created it in the meantime.
          if (statusOf(error) !== 400 || !String((error as errors.ResponseError).body?.error?.type).includes('already_exists')) throw error;
        }
      }
    });
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }

  async refresh(): Promise<void> {
    await this.run('refreshing indices', () =>
      this.client.indices.refresh({ index: [this.index.scans, this.index.latest, this.index.events] }),
    );
  }

  // ------------------------------------------------------------------ low-level helpers
  private async getVersioned<T>(index: string, id: string): Promise<Versioned<T> | undefined> {
    try {
      const response = await this.client.get<T>({ index, id });
      if (!response.found || response._source === undefined) return undefined;
      return { source: response._source, seqNo: response._seq_no!, primaryTerm: response._primary_term! };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** Delete if present (and unchanged since `expected`, when given). True when this call deleted it. */
  private async deleteIf(index: string, id: string, expected?: Versioned<unknown>): Promise<boolean> {
    try {
      await this.client.delete({
        index,
        id,
        ...(expected ? { if_seq_no: expected.seqNo, if_primary_term: expected.primaryTerm } : {}),
      });
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status === 404 || status === 409) return false;
      throw error;
    }
  }

  /** Write `document` if the stored version is still `expected` (undefined = must not exist). False on conflict. */
  private async writeIf(index: string, id: string, document: unknown, expected: Versioned<unknown> | undefined): Promise<boolean> {
    try {
      if (expected) await this.client.index({ index, id, document, if_seq_no: expected.seqNo, if_primary_term: expected.primaryTerm });
      else await this.client.create({ index, id, document });
      return true;
    } catch (error) {
      if (statusOf(error) === 409) return false;
      throw error;
    }
  }

  /** Read-modify-write with optimistic concurrency; `update` returns the new document or undefined to stop. */
  private async modify<T>(index: string, id: string, update: (current: T | undefined) => T | undefined): Promise<T | undefined> {
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const current = await this.getVersioned<T>(index, id);
      const next = update(current?.source);
      if (next === undefined) return undefined;
      if (await this.writeIf(index, id, next, current)) return next;
    }
    throw new PortbanditError('PB_ERR_CONFLICT', `gave up updating ${index}/${id} after ${MAX_RETRIES} concurrent modifications`, {
      where: id,
    });
  }

  claimOwner(storeId: string): Promise<void> {
    return this.run('claiming the index prefix', async () => {
      let owner: string | undefined;
      await this.modify<KvSource>(this.index.kv, encodeId('owner', 'store'), (current) => {
        owner = (current?.body as { storeId?: string } | undefined)?.storeId;
        return owner === undefined ? { kind: 'owner', key: 'store', body: { storeId } } : undefined;
      });
      if (owner !== undefined && owner !== storeId) {
        const prefix = this.index.kv.slice(0, -'-kv'.length);
        throw new PortbanditError(
          'PB_ERR_CONFIG',
          `the Elasticsearch indices ${prefix}-* are fed by another coordination database (store ${owner}; this one is ${storeId}): ` +
            `its events would be taken for replays and skipped. Use another --elasticsearch-prefix, or delete the ${prefix}-* indices first`,
          { where: 'store.elasticsearch.prefix' },
        );
      }
    });
  }

  /** Allocate `count` consecutive sequence numbers from a counter document; returns the first. */
  private async allocate(counter: string, count: number): Promise<number> {
    const next = await this.modify<KvSource>(this.index.kv, encodeId('counter', counter), (current) => ({
      kind: 'counter',
      key: counter,
      body: { value: ((current?.body as { value: number } | undefined)?.value ?? 0) + count },
    }));
    return (next!.body as { value: number }).value - count + 1;
  }

  // ------------------------------------------------------------------ history retention
  /**
   * Deletes the history documents one by one (Elasticsearch has no multi-document transaction):
   * a failure part-way leaves the ids before it deleted, which a retention pass simply redoes.
   */
  deleteHistory(scanIds: readonly string[]): Promise<{ deleted: number; refusedLatest: number }> {
    return this.run('deleting history', async () => {
      let deleted = 0;
      let refusedLatest = 0;
      for (const id of scanIds) {
        const docId = encodeId('scan', id);
        const stored = await this.getVersioned<ScanSource>(this.index.scans, docId);
        if (!stored) continue;
        const latest = await this.getVersioned<ScanSource>(this.index.latest, encodeId('ip', stored.source.ip));
        if (latest?.source.scanId === id) {
          refusedLatest++;
          continue;
        }
        if (await this.deleteIf(this.index.scans, docId, stored)) deleted++;
      }
      return { deleted, refusedLatest };
    });
  }

  // ------------------------------------------------------------------ scans
  /**
   * A new visit in one `_bulk` request: its events (`create` by deterministic id), the host's
   * latest (`index` with `version_type: external_gte`, version = finishedAt: a replay rewrites
   * the same document, an older visit gets a 409 and never overwrites a newer one) and its
   * history document (`create`: the commit point; a concurrent duplicate gets a 409).
   * A visit that loses a finishedAt tie on scanId sends no latest item (see ingestScan); two
   * such visits ingested concurrently may end with either as latest (the only race left).
   * Items Elasticsearch rejects under load (429) are re-sent with backoff (`bulk`). When any
   * other item fails, a history document this call created is deleted again before the error
   * is thrown, so the agent's retry is not taken for a duplicate and completes every item.
   */
  private async ingestBulk(
    scan: ScanDocument,
    source: ScanSource,
    scanDocId: string,
    input: ScanIngest,
    writeLatest: boolean,
  ): Promise<IngestResult> {
    const events = input.events ?? [];
    const first = events.length > 0 ? await this.allocate('event-seq', events.length) : 0;
    const actions: BulkAction[] = events.map((event, i) => ({
      op: 'create',
      index: this.index.events,
      id: encodeId('event', `${scan.scanId}#${i}`),
      document: { seq: first + i, doc: { ...event, id: String(first + i) } },
    }));
    if (writeLatest)
      actions.push({ op: 'index', index: this.index.latest, id: encodeId('ip', scan.ip), document: source, version: scan.finishedAt });
    actions.push({ op: 'create', index: this.index.scans, id: scanDocId, document: source });
    const outcomes = await this.bulk(actions);
    const history = outcomes.at(-1)!;
    const latest = writeLatest ? outcomes.at(-2)! : { status: 409 };
    if (history.status === 409) return { inserted: false, latest: false };
    const failed = outcomes.findIndex(
      (o, i) => !ok(o) && !(o.status === 409 && (actions[i]!.index === this.index.events || actions[i]!.index === this.index.latest)),
    );
    if (failed >= 0) {
      if (ok(history)) await this.deleteIf(this.index.scans, scanDocId);
      throw bulkFailure(actions[failed]!, outcomes[failed]!);
    }
    return { inserted: true, latest: ok(latest) };
  }

  /**
   * One `_bulk` request; items answered 429 (`es_rejected_execution_exception`), or the whole
   * request answered 429, are re-sent with exponential backoff and jitter, up to
   * `bulkRetries` times. Returns each action's final outcome, in order.
   */
  private async bulk(actions: readonly BulkAction[]): Promise<BulkOutcome[]> {
    const outcomes: BulkOutcome[] = new Array<BulkOutcome>(actions.length);
    let pending = actions.map((_, i) => i);
    for (let attempt = 0; ; attempt++) {
      let items: Partial<Record<estypes.BulkOperationType, estypes.BulkResponseItem>>[] | undefined;
      try {
        const response = await this.client.bulk({
          operations: pending.flatMap((i) => {
            const a = actions[i]!;
            const meta = {
              _index: a.index,
              _id: a.id,
              ...(a.version !== undefined ? { version: a.version, version_type: 'external_gte' as const } : {}),
            };
            return [{ [a.op]: meta }, a.document];
          }),
        });
        items = response.items;
      } catch (error) {
        if (statusOf(error) !== 429) throw error;
      }
      const retry: number[] = [];
      if (items === undefined) retry.push(...pending);
      else {
        items.forEach((item, k) => {
          const result = (item.create ?? item.index)!;
          const outcome = { status: result.status, type: result.error?.type, reason: result.error?.reason ?? undefined };
          if (outcome.status === 429 || outcome.type === 'es_rejected_execution_exception') retry.push(pending[k]!);
          else outcomes[pending[k]!] = outcome;
        });
      }
      if (retry.length === 0) return outcomes;
      if (attempt >= this.bulkRetry.retries) {
        throw new PortbanditError(
          'PB_ERR_STORE',
          `Elasticsearch kept rejecting ${retry.length} bulk item(s) with 429 after ${attempt + 1} attempts; the cluster is overloaded`,
          {
            where: actions[retry[0]!]!.index,
          },
        );
      }
      const delay = Math.min(this.bulkRetry.maxDelayMs, this.bulkRetry.baseDelayMs * 2 ** attempt);
      // Jitter so coordinators rejected together do not come back together (not simulation state: no seeded Rng).
      await sleep(delay / 2 + randomInt(Math.floor(delay / 2) + 1));
      pending = retry;
    }
  }

  /** The writes of a replaced visit in one `_bulk`: history (`index`), latest (external version), events (ids keyed by `round`). True when latest was written. */
  private async replaceBulk(
    scan: ScanDocument,
    source: ScanSource,
    scanDocId: string,
    events: readonly NewStoreEvent[],
    round: string,
    writeLatest: boolean,
  ): Promise<boolean> {
    const first = events.length > 0 ? await this.allocate('event-seq', events.length) : 0;
    const actions: BulkAction[] = events.map((event, i) => ({
      op: 'create',
      index: this.index.events,
      id: encodeId('event', `${scan.scanId}#${round}#${i}`),
      document: { seq: first + i, doc: { ...event, id: String(first + i) } },
    }));
    actions.push({ op: 'index', index: this.index.scans, id: scanDocId, document: source });
    if (writeLatest)
      actions.push({ op: 'index', index: this.index.latest, id: encodeId('ip', scan.ip), document: source, version: scan.finishedAt });
    const outcomes = await this.bulk(actions);
    const failed = outcomes.findIndex((o, i) => !ok(o) && !(o.status === 409 && actions[i]!.index !== this.index.scans));
    if (failed >= 0) throw bulkFailure(actions[failed]!, outcomes[failed]!);
    return writeLatest && ok(outcomes.at(-1)!);
  }

  /**
   * One visit written directly (not from an outbox). A known scanId is replaced when `replace`
   * is set and the new document has more rounds than the stored one (as the PostgreSQL scan
   * index does without a lease); otherwise it is a duplicate.
   */
  ingestScan(input: ScanIngest): Promise<IngestResult> {
    return this.run('ingesting a scan', async () => {
      const scan = validateScan(input.scan);
      const scanDocId = encodeId('scan', scan.scanId);
      const [existing, current] = await Promise.all([
        this.getVersioned<ScanSource>(this.index.scans, scanDocId),
        this.getVersioned<ScanSource>(this.index.latest, encodeId('ip', scan.ip)),
      ]);
      for (const event of input.events ?? []) JSON.stringify(event);
      const source = scanSource(scan);
      const lostTie =
        current !== undefined &&
        current.source.scanId !== scan.scanId &&
        current.source.finishedAt === scan.finishedAt &&
        current.source.scanId > scan.scanId;
      if (!existing) return this.ingestBulk(scan, source, scanDocId, input, !lostTie);
      const rounds = scan.rounds?.length ?? 1;
      if (!input.replace || rounds <= (existing.source.doc.rounds?.length ?? 1)) return { inserted: false, latest: false };
      const latest = await this.replaceBulk(scan, source, scanDocId, input.events ?? [], `r${rounds}`, !lostTie);
      return { inserted: true, latest };
    });
  }

  // ------------------------------------------------------------------ fed from an outbox
  applyOutbox(records: readonly OutboxRecord[]): Promise<void> {
    return this.run('applying outbox records', async () => {
      let pending: OutboxRecord[] = [];
      for (const record of records) {
        if (record.kind !== 'delete') {
          pending.push(record);
          continue;
        }
        // In order: what was fed before a deletion is written before it.
        await this.bulkRecords(pending);
        pending = [];
        await this.deleteHistory(record.scanIds);
      }
      await this.bulkRecords(pending);
    });
  }

  /**
   * Visits and events in one `_bulk`. Per scan id only its last document (a later round carries
   * the earlier ones) and per host only its last latest document are sent, so no two items of a
   * request touch one document and a 429 re-send cannot reorder them. History and latest go with
   * `external_gte` versions (finishedAt): a replay rewrites the same document, and a 409 means a
   * newer one is there already (fine). Latest is written only for a visit the coordination store
   * made the host's latest, so a finishedAt tie is decided there, by scan id. Events are created
   * under the coordination store's ids: a replay's 409 means it is there.
   */
  private async bulkRecords(records: readonly OutboxRecord[]): Promise<void> {
    if (records.length === 0) return;
    const history = new Map<string, ScanDocument>();
    const latest = new Map<string, ScanDocument>();
    const actions: BulkAction[] = [];
    for (const record of records) {
      if (record.kind === 'delete') continue;
      for (const event of record.events) {
        const seq = Number(event.id);
        actions.push({
          op: 'create',
          index: this.index.events,
          id: encodeId('event', `outbox#${event.id}`),
          document: { seq, doc: stripUndefined(event) },
        });
      }
      if (record.kind !== 'visit') continue;
      const scan = validateScan(record.scan);
      history.set(scan.scanId, scan);
      if (record.latest) latest.set(scan.ip, scan);
    }
    for (const scan of history.values())
      actions.push({
        op: 'index',
        index: this.index.scans,
        id: encodeId('scan', scan.scanId),
        document: scanSource(scan),
        version: scan.finishedAt,
      });
    for (const scan of latest.values())
      actions.push({
        op: 'index',
        index: this.index.latest,
        id: encodeId('ip', scan.ip),
        document: scanSource(scan),
        version: scan.finishedAt,
      });
    const outcomes = await this.bulk(actions);
    const failed = outcomes.findIndex((o) => !ok(o) && o.status !== 409);
    if (failed >= 0) throw bulkFailure(actions[failed]!, outcomes[failed]!);
  }

  getScan(scanId: string): Promise<ScanDocument | undefined> {
    return this.run(
      'reading a scan',
      async () => (await this.getVersioned<ScanSource>(this.index.scans, encodeId('scan', scanId)))?.source.doc,
    );
  }

  getLatestScan(ip: string): Promise<ScanDocument | undefined> {
    return this.run(
      'reading the latest scan',
      async () => (await this.getVersioned<ScanSource>(this.index.latest, encodeId('ip', canonicalIp(ip))))?.source.doc,
    );
  }

  hostHistory(ip: string, page?: PageRequest): Promise<Page<ScanDocument>> {
    return this.run('reading host history', () => this.page(this.index.scans, { term: { ip: canonicalIp(ip) } }, page));
  }

  search(query: QueryNode | undefined, options: SearchOptions = {}): Promise<Page<ScanDocument>> {
    return this.run('searching', () => this.page(this.viewIndex(options.view), compileEsQuery(query), options));
  }

  count(query: QueryNode | undefined, options: { view?: SearchView } = {}): Promise<number> {
    return this.run('counting', async () => {
      const response = await this.client.count({
        index: this.viewIndex(options.view),
        query: compileEsQuery(query) as estypes.QueryDslQueryContainer,
      });
      return response.count;
    });
  }

  private viewIndex(view: SearchView | undefined): string {
    return (view ?? 'latest') === 'latest' ? this.index.latest : this.index.scans;
  }

  private async page(index: string, query: EsQuery, request: PageRequest | undefined): Promise<Page<ScanDocument>> {
    const { limit, offset, after } = resolvePage(request);
    if (offset + limit + 1 > MAX_LISTING) {
      // Elasticsearch refuses from + size beyond index.max_result_window (10,000 by default).
      throw new PortbanditError('PB_ERR_PAGE', `offset ${offset} is too deep for Elasticsearch; page with the cursor instead`, {
        where: 'offset',
      });
    }
    const response = await this.client.search<ScanSource>({
      index,
      query: query as estypes.QueryDslQueryContainer,
      sort: [{ finishedAt: 'desc' }, { scanId: 'desc' }],
      size: limit + 1,
      track_total_hits: true,
      ...(after ? { search_after: [after.finishedAt, after.scanId] } : { from: offset }),
    });
    const hits = response.hits.hits;
    const items = hits.slice(0, limit).map((hit) => hit._source!.doc);
    const last = items.at(-1);
    const total = typeof response.hits.total === 'number' ? response.hits.total : (response.hits.total?.value ?? 0);
    return { items, total, nextCursor: hits.length > limit && last ? encodeScanCursor(last) : undefined };
  }

  async *exportHistory(options: { since?: number; until?: number; batchSize?: number } = {}): AsyncIterable<ScanDocument> {
    const batch = resolveLimit(options.batchSize, 500, 'batchSize');
    const range: Record<string, number> = {};
    if (options.since !== undefined) range.gte = options.since;
    if (options.until !== undefined) range.lt = options.until;
    let after: [number, string] | undefined;
    for (;;) {
      const hits = await this.run('exporting history', async () => {
        const response = await this.client.search<ScanSource>({
          index: this.index.scans,
          query: { bool: { filter: [{ range: { finishedAt: range } }] } },
          sort: [{ finishedAt: 'asc' }, { scanId: 'asc' }],
          size: batch,
          ...(after ? { search_after: after } : {}),
        });
        return response.hits.hits;
      });
      for (const hit of hits) yield hit._source!.doc;
      if (hits.length < batch) return;
      const last = hits.at(-1)!._source!;
      after = [last.finishedAt, last.scanId];
    }
  }

  // ------------------------------------------------------------------ events
  appendEvents(events: readonly NewStoreEvent[]): Promise<void> {
    return this.run('appending events', async () => {
      for (const event of events) JSON.stringify(event);
      if (events.length === 0) return;
      const first = await this.allocate('event-seq', events.length);
      const actions: BulkAction[] = events.map((event, i) => ({
        op: 'create',
        index: this.index.events,
        id: encodeId('event', `seq#${first + i}`),
        document: { seq: first + i, doc: { ...event, id: String(first + i) } },
      }));
      const outcomes = await this.bulk(actions);
      const failed = outcomes.findIndex((o) => !ok(o) && o.status !== 409);
      if (failed >= 0) throw bulkFailure(actions[failed]!, outcomes[failed]!);
    });
  }

  readEvents(options: { cursor?: string; limit?: number } = {}): Promise<EventPage> {
    return this.run('reading events', async () => {
      const after = options.cursor === undefined ? 0 : Number(options.cursor);
      if (!Number.isSafeInteger(after) || after < 0) {
        throw new PortbanditError('PB_ERR_CURSOR', `'${options.cursor}' is not an event cursor`, { where: 'cursor' });
      }
      const response = await this.client.search<{ seq: number; doc: StoreEvent }>({
        index: this.index.events,
        query: { range: { seq: { gt: after } } },
        sort: [{ seq: 'asc' }],
        size: resolveLimit(options.limit, 1000),
      });
      const hits = response.hits.hits;
      return { events: hits.map((hit) => hit._source!.doc), cursor: hits.length > 0 ? String(hits.at(-1)!._source!.seq) : options.cursor };
    });
  }

  readEventsBackward(options: { before?: string; limit?: number } = {}): Promise<EventPage> {
    return this.run('reading events backward', async () => {
      const before = options.before === undefined ? undefined : Number(options.before);
      if (before !== undefined && (!Number.isSafeInteger(before) || before < 0)) {
        throw new PortbanditError('PB_ERR_CURSOR', `'${options.before}' is not an event cursor`, { where: 'before' });
      }
      const response = await this.client.search<{ seq: number; doc: StoreEvent }>({
        index: this.index.events,
        query: before === undefined ? { match_all: {} } : { range: { seq: { lt: before } } },
        sort: [{ seq: 'desc' }],
        size: resolveLimit(options.limit, 1000),
      });
      const hits = response.hits.hits;
      return { events: hits.map((hit) => hit._source!.doc), cursor: hits.length > 0 ? String(hits.at(-1)!._source!.seq) : options.before };
    });
  }

  // ------------------------------------------------------------------ statistics
  counts(options: { tag?: string } = {}): Promise<StoreCounts> {
    return this.run('counting', async () => {
      const query = (
        options.tag === undefined ? { match_all: {} } : { term: { tag: options.tag.toLowerCase() } }
      ) as estypes.QueryDslQueryContainer;
      const latest = await this.client.search({
        index: this.index.latest,
        query,
        size: 0,
        track_total_hits: true,
        aggs: { open: { sum: { field: 'openPortCount' } } },
      });
      const scans = await this.client.count({ index: this.index.scans, query });
      const events = await this.client.count({ index: this.index.events });
      const total = latest.hits.total;
      return {
        hosts: typeof total === 'number' ? total : (total?.value ?? 0),
        scans: scans.count,
        events: events.count,
        openPorts: Math.round((latest.aggregations?.open as estypes.AggregationsSumAggregate | undefined)?.value ?? 0),
      };
    });
  }

  private async topTerms(
    field: 'port' | 'service',
    options: { tag?: string; limit?: number },
  ): Promise<{ key: string | number; hosts: number }[]> {
    const response = await this.client.search({
      index: this.index.latest,
      query: (options.tag === undefined
        ? { match_all: {} }
        : { term: { tag: options.tag.toLowerCase() } }) as estypes.QueryDslQueryContainer,
      size: 0,
      aggs: { top: { terms: { field, size: resolveLimit(options.limit, 20), order: [{ _count: 'desc' }, { _key: 'asc' }] } } },
    });
    const buckets = (response.aggregations?.top as estypes.AggregationsLongTermsAggregate | undefined)?.buckets;
    return (Array.isArray(buckets) ? buckets : []).map((bucket) => ({ key: bucket.key, hosts: bucket.doc_count }));
  }

  topPorts(options: { tag?: string; limit?: number } = {}): Promise<{ port: number; hosts: number }[]> {
    return this.run('computing top ports', async () =>
      (await this.topTerms('port', options)).map((b) => ({ port: Number(b.key), hosts: b.hosts })),
    );
  }

  topServices(options: { tag?: string; limit?: number } = {}): Promise<{ service: string; hosts: number }[]> {
    return this.run('computing top services', async () =>
      (await this.topTerms('service', options)).map((b) => ({ service: String(b.key), hosts: b.hosts })),
    );
  }

  scansPerHour(options: { since: number; until: number; tag?: string }): Promise<{ hourStart: number; scans: number }[]> {
    return this.run('computing scans per hour', async () => {
      const filter: EsQuery[] = [{ range: { finishedAt: { gte: options.since, lt: options.until } } }];
      if (options.tag !== undefined) filter.push({ term: { tag: options.tag.toLowerCase() } });
      const response = await this.client.search({
        index: this.index.scans,
        query: { bool: { filter } } as estypes.QueryDslQueryContainer,
        size: 0,
        aggs: { hours: { histogram: { field: 'finishedAt', interval: 3_600_000, min_doc_count: 1 } } },
      });
      const buckets = (response.aggregations?.hours as estypes.AggregationsHistogramAggregate | undefined)?.buckets;
      return (Array.isArray(buckets) ? buckets : []).map((bucket) => ({ hourStart: Number(bucket.key), scans: bucket.doc_count }));
    });
  }
}

interface BulkAction {
  op: 'create' | 'index';
  index: string;
  id: string;
  document: unknown;
  /** External version (`version_type: external_gte`): a write with a lower version gets a 409. */
  version?: number;
}

interface BulkOutcome {
  status: number;
  type?: string;
  reason?: string;
}

function ok(outcome: BulkOutcome): boolean {
  return outcome.status >= 200 && outcome.status < 300;
}

function bulkFailure(action: BulkAction, outcome: BulkOutcome): PortbanditError {
  return new PortbanditError(
    'PB_ERR_STORE',
    `Elasticsearch refused a bulk ${action.op} into ${action.index} (HTTP ${outcome.status} ${outcome.type ?? ''}): ${outcome.reason ?? 'no reason given'}`,
    {
      where: action.index,
    },
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface ScanSource {
  scanId: string;
  ip: string;
  finishedAt: number;
  port: number[];
  service: string[];
  product: string[];
  version: string[];
  cpe: string[];
  script: string[];
  tag: string[];
  agent: string[];
  group: string[];
  name: string[];
  words: string[];
  openPortCount: number;
  screenshot?: 'true';
  doc: ScanDocument;
}

function scanSource(scan: ScanDocument): ScanSource {
  const fields = indexScan(scan);
  return {
    scanId: scan.scanId,
    ip: scan.ip,
    finishedAt: scan.finishedAt,
    port: fields.ports,
    ...fields.terms,
    words: fields.words,
    openPortCount: fields.ports.length,
    ...(fields.screenshot ? { screenshot: 'true' } : {}),
    doc: stripUndefined(scan) as ScanDocument,
  };
}

/** JSON round trip: what is stored is exactly what a later read returns. */
function stripUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
