import { randomUUID } from 'node:crypto';
import { Client } from '@elastic/elasticsearch';
import { openElasticsearchScanIndex, type ElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { IndexedStore } from '../../src/store/indexed-store.js';
import { OutboxFeeder } from '../../src/store/outbox-feeder.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/types.js';
import { createMemoryElasticsearchClient, type MemoryCluster } from './es-memory.js';

/** The scan index reads that go through search (near-real-time), as opposed to get by id (real-time). */
const SEARCH_READS = new Set([
  'search',
  'count',
  'exportHistory',
  'hostHistory',
  'readEvents',
  'readEventsBackward',
  'counts',
  'topPorts',
  'topServices',
  'scansPerHour',
]);

/** The reads an IndexedStore sends to the search index (the rest go to the coordination store). */
const INDEX_READS = new Set(['search', 'count', 'counts', 'topPorts', 'topServices', 'scansPerHour', 'exportHistory']);

/**
 * Wrap `target` so that `before()` runs ahead of every method named in `names` (exportHistory:
 * before its first item).
 */
function before<S extends object>(target: S, names: ReadonlySet<string>, run: () => Promise<void>): S {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof property !== 'string' || !names.has(property)) return method.bind(object);
      if (property === 'exportHistory') {
        return async function* (...args: unknown[]) {
          await run();
          yield* method.apply(object, args) as AsyncIterable<unknown>;
        };
      }
      return async (...args: unknown[]) => {
        await run();
        return method.apply(object, args);
      };
    },
  });
}

/**
 * The index with an explicit `refresh()` before every read that goes through search: writes
 * force no refresh, and a conformance test searches right after it writes. By-id reads
 * (getScan, getLatestScan) are left alone: they are real-time in Elasticsearch.
 */
export function refreshBeforeSearch<S extends object & { refresh(): Promise<void> }>(store: S): S {
  return before(store, SEARCH_READS, () => store.refresh());
}

/**
 * An IndexedStore whose reads through the search index first drain the outbox into it (with
 * `feeder`) and refresh it: the conformance suites read right after they write, while a
 * deployment's search lags by the outbox and the refresh interval.
 */
export function feedBeforeSearch(store: IndexedStore, feeder = new OutboxFeeder(store, store.searchIndex)): IndexedStore {
  return before(store, INDEX_READS, async () => {
    await feeder.drain();
    await store.searchIndex.refresh();
  });
}

/** SQLite coordination (outbox on, in memory) + the in-memory Elasticsearch double, fed before search. */
export async function openFedMemoryStore(
  options: { path?: string; prefix?: string } = {},
): Promise<{ store: IndexedStore; cluster: MemoryCluster; client: Client }> {
  const { client, cluster } = createMemoryElasticsearchClient();
  cluster.nearRealTime = true;
  const record = await openSqliteStore({ path: options.path ?? ':memory:', outbox: true });
  const index = await openElasticsearchScanIndex({ client, prefix: options.prefix ?? 'pb-fed' });
  return { store: feedBeforeSearch(new IndexedStore(record, index)), cluster, client };
}

/** Index names under a prefix (deleted by name: clusters refuse wildcard deletes by default). */
const indicesOf = (prefix: string): string[] => ['scans', 'latest', 'events', 'kv'].map((name) => `${prefix}-${name}`);

/** The scan index on the real cluster at `url` in its own random index prefix; close() deletes its indices. */
export async function openRealElasticsearchScanIndex(url: string): Promise<ElasticsearchScanIndex> {
  const prefix = `pb-test-${randomUUID().slice(0, 8)}`;
  const client = new Client({ node: url });
  const index = await openElasticsearchScanIndex({ client, prefix });
  return Object.assign(Object.create(index) as ElasticsearchScanIndex, {
    close: async () => {
      await client.indices.delete({ index: indicesOf(prefix) });
      await client.close();
    },
  });
}

/** A whole store on the real cluster: SQLite coordination (outbox on) + that index, fed before search. */
export async function openRealFedStore(url: string, path = ':memory:'): Promise<Store> {
  const record = await openSqliteStore({ path, outbox: true });
  return feedBeforeSearch(new IndexedStore(record, await openRealElasticsearchScanIndex(url)));
}
