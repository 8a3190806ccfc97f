import { randomInt } from 'node:crypto';
import { Client, errors } from '@elastic/elasticsearch';
import type { estypes } from '@elastic/elasticsearch';
import { PortbanditError, isPortbanditError } from '../core/errors.js';
import { compileEsQuery } from './elasticsearch-query.js';
import type { EsQuery } from './elasticsearch-query.js';
import { canonicalIp } from './ip-key.js';
import { encodeScanCursor, resolveLimit, resolvePage } from './page.js';
import type { QueryNode } from './query-ast.js';
import { requeueItem } from './requeue.js';
import { indexScan, validateScan } from './scan-index.js';
import type {
  AdminToken,
  Agent,
  AgentActivity,
  DocumentCollection,
  EventPage,
  IngestInput,
  IngestResult,
  Lease,
  LearningRecord,
  NewAgent,
  NewStoreEvent,
  Page,
  PageRequest,
  QueuedWork,
  QueuedWorkInput,
  ScanDocument,
  ScanIndex,
  ScanIngest,
  ScopeEntry,
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

export interface ElasticsearchStoreOptions {
  /** Cluster URL (`http://127.0.0.1:9200`), or pass `client`. */
  readonly node?: string;
  /** A configured client (auth, TLS, or the test mock's connection). */
  readonly client?: Client;
  /** Index name prefix: indices are `${prefix}-scans`, `-latest`, `-events`, `-kv`. Default `portbandit`. */
  readonly prefix?: string;
  /**
   * Refresh policy for coordination writes (the `-kv` index: scope, agents, tokens, leases,
   * queue), which are read back through search. `true` (default) makes each such write visible
   * to the next search; `wait_for` is cheaper under load. Scan, latest and event writes never
   * force a refresh: the coordinator reads those back only by id (real-time in Elasticsearch);
   * searches see them after the index's refresh interval (1 s by default), or after `refresh()`.
   */
  readonly refresh?: true | 'wait_for';
  /**
   * Backoff for `_bulk` items (or requests) Elasticsearch rejects with 429 under load: up to
   * `retries` re-sends (default 6), waiting about `baseDelayMs` (default 100) doubled each time,
   * at most `maxDelayMs` (default 5,000), with jitter.
   */
  readonly bulkRetry?: { readonly retries?: number; readonly baseDelayMs?: number; readonly maxDelayMs?: number };
}

/** Bounded retries for optimistic-concurrency loops (read, compare, write if unchanged). */
const MAX_RETRIES = 20;
/** Queue items `dequeueWorkFor` looks at per call. */
const QUEUE_SCAN_WINDOW = 1000;

/** Largest listing fetched in one search (scope entries, agents, leases). */
const MAX_LISTING = 10_000;

/** Kv documents per search page (listings continue with search_after). */
const KV_PAGE = 1000;

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

/** Everything small: scope entries, documents, agents, tokens, leases, queue, counters. */
const KV_MAPPINGS = {
  dynamic: 'strict',
  properties: {
    kind: keyword,
    key: keyword,
    list: keyword,
    agentId: keyword,
    ip: keyword,
    deadline: long,
    seq: long,
    body: opaque,
  },
} as const;

interface KvSource {
  kind: string;
  key: string;
  list?: string;
  agentId?: string;
  ip?: string;
  deadline?: number;
  seq?: number;
  body: unknown;
}

interface Versioned<T> {
  source: T;
  seqNo: number;
  primaryTerm: number;
}

/** The Elasticsearch store, plus what only it needs. */
export interface ElasticsearchStoreHandle extends Store {
  /**
   * Make every scan, latest and event write so far visible to search (`POST _refresh`). Ingest
   * does not force a refresh per write; a test (or tool) that searches right after writing calls this.
   */
  refresh(): Promise<void>;
}

/** Open an Elasticsearch store, creating its indices (with mappings) when missing. */
export async function openElasticsearchStore(options: ElasticsearchStoreOptions): Promise<ElasticsearchStoreHandle> {
  const client = options.client ?? (options.node ? new Client({ node: options.node }) : undefined);
  if (!client) throw new PortbanditError('PB_ERR_CONFIG', 'the Elasticsearch store needs a node URL or a client', { where: 'store.elasticsearch.node' });
  const prefix = options.prefix ?? 'portbandit';
  if (!/^[a-z0-9][a-z0-9_-]*$/u.test(prefix)) {
    throw new PortbanditError('PB_ERR_CONFIG', `'${prefix}' is not a usable index prefix; expected lower-case letters, digits, - and _`, {
      where: 'store.elasticsearch.prefix',
    });
  }
  const bulkRetry = { retries: 6, baseDelayMs: 100, maxDelayMs: 5000, ...options.bulkRetry };
  for (const [key, value] of Object.entries(bulkRetry)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new PortbanditError('PB_ERR_CONFIG', `bulkRetry.${key} must be a non-negative integer, got ${JSON.stringify(value)}`, { where: `store.elasticsearch.bulkRetry.${key}` });
    }
  }
  const store = new ElasticsearchStore(client, prefix, options.refresh ?? true, options.client === undefined, bulkRetry);
  await store.ensureIndices();
  return store;
}

/**
 * The scan index half alone (history, latest, events, search, statistics) on Elasticsearch, to
 * sit beside a SQLite or PostgreSQL coordination store. It still keeps one counter document (the
 * event sequence) in `<prefix>-kv`. Not yet fed from an outbox of the coordination store, and
 * `openStore` does not offer the pairing yet (docs/store.md, "Elasticsearch layout").
 */
export interface ElasticsearchScanIndex extends ScanIndex {
  readonly kind: 'elasticsearch';
  refresh(): Promise<void>;
}

export async function openElasticsearchScanIndex(options: ElasticsearchStoreOptions): Promise<ElasticsearchScanIndex> {
  const store = (await openElasticsearchStore(options)) as ElasticsearchStore;
  return {
    kind: 'elasticsearch',
    close: () => store.close(),
    refresh: () => store.refresh(),
    ingestScan: (input) => store.ingestIndexOnly(input),
    getScan: (scanId) => store.getScan(scanId),
    getLatestScan: (ip) => store.getLatestScan(ip),
    hostHistory: (ip, page) => store.hostHistory(ip, page),
    search: (query, options) => store.search(query, options),
    count: (query, options) => store.count(query, options),
    exportHistory: (options) => store.exportHistory(options),
    deleteHistory: (scanIds) => store.deleteHistory(scanIds),
    appendEvents: (events) => store.appendEvents(events),
    readEvents: (options) => store.readEvents(options),
    readEventsBackward: (options) => store.readEventsBackward(options),
    counts: (options) => store.counts(options),
    topPorts: (options) => store.topPorts(options),
    topServices: (options) => store.topServices(options),
    scansPerHour: (options) => store.scansPerHour(options),
  };
}

/** Ids are base64url so any key (slashes, colons, empty) is a safe URL path segment. */
function encodeId(kind: string, key: string): string {
  return `${kind}.${Buffer.from(key).toString('base64url')}`;
}

function statusOf(error: unknown): number | undefined {
  return error instanceof errors.ResponseError ? error.statusCode : undefined;
}

class ElasticsearchStore implements Store {
  readonly kind = 'elasticsearch' as const;
  private readonly index: { scans: string; latest: string; events: string; kv: string };

  constructor(
    private readonly client: Client,
    prefix: string,
    private readonly refreshPolicy: true | 'wait_for',
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
      throw new PortbanditError('PB_ERR_STORE', `Elasticsearch store failed while ${what}${status ? ` (HTTP ${status})` : ''}: ${(error as Error)?.message}`, {
        cause: error,
      });
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
    await this.run('refreshing indices', () => this.client.indices.refresh({ index: [this.index.scans, this.index.latest, this.index.events] }));
  }

  /**
   * Only coordination documents (the kv index) are refreshed on write: the coordinator searches
   * them (scope, leases, queue). Scans, latest and events are read back by id (real-time get),
   * so forcing a refresh per write there only cost segments (6-8 refreshes per result before).
   */
  private refreshFor(index: string): true | 'wait_for' | undefined {
    return index === this.index.kv ? this.refreshPolicy : undefined;
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

  /** Write `document` if the stored version is still `expected` (undefined = must not exist). False on conflict. */
  private async writeIf(index: string, id: string, document: unknown, expected: Versioned<unknown> | undefined): Promise<boolean> {
    try {
      if (expected) {
        await this.client.index({ index, id, document, if_seq_no: expected.seqNo, if_primary_term: expected.primaryTerm, refresh: this.refreshFor(index) });
      } else {
        await this.client.create({ index, id, document, refresh: this.refreshFor(index) });
      }
      return true;
    } catch (error) {
      if (statusOf(error) === 409) return false;
      throw error;
    }
  }

  /** Delete if present (and unchanged since `expected`, when given). True when this call deleted it. */
  private async deleteIf(index: string, id: string, expected?: Versioned<unknown>): Promise<boolean> {
    try {
      await this.client.delete({
        index,
        id,
        refresh: this.refreshFor(index),
        ...(expected ? { if_seq_no: expected.seqNo, if_primary_term: expected.primaryTerm } : {}),
      });
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status === 404 || status === 409) return false;
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
    throw new PortbanditError('PB_ERR_CONFLICT', `gave up updating ${index}/${id} after ${MAX_RETRIES} concurrent modifications`, { where: id });
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

  private async readCounter(counter: string): Promise<number> {
    const current = await this.getVersioned<KvSource>(this.index.kv, encodeId('counter', counter));
    return (current?.source.body as { value: number } | undefined)?.value ?? 0;
  }

  /**
   * Up to `size` kv documents (all by default), in pages that continue with `search_after`: one
   * search stops at index.max_result_window (10,000), and a blocklist listing that stopped there
   * treated the addresses after it as in scope. Every sort here ends on a unique field (key, seq).
   */
  private async searchKv(filter: EsQuery[], sort: estypes.Sort, size = Infinity): Promise<{ id: string; source: KvSource; seqNo: number; primaryTerm: number }[]> {
    const out: { id: string; source: KvSource; seqNo: number; primaryTerm: number }[] = [];
    let after: estypes.SortResults | undefined;
    while (out.length < size) {
      const want = Math.min(KV_PAGE, size - out.length);
      const response = await this.client.search<KvSource>({
        index: this.index.kv,
        query: { bool: { filter } } as estypes.QueryDslQueryContainer,
        sort,
        size: want,
        seq_no_primary_term: true,
        ...(after ? { search_after: after } : {}),
      });
      const hits = response.hits.hits;
      for (const hit of hits) out.push({ id: hit._id!, source: hit._source!, seqNo: hit._seq_no!, primaryTerm: hit._primary_term! });
      if (hits.length < want) break;
      after = hits.at(-1)!.sort;
    }
    return out;
  }

  private async countKv(filter: EsQuery[]): Promise<number> {
    const response = await this.client.count({ index: this.index.kv, query: { bool: { filter } } as estypes.QueryDslQueryContainer });
    return response.count;
  }

  // ------------------------------------------------------------------ scope
  listScope(list: ScopeListName): Promise<ScopeListing> {
    return this.run('listing the scope', async () => {
      const hits = await this.searchKv([{ term: { kind: 'scope' } }, { term: { list } }], [{ key: 'asc' }]);
      const entries = hits.map((hit) => hit.source.body as ScopeEntry);
      return { version: await this.readCounter('scope-version'), entries };
    });
  }

  addScopeEntries(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number> {
    return this.run('adding scope entries', async () => {
      let changed = false;
      try {
        for (const entry of entries) {
          const id = encodeId(`scope-${list}`, entry.range);
          const written = await this.modify<KvSource>(this.index.kv, id, (current) => {
            const previous = current?.body as ScopeEntry | undefined;
            if (previous && JSON.stringify(previous.tags) === JSON.stringify(entry.tags)) return undefined;
            const body: ScopeEntry = { range: entry.range, tags: [...entry.tags], addedAt: previous?.addedAt ?? at };
            return { kind: 'scope', key: entry.range, list, body };
          });
          changed ||= written !== undefined;
        }
      } finally {
        // Bump even when a later entry failed: readers must notice the entries that did change.
        if (changed) await this.allocate('scope-version', 1);
      }
      return this.readCounter('scope-version');
    });
  }

  removeScopeEntries(list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }> {
    return this.run('removing scope entries', async () => {
      let removed = 0;
      for (const range of ranges) if (await this.deleteIf(this.index.kv, encodeId(`scope-${list}`, range))) removed++;
      return { removed, version: removed > 0 ? await this.allocate('scope-version', 1) : await this.readCounter('scope-version') };
    });
  }

  replaceScope(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number> {
    return this.run('replacing the scope', async () => {
      // Not atomic in Elasticsearch: write the new entries first, then drop the others, so a
      // failure midway leaves a superset of the new list rather than a hole (docs/store.md).
      const keep = new Set(entries.map((entry) => entry.range));
      for (const entry of entries) {
        const body: ScopeEntry = { range: entry.range, tags: [...entry.tags], addedAt: at };
        await this.client.index({ index: this.index.kv, id: encodeId(`scope-${list}`, entry.range), document: { kind: 'scope', key: entry.range, list, body }, refresh: this.refreshPolicy });
      }
      const existing = await this.searchKv([{ term: { kind: 'scope' } }, { term: { list } }], [{ key: 'asc' }]);
      for (const hit of existing) if (!keep.has(hit.source.key)) await this.deleteIf(this.index.kv, hit.id);
      return this.allocate('scope-version', 1);
    });
  }

  getScopeVersion(): Promise<number> {
    return this.run('reading the scope version', () => this.readCounter('scope-version'));
  }

  // ------------------------------------------------------------------ documents
  getDocument<T = unknown>(collection: DocumentCollection, key: string): Promise<StoredDocument<T> | undefined> {
    return this.run('reading a document', async () => {
      const current = await this.getVersioned<KvSource>(this.index.kv, encodeId(`doc-${collection}`, key));
      return current?.source.body as StoredDocument<T> | undefined;
    });
  }

  putDocument<T = unknown>(
    collection: DocumentCollection,
    key: string,
    value: T,
    options: { at: number; expectedRevision?: number; enqueue?: readonly QueuedWorkInput[] },
  ): Promise<StoredDocument<T>> {
    // Not one transaction here (there is none on a search engine): the work follows the
    // document. Only a shared cycle uses `enqueue`, and that needs the PostgreSQL store.
    if (options.enqueue && options.enqueue.length > 0) {
      const items = options.enqueue;
      return this.putDocument(collection, key, value, { at: options.at, ...(options.expectedRevision !== undefined ? { expectedRevision: options.expectedRevision } : {}) }).then(async (doc) => {
        await this.enqueueWork(items);
        return doc;
      });
    }
    return this.run('writing a document', async () => {
      const json = JSON.stringify(value);
      if (json === undefined) throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', 'the document value is not JSON', { where: `${collection}/${key}` });
      const stored = await this.modify<KvSource>(this.index.kv, encodeId(`doc-${collection}`, key), (current) => {
        const revision = (current?.body as StoredDocument | undefined)?.revision ?? 0;
        if (options.expectedRevision !== undefined && options.expectedRevision !== revision) {
          throw new PortbanditError(
            'PB_ERR_CONFLICT',
            `${collection}/${key} is at revision ${revision}, not the expected ${options.expectedRevision}; reload and retry`,
            { where: `${collection}/${key}` },
          );
        }
        const body: StoredDocument = { key, value: JSON.parse(json) as unknown, revision: revision + 1, updatedAt: options.at };
        return { kind: `doc-${collection}`, key, body };
      });
      return stored!.body as StoredDocument<T>;
    });
  }

  listDocuments<T = unknown>(collection: DocumentCollection): Promise<StoredDocument<T>[]> {
    return this.run('listing documents', async () =>
      (await this.searchKv([{ term: { kind: `doc-${collection}` } }], [{ key: 'asc' }])).map((hit) => hit.source.body as StoredDocument<T>),
    );
  }

  deleteDocument(collection: DocumentCollection, key: string): Promise<boolean> {
    return this.run('deleting a document', () => this.deleteIf(this.index.kv, encodeId(`doc-${collection}`, key)));
  }

  // ------------------------------------------------------------------ agents and tokens
  /** Claim a unique token hash with a marker document (create fails if it exists). */
  private async claimHash(kind: string, hash: string, ownerId: string): Promise<boolean> {
    return this.writeIf(this.index.kv, encodeId(kind, hash), { kind, key: hash, body: { id: ownerId } }, undefined);
  }

  createAgent(agent: NewAgent): Promise<Agent> {
    return this.run('creating an agent', async () => {
      const conflict = new PortbanditError('PB_ERR_CONFLICT', `an agent with id '${agent.id}' or the same token already exists`, { where: 'agent.id' });
      if (!(await this.claimHash('agent-hash', agent.tokenHash, agent.id))) throw conflict;
      const stored: Agent = {
        id: agent.id,
        name: agent.name,
        tokenHash: agent.tokenHash,
        createdAt: agent.createdAt,
        version: agent.version,
        lastSeenAt: undefined,
        counters: {},
      };
      if (!(await this.writeIf(this.index.kv, encodeId('agent', agent.id), { kind: 'agent', key: agent.id, body: stripUndefined(stored) }, undefined))) {
        await this.deleteIf(this.index.kv, encodeId('agent-hash', agent.tokenHash));
        throw conflict;
      }
      return stored;
    });
  }

  private async readAgent(id: string): Promise<Agent | undefined> {
    const current = await this.getVersioned<KvSource>(this.index.kv, encodeId('agent', id));
    return current ? toAgent(current.source.body) : undefined;
  }

  getAgent(id: string): Promise<Agent | undefined> {
    return this.run('reading an agent', () => this.readAgent(id));
  }

  findAgentByTokenHash(tokenHash: string): Promise<Agent | undefined> {
    return this.run('finding an agent', async () => {
      const marker = await this.getVersioned<KvSource>(this.index.kv, encodeId('agent-hash', tokenHash));
      if (!marker) return undefined;
      const agent = await this.readAgent((marker.source.body as { id: string }).id);
      return agent?.tokenHash === tokenHash ? agent : undefined;
    });
  }

  listAgents(): Promise<Agent[]> {
    return this.run('listing agents', async () => (await this.searchKv([{ term: { kind: 'agent' } }], [{ key: 'asc' }])).map((hit) => toAgent(hit.source.body)));
  }

  recordAgentActivity(id: string, activity: AgentActivity): Promise<Agent> {
    return this.run('recording agent activity', async () => {
      const next = await this.modify<KvSource>(this.index.kv, encodeId('agent', id), (current) => {
        if (!current) throw new PortbanditError('PB_ERR_NOT_FOUND', `no agent with id '${id}'`, { where: 'agent.id' });
        const agent = toAgent(current.body);
        const counters: Record<string, number> = { ...agent.counters };
        for (const [name, delta] of Object.entries(activity.increments ?? {})) counters[name] = (counters[name] ?? 0) + delta;
        const updated: Agent = {
          ...agent,
          lastSeenAt: Math.max(agent.lastSeenAt ?? activity.at, activity.at),
          version: activity.version ?? agent.version,
          counters,
        };
        return { kind: 'agent', key: id, body: stripUndefined(updated) };
      });
      return toAgent(next!.body);
    });
  }

  deleteAgent(id: string): Promise<boolean> {
    return this.run('deleting an agent', async () => {
      const agent = await this.readAgent(id);
      if (!agent) return false;
      const deleted = await this.deleteIf(this.index.kv, encodeId('agent', id));
      await this.deleteIf(this.index.kv, encodeId('agent-hash', agent.tokenHash));
      return deleted;
    });
  }

  createAdminToken(token: AdminToken): Promise<AdminToken> {
    return this.run('creating an admin token', async () => {
      const conflict = new PortbanditError('PB_ERR_CONFLICT', `an admin token with id '${token.id}' or the same hash already exists`, { where: 'token.id' });
      if (!(await this.claimHash('admin-hash', token.tokenHash, token.id))) throw conflict;
      const stored: AdminToken = { id: token.id, name: token.name, tokenHash: token.tokenHash, createdAt: token.createdAt };
      if (!(await this.writeIf(this.index.kv, encodeId('admin', token.id), { kind: 'admin', key: token.id, body: stored }, undefined))) {
        await this.deleteIf(this.index.kv, encodeId('admin-hash', token.tokenHash));
        throw conflict;
      }
      return stored;
    });
  }

  findAdminTokenByHash(tokenHash: string): Promise<AdminToken | undefined> {
    return this.run('finding an admin token', async () => {
      const marker = await this.getVersioned<KvSource>(this.index.kv, encodeId('admin-hash', tokenHash));
      if (!marker) return undefined;
      const token = await this.getVersioned<KvSource>(this.index.kv, encodeId('admin', (marker.source.body as { id: string }).id));
      const stored = token?.source.body as AdminToken | undefined;
      return stored?.tokenHash === tokenHash ? stored : undefined;
    });
  }

  listAdminTokens(): Promise<AdminToken[]> {
    return this.run('listing admin tokens', async () => (await this.searchKv([{ term: { kind: 'admin' } }], [{ key: 'asc' }])).map((hit) => hit.source.body as AdminToken));
  }

  deleteAdminToken(id: string): Promise<boolean> {
    return this.run('deleting an admin token', async () => {
      const token = await this.getVersioned<KvSource>(this.index.kv, encodeId('admin', id));
      if (!token) return false;
      const deleted = await this.deleteIf(this.index.kv, encodeId('admin', id));
      await this.deleteIf(this.index.kv, encodeId('admin-hash', (token.source.body as AdminToken).tokenHash));
      return deleted;
    });
  }

  /** Check, then create: one coordinator process per Elasticsearch store (docs/store.md). */
  async createFirstAdminToken(token: AdminToken): Promise<boolean> {
    if ((await this.listAdminTokens()).length > 0) return false;
    await this.createAdminToken(token);
    return true;
  }

  /** One coordinator process per Elasticsearch store: it holds every role. */
  holdRole(_role: string): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** Nothing is queued for a learner here (one process learns what it ingests). */
  readLearning(after: string | undefined): Promise<{ items: LearningRecord[]; cursor: string }> {
    return Promise.resolve({ items: [], cursor: after ?? '0' });
  }

  pruneLearning(_before: string): Promise<number> {
    return Promise.resolve(0);
  }

  // ------------------------------------------------------------------ leases and queue
  private leaseSource(lease: Lease): KvSource {
    return { kind: 'lease', key: lease.id, agentId: lease.agentId, ip: lease.ip, deadline: lease.deadline, body: stripUndefined(lease) };
  }

  putLease(lease: Lease): Promise<void> {
    return this.run('storing a lease', async () => {
      const stored = { ...lease, ip: canonicalIp(lease.ip, 'lease.ip') };
      if (!(await this.writeIf(this.index.kv, encodeId('lease', lease.id), this.leaseSource(stored), undefined))) {
        throw new PortbanditError('PB_ERR_CONFLICT', `a lease with id '${lease.id}' already exists`, { where: 'lease.id' });
      }
    });
  }

  getLease(id: string): Promise<Lease | undefined> {
    return this.run('reading a lease', async () => (await this.getVersioned<KvSource>(this.index.kv, encodeId('lease', id)))?.source.body as Lease | undefined);
  }

  listLeases(filter: { agentId?: string; ip?: string } = {}): Promise<Lease[]> {
    return this.run('listing leases', async () => {
      const clauses: EsQuery[] = [{ term: { kind: 'lease' } }];
      if (filter.agentId !== undefined) clauses.push({ term: { agentId: filter.agentId } });
      if (filter.ip !== undefined) clauses.push({ term: { ip: canonicalIp(filter.ip) } });
      return (await this.searchKv(clauses, [{ deadline: 'asc' }, { key: 'asc' }])).map((hit) => hit.source.body as Lease);
    });
  }

  countLeases(filter: { agentId?: string } = {}): Promise<number> {
    return this.run('counting leases', () =>
      this.countKv(filter.agentId === undefined ? [{ term: { kind: 'lease' } }] : [{ term: { kind: 'lease' } }, { term: { agentId: filter.agentId } }]),
    );
  }

  renewLease(id: string, deadline: number): Promise<boolean> {
    return this.run('renewing a lease', async () => {
      const next = await this.modify<KvSource>(this.index.kv, encodeId('lease', id), (current) =>
        current ? this.leaseSource({ ...(current.body as Lease), deadline }) : undefined,
      );
      return next !== undefined;
    });
  }

  /** Delete a lease if this caller is the one that removes it; returns it then. */
  private async takeLease(id: string): Promise<Lease | undefined> {
    const current = await this.getVersioned<KvSource>(this.index.kv, encodeId('lease', id));
    if (!current) return undefined;
    return (await this.deleteIf(this.index.kv, encodeId('lease', id), current)) ? (current.source.body as Lease) : undefined;
  }

  completeLease(id: string): Promise<Lease | undefined> {
    return this.run('completing a lease', () => this.takeLease(id));
  }

  takeExpiredLeases(now: number, limit: number, options: { requeue?: boolean } = {}): Promise<Lease[]> {
    return this.run('taking expired leases', async () => {
      const hits = await this.searchKv([{ term: { kind: 'lease' } }, { range: { deadline: { lte: now } } }], [{ deadline: 'asc' }, { key: 'asc' }], resolveLimit(limit, limit));
      const taken: Lease[] = [];
      for (const hit of hits) {
        const lease = hit.source.body as Lease;
        // Enqueue before deleting: a crash in between duplicates the work instead of losing it.
        const queued = options.requeue ? (await this.enqueue([requeueItem(lease, now)]))[0] : undefined;
        if (await this.deleteIf(this.index.kv, hit.id, hit)) {
          taken.push(lease);
        } else if (queued) {
          await this.deleteIf(this.index.kv, encodeId('queue', queued.id));
        }
      }
      return taken;
    });
  }

  private async enqueue(items: readonly QueuedWorkInput[]): Promise<QueuedWork[]> {
    if (items.length === 0) return [];
    const first = await this.allocate('queue-seq', items.length);
    const out: QueuedWork[] = [];
    for (const [i, item] of items.entries()) {
      const seq = first + i;
      const stored: QueuedWork = { ...(stripUndefined(item) as QueuedWorkInput), ip: canonicalIp(item.ip, 'work.ip'), id: String(seq) };
      await this.client.create({ index: this.index.kv, id: encodeId('queue', stored.id), document: { kind: 'queue', key: stored.id, seq, body: stored }, refresh: this.refreshPolicy });
      out.push(stored);
    }
    return out;
  }

  enqueueWork(items: readonly QueuedWorkInput[]): Promise<QueuedWork[]> {
    return this.run('enqueueing work', () => this.enqueue(items));
  }

  dequeueWork(limit: number): Promise<QueuedWork[]> {
    return this.run('dequeueing work', async () => {
      const hits = await this.searchKv([{ term: { kind: 'queue' } }], [{ seq: 'asc' }], resolveLimit(limit, limit));
      const taken: QueuedWork[] = [];
      // Deleting with the read version claims the item: a concurrent dequeue gets a conflict.
      for (const hit of hits) if (await this.deleteIf(this.index.kv, hit.id, hit)) taken.push(hit.source.body as QueuedWork);
      return taken;
    });
  }

  listQueuedWork(limit?: number): Promise<QueuedWork[]> {
    return this.run('listing queued work', async () =>
      (await this.searchKv([{ term: { kind: 'queue' } }], [{ seq: 'asc' }], resolveLimit(limit, MAX_LISTING))).map((hit) => hit.source.body as QueuedWork),
    );
  }

  countQueuedWork(): Promise<number> {
    return this.run('counting queued work', () => this.countKv([{ term: { kind: 'queue' } }]));
  }

  removeQueuedWork(id: string): Promise<boolean> {
    return this.run('removing queued work', () => this.deleteIf(this.index.kv, encodeId('queue', id)));
  }

  // ------------------------------------------------------------------ work routed by agent group
  /**
   * `dequeueWork` for an agent of `groups`. The queue body is not indexed, so the head of the
   * queue (up to 1,000 items) is read and filtered here; items reserved to other groups further
   * back wait for a later call.
   */
  dequeueWorkFor(limit: number, groups: readonly string[]): Promise<QueuedWork[]> {
    return this.run('dequeueing work for a group', async () => {
      const want = resolveLimit(limit, limit);
      const hits = await this.searchKv([{ term: { kind: 'queue' } }], [{ seq: 'asc' }], QUEUE_SCAN_WINDOW);
      const taken: QueuedWork[] = [];
      for (const hit of hits) {
        if (taken.length >= want) break;
        const item = hit.source.body as QueuedWork;
        if (item.groups !== undefined && !item.groups.some((g) => groups.includes(g))) continue;
        if (await this.deleteIf(this.index.kv, hit.id, hit)) taken.push(item);
      }
      return taken;
    });
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
  ingestScan(input: IngestInput): Promise<IngestResult> {
    return this.run('ingesting a scan', async () => {
      const scan = validateScan(input.scan);
      const scanDocId = encodeId('scan', scan.scanId);
      // Real-time gets (no refresh needed), in parallel: is the visit stored, and which is the host's latest.
      const [existing, current] = await Promise.all([
        this.getVersioned(this.index.scans, scanDocId),
        this.getVersioned<ScanSource>(this.index.latest, encodeId('ip', scan.ip)),
      ]);
      if (existing && (!input.replace || input.leaseId === undefined)) return { inserted: false, latest: false };
      for (const event of input.events ?? []) JSON.stringify(event); // fail before writing anything
      for (const item of input.enqueue ?? []) canonicalIp(item.ip, 'enqueue.ip');
      const source = scanSource(scan);
      // The external version (finishedAt) orders visits; a tie on finishedAt goes to the larger
      // scanId, which a version cannot express: a visit that loses the tie skips the latest write.
      const lostTie = current !== undefined && current.source.scanId !== scan.scanId && current.source.finishedAt === scan.finishedAt && current.source.scanId > scan.scanId;
      if (existing) return this.replaceVisit(scan, source, scanDocId, input, !lostTie);
      return this.ingestBulk(scan, source, scanDocId, input, !lostTie);
    });
  }

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
  private async ingestBulk(scan: ScanDocument, source: ScanSource, scanDocId: string, input: IngestInput | ScanIngest, writeLatest: boolean): Promise<IngestResult> {
    const events = input.events ?? [];
    const first = events.length > 0 ? await this.allocate('event-seq', events.length) : 0;
    const actions: BulkAction[] = events.map((event, i) => ({
      op: 'create',
      index: this.index.events,
      id: encodeId('event', `${scan.scanId}#${i}`),
      document: { seq: first + i, doc: { ...event, id: String(first + i) } },
    }));
    if (writeLatest) actions.push({ op: 'index', index: this.index.latest, id: encodeId('ip', scan.ip), document: source, version: scan.finishedAt });
    actions.push({ op: 'create', index: this.index.scans, id: scanDocId, document: source });
    const outcomes = await this.bulk(actions);
    const history = outcomes.at(-1)!;
    const latest = writeLatest ? outcomes.at(-2)! : { status: 409 };
    if (history.status === 409) return { inserted: false, latest: false };
    const failed = outcomes.findIndex((o, i) => !ok(o) && !(o.status === 409 && (actions[i]!.index === this.index.events || actions[i]!.index === this.index.latest)));
    if (failed >= 0) {
      if (ok(history)) await this.deleteIf(this.index.scans, scanDocId);
      throw bulkFailure(actions[failed]!, outcomes[failed]!);
    }
    // The lease is completed only after the commit point: a failed write leaves it in place, so
    // the agent's retry is accepted. A crash right here leaves the lease to expire and the host
    // to be scanned again: duplicated, not lost.
    const { leaseId, enqueue } = input as IngestInput;
    const lease = leaseId === undefined ? undefined : await this.takeLease(leaseId);
    // After the commit point, so a retried ingest (a duplicate then) never queues twice.
    const queued = enqueue && enqueue.length > 0 ? await this.enqueue(enqueue) : undefined;
    return { inserted: true, latest: ok(latest), ...(lease ? { lease } : {}), ...(queued ? { queued } : {}) };
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
            const meta = { _index: a.index, _id: a.id, ...(a.version !== undefined ? { version: a.version, version_type: 'external_gte' as const } : {}) };
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
        throw new PortbanditError('PB_ERR_STORE', `Elasticsearch kept rejecting ${retry.length} bulk item(s) with 429 after ${attempt + 1} attempts; the cluster is overloaded`, {
          where: actions[retry[0]!]!.index,
        });
      }
      const delay = Math.min(this.bulkRetry.maxDelayMs, this.bulkRetry.baseDelayMs * 2 ** attempt);
      // Jitter so coordinators rejected together do not come back together (not simulation state: no seeded Rng).
      await sleep(delay / 2 + randomInt(Math.floor(delay / 2) + 1));
      pending = retry;
    }
  }

  /**
   * A later round of a stored visit: taking its lease (a conditional delete) is the commit point,
   * so the round is applied once; the visit's document is then overwritten in history and latest
   * (external version = finishedAt, as in `ingestBulk`) and its events are written, in one `_bulk`.
   */
  private async replaceVisit(scan: ScanDocument, source: ScanSource, scanDocId: string, input: IngestInput, writeLatest: boolean): Promise<IngestResult> {
    const lease = await this.takeLease(input.leaseId!);
    if (!lease) return { inserted: false, latest: false };
    const latest = await this.replaceBulk(scan, source, scanDocId, input.events ?? [], lease.id, writeLatest);
    const queued = input.enqueue && input.enqueue.length > 0 ? await this.enqueue(input.enqueue) : undefined;
    return { inserted: true, latest, lease, ...(queued ? { queued } : {}) };
  }

  /** The writes of a replaced visit in one `_bulk`: history (`index`), latest (external version), events (ids keyed by `round`). True when latest was written. */
  private async replaceBulk(scan: ScanDocument, source: ScanSource, scanDocId: string, events: readonly NewStoreEvent[], round: string, writeLatest: boolean): Promise<boolean> {
    const first = events.length > 0 ? await this.allocate('event-seq', events.length) : 0;
    const actions: BulkAction[] = events.map((event, i) => ({
      op: 'create',
      index: this.index.events,
      id: encodeId('event', `${scan.scanId}#${round}#${i}`),
      document: { seq: first + i, doc: { ...event, id: String(first + i) } },
    }));
    actions.push({ op: 'index', index: this.index.scans, id: scanDocId, document: source });
    if (writeLatest) actions.push({ op: 'index', index: this.index.latest, id: encodeId('ip', scan.ip), document: source, version: scan.finishedAt });
    const outcomes = await this.bulk(actions);
    const failed = outcomes.findIndex((o, i) => !ok(o) && !(o.status === 409 && actions[i]!.index !== this.index.scans));
    if (failed >= 0) throw bulkFailure(actions[failed]!, outcomes[failed]!);
    return writeLatest && ok(outcomes.at(-1)!);
  }

  /**
   * `ScanIndex.ingestScan` (no lease, no queue): for `ElasticsearchScanIndex`. A known scanId is
   * replaced when `replace` is set and the new document has more rounds than the stored one (as
   * the PostgreSQL scan index does without a lease); otherwise it is a duplicate.
   */
  ingestIndexOnly(input: ScanIngest): Promise<IngestResult> {
    return this.run('ingesting a scan', async () => {
      const scan = validateScan(input.scan);
      const scanDocId = encodeId('scan', scan.scanId);
      const [existing, current] = await Promise.all([
        this.getVersioned<ScanSource>(this.index.scans, scanDocId),
        this.getVersioned<ScanSource>(this.index.latest, encodeId('ip', scan.ip)),
      ]);
      for (const event of input.events ?? []) JSON.stringify(event);
      const source = scanSource(scan);
      const lostTie = current !== undefined && current.source.scanId !== scan.scanId && current.source.finishedAt === scan.finishedAt && current.source.scanId > scan.scanId;
      if (!existing) return this.ingestBulk(scan, source, scanDocId, input, !lostTie);
      const rounds = scan.rounds?.length ?? 1;
      if (!input.replace || rounds <= (existing.source.doc.rounds?.length ?? 1)) return { inserted: false, latest: false };
      const latest = await this.replaceBulk(scan, source, scanDocId, input.events ?? [], `r${rounds}`, !lostTie);
      return { inserted: true, latest };
    });
  }

  getScan(scanId: string): Promise<ScanDocument | undefined> {
    return this.run('reading a scan', async () => (await this.getVersioned<ScanSource>(this.index.scans, encodeId('scan', scanId)))?.source.doc);
  }

  getLatestScan(ip: string): Promise<ScanDocument | undefined> {
    return this.run('reading the latest scan', async () => (await this.getVersioned<ScanSource>(this.index.latest, encodeId('ip', canonicalIp(ip))))?.source.doc);
  }

  hostHistory(ip: string, page?: PageRequest): Promise<Page<ScanDocument>> {
    return this.run('reading host history', () => this.page(this.index.scans, { term: { ip: canonicalIp(ip) } }, page));
  }

  search(query: QueryNode | undefined, options: SearchOptions = {}): Promise<Page<ScanDocument>> {
    return this.run('searching', () => this.page(this.viewIndex(options.view), compileEsQuery(query), options));
  }

  count(query: QueryNode | undefined, options: { view?: SearchView } = {}): Promise<number> {
    return this.run('counting', async () => {
      const response = await this.client.count({ index: this.viewIndex(options.view), query: compileEsQuery(query) as estypes.QueryDslQueryContainer });
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
      throw new PortbanditError('PB_ERR_PAGE', `offset ${offset} is too deep for Elasticsearch; page with the cursor instead`, { where: 'offset' });
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
      const query = (options.tag === undefined ? { match_all: {} } : { term: { tag: options.tag.toLowerCase() } }) as estypes.QueryDslQueryContainer;
      const latest = await this.client.search({ index: this.index.latest, query, size: 0, track_total_hits: true, aggs: { open: { sum: { field: 'openPortCount' } } } });
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

  private async topTerms(field: 'port' | 'service', options: { tag?: string; limit?: number }): Promise<{ key: string | number; hosts: number }[]> {
    const response = await this.client.search({
      index: this.index.latest,
      query: (options.tag === undefined ? { match_all: {} } : { term: { tag: options.tag.toLowerCase() } }) as estypes.QueryDslQueryContainer,
      size: 0,
      aggs: { top: { terms: { field, size: resolveLimit(options.limit, 20), order: [{ _count: 'desc' }, { _key: 'asc' }] } } },
    });
    const buckets = (response.aggregations?.top as estypes.AggregationsLongTermsAggregate | undefined)?.buckets;
    return (Array.isArray(buckets) ? buckets : []).map((bucket) => ({ key: bucket.key, hosts: bucket.doc_count }));
  }

  topPorts(options: { tag?: string; limit?: number } = {}): Promise<{ port: number; hosts: number }[]> {
    return this.run('computing top ports', async () => (await this.topTerms('port', options)).map((b) => ({ port: Number(b.key), hosts: b.hosts })));
  }

  topServices(options: { tag?: string; limit?: number } = {}): Promise<{ service: string; hosts: number }[]> {
    return this.run('computing top services', async () => (await this.topTerms('service', options)).map((b) => ({ service: String(b.key), hosts: b.hosts })));
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
  return new PortbanditError('PB_ERR_STORE', `Elasticsearch refused a bulk ${action.op} into ${action.index} (HTTP ${outcome.status} ${outcome.type ?? ''}): ${outcome.reason ?? 'no reason given'}`, {
    where: action.index,
  });
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

function toAgent(body: unknown): Agent {
  const agent = body as Partial<Agent> & NewAgent;
  return {
    id: agent.id,
    name: agent.name,
    tokenHash: agent.tokenHash,
    createdAt: agent.createdAt,
    version: agent.version ?? undefined,
    lastSeenAt: agent.lastSeenAt ?? undefined,
    counters: agent.counters ?? {},
  };
}

/** JSON round trip: what is stored is exactly what a later read returns. */
function stripUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
