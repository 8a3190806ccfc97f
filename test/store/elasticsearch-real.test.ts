import { describe } from 'vitest';
import { openRealElasticsearchScanIndex, openRealFedStore, refreshBeforeSearch } from '../helpers/es-refresh.js';
import { describeStoreConformance } from './conformance.js';
import { describeIndexConformance } from './index-conformance.js';
import { describeFeederOnCluster } from './feeder-conformance.js';

/**
 * The scan index against a real Elasticsearch 8 cluster, only when PORTBANDIT_ES_URL is set (no
 * cluster can run on the project's machines):
 *
 *   PORTBANDIT_ES_URL=http://127.0.0.1:9200 npx vitest run test/store/elasticsearch-real.test.ts
 *
 * The index conformance suite on the index alone; the whole-store suite on SQLite coordination
 * with the index fed from its outbox; and the feeder's own checks (batches, replays after a
 * kill before the acknowledgement). Each index gets its own random prefix (`pb-test-xxxxxxxx-*`),
 * deleted on close. Reads through search are preceded by an explicit refresh (writes force none).
 */
const url = process.env.PORTBANDIT_ES_URL;

if (!url)
  process.stderr.write(
    'elasticsearch-real: skipped: PORTBANDIT_ES_URL is not set (e.g. PORTBANDIT_ES_URL=http://127.0.0.1:9200 npx vitest run test/store/elasticsearch-real.test.ts)\n',
  );

describe.skipIf(!url)('real Elasticsearch (PORTBANDIT_ES_URL)', () => {
  describeIndexConformance(`elasticsearch scan index at ${url}`, async () =>
    refreshBeforeSearch(await openRealElasticsearchScanIndex(url!)),
  );
  describeStoreConformance(`sqlite + elasticsearch at ${url} (fed from the outbox)`, () => openRealFedStore(url!));
  describeFeederOnCluster(`elasticsearch at ${url}`, () => openRealElasticsearchScanIndex(url!));
});
