import type { ElasticsearchScanIndex, ElasticsearchStoreOptions } from './elasticsearch-store.js';
import { IndexedStore } from './indexed-store.js';
import type { PostgresOptions } from './postgres-database.js';
import { openPostgresStore } from './postgres-store.js';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import { openSqliteStoreOnThread } from './sqlite-thread.js';
import { storeIdentity } from './store-identity.js';
import type { Store } from './types.js';

/**
 * Which store to open: the embedded SQLite file (default) or PostgreSQL (shared by several
 * coordinators), each optionally with an Elasticsearch search index fed from its outbox
 * (`elasticsearch`; docs/store.md, deployment shapes). Elasticsearch holds no coordination state.
 */
export type StoreOptions =
  | ({
      readonly kind: 'sqlite';
      readonly elasticsearch?: ElasticsearchStoreOptions;
      /** Writes on a worker thread of their own (sqlite-thread.ts); default false. */
      readonly thread?: boolean;
    } & SqliteStoreOptions)
  | ({ readonly kind: 'postgres'; readonly elasticsearch?: ElasticsearchStoreOptions } & PostgresOptions);

/** Open the store a resolved configuration names (the one place that picks an implementation). */
export async function openStore(options: StoreOptions): Promise<Store> {
  const { elasticsearch, ...rest } = options;
  const outbox = elasticsearch !== undefined || options.outbox === true;
  const record =
    rest.kind === 'postgres'
      ? await openPostgresStore({ ...rest, outbox })
      : rest.thread === true
        ? await openSqliteStoreOnThread({ ...rest, outbox })
        : await openSqliteStore({ ...rest, outbox });
  if (!elasticsearch) return record;
  try {
    const index = await openElasticsearchScanIndex(elasticsearch);
    try {
      // One coordination database per index prefix: fed events are keyed by its ids.
      await index.claimOwner(await storeIdentity(record));
    } catch (error) {
      await index.close();
      throw error;
    }
    return new IndexedStore(record, index);
  } catch (error) {
    await record.close();
    throw error;
  }
}

/**
 * Open an Elasticsearch scan index (elasticsearch-store.ts). The client library takes about half a
 * second to load, so it is loaded on the first call, not by every command that imports the store.
 */
export async function openElasticsearchScanIndex(options: ElasticsearchStoreOptions): Promise<ElasticsearchScanIndex> {
  return (await import('./elasticsearch-store.js')).openElasticsearchScanIndex(options);
}
