import { openElasticsearchStore } from './elasticsearch-store.js';
import type { ElasticsearchStoreOptions } from './elasticsearch-store.js';
import type { PostgresOptions } from './postgres-database.js';
import { openPostgresStore } from './postgres-store.js';
import { openSqliteStore } from './sqlite-store.js';
import type { SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './types.js';

/** Which store to open: the embedded SQLite file (default), PostgreSQL (shared by several coordinators) or Elasticsearch. */
export type StoreOptions =
  | ({ readonly kind: 'sqlite' } & SqliteStoreOptions)
  | ({ readonly kind: 'postgres' } & PostgresOptions)
  | ({ readonly kind: 'elasticsearch' } & ElasticsearchStoreOptions);

/** Open the store a resolved configuration names (the one place that picks an implementation). */
export function openStore(options: StoreOptions): Promise<Store> {
  switch (options.kind) {
    case 'sqlite':
      return openSqliteStore(options);
    case 'postgres':
      return openPostgresStore(options);
    case 'elasticsearch':
      return openElasticsearchStore(options);
  }
}
