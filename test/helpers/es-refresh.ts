import { randomUUID } from 'node:crypto';
import { Client } from '@elastic/elasticsearch';
import { openElasticsearchScanIndex, openElasticsearchStore } from '../../src/store/elasticsearch-store.js';
import type { ElasticsearchScanIndex, ElasticsearchStoreHandle } from '../../src/store/elasticsearch-store.js';

/** The scan index reads that go through search (near-real-time), as opposed to get by id (real-time). */
const SEARCH_READS = new Set(['search', 'count', 'hostHistory', 'readEvents', 'readEventsBackward', 'counts', 'topPorts', 'topServices', 'scansPerHour']);

/**
 * The store with an explicit `refresh()` before every read that goes through search: ingest no
 * longer forces a refresh per write, and a conformance test searches right after it writes.
 * By-id reads (getScan, getLatestScan) are left alone: they are real-time in Elasticsearch.
 */
export function refreshBeforeSearch<S extends object & { refresh(): Promise<void> }>(store: S): S {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (property === 'exportHistory') {
        return async function* (...args: unknown[]) {
          await target.refresh();
          yield* method.apply(target, args) as AsyncIterable<unknown>;
        };
      }
      if (typeof property === 'string' && SEARCH_READS.has(property)) {
        return async (...args: unknown[]) => {
          await target.refresh();
          return method.apply(target, args);
        };
      }
      return method.bind(target);
    },
  });
}

/**
 * A store on the real cluster at `url` in its own random index prefix; close() deletes its
 * indices (by name: clusters refuse wildcard deletes by default) and closes the client.
 */
export async function openRealElasticsearchStore(url: string): Promise<ElasticsearchStoreHandle> {
  const prefix = `pb-test-${randomUUID().slice(0, 8)}`;
  const client = new Client({ node: url });
  const store = await openElasticsearchStore({ client, prefix });
  return Object.assign(Object.create(store) as ElasticsearchStoreHandle, {
    close: async () => {
      await client.indices.delete({ index: ['scans', 'latest', 'events', 'kv'].map((name) => `${prefix}-${name}`) });
      await client.close();
    },
  });
}

/** `openRealElasticsearchStore` for the scan index alone (`openElasticsearchScanIndex`). */
export async function openRealElasticsearchScanIndex(url: string): Promise<ElasticsearchScanIndex> {
  const prefix = `pb-test-${randomUUID().slice(0, 8)}`;
  const client = new Client({ node: url });
  const index = await openElasticsearchScanIndex({ client, prefix });
  return {
    ...index,
    close: async () => {
      await client.indices.delete({ index: ['scans', 'latest', 'events', 'kv'].map((name) => `${prefix}-${name}`) });
      await client.close();
    },
  };
}
