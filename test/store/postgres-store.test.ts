import { describe } from 'vitest';
import { openPostgresIndex } from '../../src/store/postgres-index.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
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
  describeIndexConformance('postgres index alone', () => openPostgresIndex({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 }));
});
