import { describe, expect, test } from 'vitest';
import { buildApp } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { openElasticsearchStore } from '../../src/store/elasticsearch-store.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { addScope, bearer, getWork, manualClock, resultFor, submit, tokens } from './helpers.js';

describe('the coordinator on the Elasticsearch store', () => {
  // nearRealTime: searches see scans only after a refresh, which ingest no longer forces; the
  // work loop must not depend on it (the test refreshes explicitly before it searches).
  test.each([false, true])('hands out work, ingests results and answers searches with the store behind the official client mock (near-real-time search: %s)', async (nearRealTime) => {
    const clock = manualClock();
    const { client, cluster } = createMemoryElasticsearchClient();
    cluster.nearRealTime = nearRealTime;
    const store = await openElasticsearchStore({ client, prefix: 'pb-coord' });
    const config = resolveConfig({ flags: { logLevel: 'silent', learnBatchSize: 1 }, env: {} });
    const app = await buildApp({ config, store, now: clock.now, sweepTimer: false });
    try {
      const { admin, agents } = await tokens(app);
      await addScope(app, admin, [{ range: '198.18.5.0/30', tags: ['dmz'] }]);
      const seen = new Set<string>();
      // Follow-up rounds of the same host come as extra work items; bounded loop.
      for (let i = 0; i < 20 && seen.size < 4; i++) {
        const work = await getWork(app, agents[0]!);
        expect(work).not.toBeNull();
        seen.add(work!.ip);
        const open = work!.ports.includes(22) ? [22] : [work!.ports[0]!];
        clock.advance(1000);
        const res = await submit(app, agents[0]!, resultFor(work!, open, clock.now()));
        expect(res.statusCode).toBe(200);
      }
      expect([...seen].sort()).toEqual(['198.18.5.0', '198.18.5.1', '198.18.5.2', '198.18.5.3']);
      if (nearRealTime) {
        const before = await app.inject({ method: 'GET', url: '/api/v1/search?q=tag:dmz', headers: bearer(admin) });
        expect(JSON.stringify(before.json())).not.toContain('198.18.5.');
      }
      await store.refresh();
      const search = await app.inject({ method: 'GET', url: '/api/v1/search?q=tag:dmz', headers: bearer(admin) });
      expect(search.statusCode).toBe(200);
      expect(JSON.stringify(search.json())).toContain('198.18.5.');
    } finally {
      await app.close();
      await store.close();
    }
  });

  test('the store is chosen by configuration: a cluster URL from flags or PORTBANDIT_ELASTICSEARCH_URL, SQLite otherwise', () => {
    expect(resolveConfig({ env: {} }).elasticsearchUrl).toBe('');
    expect(resolveConfig({ env: { PORTBANDIT_ELASTICSEARCH_URL: 'http://127.0.0.1:9200' } }).elasticsearchUrl).toBe('http://127.0.0.1:9200');
    expect(() => resolveConfig({ flags: { elasticsearchUrl: 'localhost:9200' }, env: {} })).toThrow(/--elasticsearch-url.*expected an http\(s\) URL/);
  });
});
