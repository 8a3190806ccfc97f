import type { ElasticsearchScanIndex } from './elasticsearch-store.js';
import type { QueryNode } from './query-ast.js';
import type { ScanIndex, SearchOptions, SearchView, Store } from './types.js';

/**
 * A coordination store (SQLite or PostgreSQL, opened with `outbox: true`) with a separate search
 * index (Elasticsearch) fed from its outbox by an `OutboxFeeder` (docs/store.md, deployment shapes).
 *
 * Every write goes to the coordination store, in its transactions (a result, its lease, its
 * follow-up work, its events and its outbox record commit together). It keeps its own copy of
 * history, latest per host and events: the system of record, and what the coordinator reads back
 * by id or per host (`getScan`, `getLatestScan`, `hostHistory`, events), exact at once. The search
 * index answers what needs search: `search`, `count`, statistics and `exportHistory`; it lags the
 * coordination store by the outbox (its depth is on /metrics) plus the index's refresh interval.
 * The coordinator never reads its own writes back through search: the baselines of its change
 * events come from the coordination store.
 */
export class IndexedStore implements Store {
  constructor(
    readonly record: Store,
    readonly searchIndex: ElasticsearchScanIndex,
    /** Called after each write that may have added to the outbox (app.ts sets the feeder's `wake`). */
    public onOutbox: () => void = () => {},
  ) {
    const own = record.latestAnsweredScan?.bind(record);
    this.latestAnsweredScan = own;
  }

  get kind(): Store['kind'] {
    return this.record.kind;
  }

  async close(): Promise<void> {
    try {
      await this.record.close();
    } finally {
      await this.searchIndex.close();
    }
  }

  private notify<T>(promise: Promise<T>): Promise<T> {
    return promise.then((value) => {
      this.onOutbox();
      return value;
    });
  }

  // ------------------------------------------------------------------ writes (coordination store, outbox)
  ingestScan: Store['ingestScan'] = (input) => this.notify(this.record.ingestScan(input));
  appendEvents: Store['appendEvents'] = (events) => this.notify(this.record.appendEvents(events));
  deleteHistory: Store['deleteHistory'] = (scanIds) => this.notify(this.record.deleteHistory(scanIds));

  // ------------------------------------------------------------------ by id, per host, events: the record
  getScan: Store['getScan'] = (scanId) => this.record.getScan(scanId);
  getLatestScan: Store['getLatestScan'] = (ip) => this.record.getLatestScan(ip);
  hostHistory: Store['hostHistory'] = (ip, page) => this.record.hostHistory(ip, page);
  // Only when the record has its own (SQLite): without it (PostgreSQL) callers read through
  // getLatestScan, which a lease batch starts for its hosts together (one query for all).
  readonly latestAnsweredScan: Store['latestAnsweredScan'];
  readEvents: Store['readEvents'] = (options) => this.record.readEvents(options);
  readEventsBackward: NonNullable<Store['readEventsBackward']> = (options) => this.record.readEventsBackward!(options);

  // ------------------------------------------------------------------ search: the index
  search(query: QueryNode | undefined, options?: SearchOptions): ReturnType<ScanIndex['search']> {
    return this.searchIndex.search(query, options);
  }
  count(query: QueryNode | undefined, options?: { view?: SearchView }): Promise<number> {
    return this.searchIndex.count(query, options);
  }
  exportHistory: Store['exportHistory'] = (options) => this.searchIndex.exportHistory(options);
  counts: Store['counts'] = (options) => this.searchIndex.counts(options);
  topPorts: Store['topPorts'] = (options) => this.searchIndex.topPorts(options);
  topServices: Store['topServices'] = (options) => this.searchIndex.topServices(options);
  scansPerHour: Store['scansPerHour'] = (options) => this.searchIndex.scansPerHour(options);

  // ------------------------------------------------------------------ coordination: the record
  listScope: Store['listScope'] = (list) => this.record.listScope(list);
  addScopeEntries: Store['addScopeEntries'] = (list, entries, at) => this.record.addScopeEntries(list, entries, at);
  removeScopeEntries: Store['removeScopeEntries'] = (list, ranges) => this.record.removeScopeEntries(list, ranges);
  replaceScope: Store['replaceScope'] = (list, entries, at) => this.record.replaceScope(list, entries, at);
  getScopeVersion: Store['getScopeVersion'] = () => this.record.getScopeVersion();
  getDocument: Store['getDocument'] = (collection, key) => this.record.getDocument(collection, key);
  putDocument: Store['putDocument'] = (collection, key, value, options) => this.record.putDocument(collection, key, value, options);
  listDocuments: Store['listDocuments'] = (collection) => this.record.listDocuments(collection);
  deleteDocument: Store['deleteDocument'] = (collection, key) => this.record.deleteDocument(collection, key);
  createAgent: Store['createAgent'] = (agent) => this.record.createAgent(agent);
  getAgent: Store['getAgent'] = (id) => this.record.getAgent(id);
  findAgentByTokenHash: Store['findAgentByTokenHash'] = (hash) => this.record.findAgentByTokenHash(hash);
  listAgents: Store['listAgents'] = () => this.record.listAgents();
  recordAgentActivity: Store['recordAgentActivity'] = (id, activity) => this.record.recordAgentActivity(id, activity);
  deleteAgent: Store['deleteAgent'] = (id) => this.record.deleteAgent(id);
  createAdminToken: Store['createAdminToken'] = (token) => this.record.createAdminToken(token);
  findAdminTokenByHash: Store['findAdminTokenByHash'] = (hash) => this.record.findAdminTokenByHash(hash);
  listAdminTokens: Store['listAdminTokens'] = () => this.record.listAdminTokens();
  deleteAdminToken: Store['deleteAdminToken'] = (id) => this.record.deleteAdminToken(id);
  putLease: Store['putLease'] = (lease) => this.record.putLease(lease);
  getLease: Store['getLease'] = (id) => this.record.getLease(id);
  listLeases: Store['listLeases'] = (filter) => this.record.listLeases(filter);
  countLeases: Store['countLeases'] = (filter) => this.record.countLeases(filter);
  renewLease: Store['renewLease'] = (id, deadline) => this.record.renewLease(id, deadline);
  completeLease: Store['completeLease'] = (id) => this.record.completeLease(id);
  takeExpiredLeases: Store['takeExpiredLeases'] = (now, limit, options) => this.record.takeExpiredLeases(now, limit, options);
  enqueueWork: Store['enqueueWork'] = (items) => this.record.enqueueWork(items);
  dequeueWork: Store['dequeueWork'] = (limit, options) => this.record.dequeueWork(limit, options);
  listQueuedWork: Store['listQueuedWork'] = (limit) => this.record.listQueuedWork(limit);
  countQueuedWork: Store['countQueuedWork'] = () => this.record.countQueuedWork();
  removeQueuedWork: Store['removeQueuedWork'] = (id) => this.record.removeQueuedWork(id);
  releaseQueuedWork: Store['releaseQueuedWork'] = (ids) => this.record.releaseQueuedWork(ids);
  dequeueWorkFor: Store['dequeueWorkFor'] = (limit, groups, options) => this.record.dequeueWorkFor(limit, groups, options);
  createFirstAdminToken: Store['createFirstAdminToken'] = (token) => this.record.createFirstAdminToken(token);
  holdRole: Store['holdRole'] = (role) => this.record.holdRole(role);
  readLearning: Store['readLearning'] = (after) => this.record.readLearning(after);
  pruneLearning: Store['pruneLearning'] = (before) => this.record.pruneLearning(before);
  readOutbox: Store['readOutbox'] = (limit) => this.record.readOutbox(limit);
  ackOutbox: Store['ackOutbox'] = (ids) => this.record.ackOutbox(ids);
  countOutbox: Store['countOutbox'] = () => this.record.countOutbox();
}

/** The search index a store is paired with, when it is an `IndexedStore`. */
export function searchIndexOf(store: Store): ElasticsearchScanIndex | undefined {
  return store instanceof IndexedStore ? store.searchIndex : undefined;
}
