import { openElasticsearchStore } from './elasticsearch-store.js';
import type { ElasticsearchStoreOptions } from './elasticsearch-store.js';
import { openSqliteStore } from './sqlite-store.js';
import type { SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './types.js';

/** Which store to open: the embedded SQLite file (default) or an Elasticsearch cluster. */
export type StoreOptions = ({ readonly kind: 'sqlite' } & SqliteStoreOptions) | ({ readonly kind: 'elasticsearch' } & ElasticsearchStoreOptions);

/** Open the store a resolved configuration names (the one place that picks an implementation). */
export function openStore(options: StoreOptions): Promise<Store> {
  return options.kind === 'sqlite' ? openSqliteStore(options) : openElasticsearchStore(options);
}
