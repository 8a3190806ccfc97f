import { describe } from 'vitest';
import { openRealElasticsearchScanIndex, openRealElasticsearchStore, refreshBeforeSearch } from '../helpers/es-refresh.js';
import { describeIndexConformance } from './index-conformance.js';

/**
 * The scan index conformance suite against a real Elasticsearch 8 cluster, only when
 * PORTBANDIT_ES_URL is set (no cluster can run on the project's machines):
 *
 *   PORTBANDIT_ES_URL=http://127.0.0.1:9200 npx vitest run test/store/elasticsearch-real.test.ts
 *
 * Each store gets its own random index prefix (`pb-test-xxxxxxxx-*`), deleted on close. Reads
 * through search are preceded by an explicit refresh (ingest forces none); by-id reads are not.
 */
const url = process.env.PORTBANDIT_ES_URL;

if (!url) process.stderr.write('elasticsearch-real: skipped: PORTBANDIT_ES_URL is not set (e.g. PORTBANDIT_ES_URL=http://127.0.0.1:9200 npx vitest run test/store/elasticsearch-real.test.ts)\n');

describe.skipIf(!url)('scan index conformance: real Elasticsearch (PORTBANDIT_ES_URL)', () => {
  describeIndexConformance(`elasticsearch store at ${url}`, async () => refreshBeforeSearch(await openRealElasticsearchStore(url!)));
  describeIndexConformance(`elasticsearch scan index at ${url}`, async () => refreshBeforeSearch(await openRealElasticsearchScanIndex(url!)));
});
