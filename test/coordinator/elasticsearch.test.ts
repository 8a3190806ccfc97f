import { describe, expect, test } from 'vitest';
import { buildApp } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { IndexedStore } from '../../src/store/indexed-store.js';
import { openStore } from '../../src/store/open-store.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { addScope, bearer, getWork, manualClock, resultFor, submit, tokens } from './helpers.js';

describe('the coordinator on SQLite with an Elasticsearch index fed from the outbox', () => {
  // nearRealTime: searches see scans only after a refresh; the work loop must depend neither on
  // that nor on the feed (its baselines come from the coordination store).
  test.each([false, true])(
    'hands out work and ingests results before anything is fed; search answers once the feeder drained the outbox (near-real-time search: %s)',
    async (nearRealTime) => {
      const clock = manualClock();
      const { client, cluster } = createMemoryElasticsearchClient();
      cluster.nearRealTime = nearRealTime;
      const store = await openStore({ kind: 'sqlite', path: ':memory:', elasticsearch: { client, prefix: 'pb-coord' } });
      expect(store).toBeInstanceOf(IndexedStore);
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
        expect(cluster.bulkRequests).toBe(0);
        const depth = await store.countOutbox();
        expect(depth).toBeGreaterThanOrEqual(4);
        const health = (await app.inject({ method: 'GET', url: '/healthz' })).json();
        expect(health).toMatchObject({ store: 'sqlite', outbox: { depth, fed: 0, failures: 0 } });
        expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toContain(`portbandit_outbox_depth ${depth}`);
        const before = await app.inject({ method: 'GET', url: '/api/v1/search?q=tag:dmz', headers: bearer(admin) });
        expect(JSON.stringify(before.json())).not.toContain('198.18.5.');
        // What the coordination store answers at once: per host, by id.
        const host = await app.inject({ method: 'GET', url: '/api/v1/hosts/198.18.5.1', headers: bearer(admin) });
        expect(host.statusCode).toBe(200);

        expect(await app.outboxFeeder!.drain()).toBe(depth);
        await (store as IndexedStore).searchIndex.refresh();
        const search = await app.inject({ method: 'GET', url: '/api/v1/search?q=tag:dmz', headers: bearer(admin) });
        expect(search.statusCode).toBe(200);
        expect(JSON.stringify(search.json())).toContain('198.18.5.');
        expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toMatchObject({
          outbox: { depth: 0, fed: depth, active: true },
        });
      } finally {
        await app.close();
        await store.close();
      }
    },
  );

  test('the index is chosen by configuration: a cluster URL from flags or PORTBANDIT_ELASTICSEARCH_URL, with SQLite or PostgreSQL', () => {
    expect(resolveConfig({ env: {} }).elasticsearchUrl).toBe('');
    expect(resolveConfig({ env: { PORTBANDIT_ELASTICSEARCH_URL: 'http://127.0.0.1:9200' } }).elasticsearchUrl).toBe(
      'http://127.0.0.1:9200',
    );
    expect(() => resolveConfig({ flags: { elasticsearchUrl: 'localhost:9200' }, env: {} })).toThrow(
      /--elasticsearch-url.*expected an http\(s\) URL/,
    );
  });
});
