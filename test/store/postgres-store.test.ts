import { describe } from 'vitest';
import { openPostgresIndex } from '../../src/store/postgres-index.js';
import { openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { IndexedStore } from '../../src/store/indexed-store.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { feedBeforeSearch } from '../helpers/es-refresh.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { describeStoreConformance } from './conformance.js';
import { describeOutboxConformance } from './coordination-conformance.js';
import { describeIndexConformance } from './index-conformance.js';

/**
 * The whole store on a real PostgreSQL (a throwaway cluster for this file, one schema per
 * store): the coordination suite, the index suite and the ingest across both; and the index
 * alone (no coordination tables), as a deployment could open it.
 */
const missing = postgresMissing();
if (missing) console.warn(`postgres-store: skipped: ${missing}`);

describe.skipIf(missing !== undefined)('PostgreSQL store', () => {
  const pg = usePostgres();
  describeStoreConformance('postgres', () => openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 }));
  describeOutboxConformance(
    'postgres',
    async () => {
      const options = { url: pg.url(), schema: pg.freshSchema(), poolSize: 4, outbox: true };
      return { store: await openPostgresStore(options), reopen: () => openPostgresStore(options) };
    },
    () => openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 }),
  );
  // PostgreSQL coordination with the Elasticsearch index (the in-memory double, near-real-time),
  // fed from the outbox: reads through the index drain the outbox and refresh first.
  describeStoreConformance('postgres + elasticsearch (in-memory cluster, fed from the outbox)', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    cluster.nearRealTime = true;
    const record = await openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4, outbox: true });
    return feedBeforeSearch(new IndexedStore(record, await openElasticsearchScanIndex({ client, prefix: 'pb-pg' })));
  });
  describeIndexConformance('postgres index alone', () => openPostgresIndex({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 }));
});
