import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { IndexedStore } from '../../src/store/indexed-store.js';
import { openStore } from '../../src/store/open-store.js';
import { parseQuery } from '../../src/store/query.js';
import type { Store } from '../../src/store/types.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { openFedMemoryStore, openRealFedStore, refreshBeforeSearch } from '../helpers/es-refresh.js';
import { describeStoreConformance, open, scan } from './conformance.js';
import { describeIndexConformance } from './index-conformance.js';

/**
 * Elasticsearch is a search index only (docs/store.md): the whole-store suite runs on SQLite
 * coordination with the index fed from its outbox (reads through the index drain the outbox and
 * refresh first). With PORTBANDIT_ES_URL set (e.g. http://127.0.0.1:9200) against that cluster,
 * each index in its own random prefix, deleted on close; otherwise against the in-memory cluster
 * in test/helpers/es-memory.ts behind the official client mock.
 */
const url = process.env.PORTBANDIT_ES_URL;
if (!url) console.info('elasticsearch-store: PORTBANDIT_ES_URL is not set; running the conformance suite against the in-memory cluster');

async function openTestStore(): Promise<Store> {
  if (!url) return (await openFedMemoryStore()).store;
  return openRealFedStore(url);
}

describeStoreConformance(
  url ? `sqlite + elasticsearch at ${url}` : 'sqlite + elasticsearch (in-memory cluster, near-real-time, fed from the outbox)',
  openTestStore,
);

// The index suite on the index alone, search seeing only refreshed writes (get stays real-time):
// shows that refreshBeforeSearch, which the real-cluster suite uses, covers every read through search.
if (!url) {
  describeIndexConformance('elasticsearch scan index alone (in-memory cluster, near-real-time search)', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    cluster.nearRealTime = true;
    return refreshBeforeSearch(await openElasticsearchScanIndex({ client, prefix: 'pb-idx' }));
  });
}

describe.skipIf(url !== undefined)('elasticsearch index specifics (in-memory cluster)', () => {
  it('creates its four indices with strict mappings and reuses them on reopen', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    const store = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    expect([...cluster.indices.keys()].sort()).toEqual(['pb-events', 'pb-kv', 'pb-latest', 'pb-scans']);
    await store.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]) });
    const again = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    expect((await again.getScan('s1'))?.ip).toBe('198.18.0.1');
    expect(cluster.indices.get('pb-scans')!.strict).toBe(true);
  });

  it('adds the screenshot field to scan indices made before it existed, so screenshot:true works after an upgrade', async () => {
    // Arrange: indices as an older version made them (strict, no `screenshot` field).
    const { client, cluster } = createMemoryElasticsearchClient();
    await openElasticsearchScanIndex({ client, prefix: 'pb' });
    for (const name of ['pb-scans', 'pb-latest']) cluster.indices.get(name)!.fields.delete('screenshot');
    await expect(client.index({ index: 'pb-scans', id: 'x', document: { screenshot: 'true' } })).rejects.toMatchObject({ statusCode: 400 });

    // Act: reopen (an upgraded coordinator) and ingest a scan with a screenshot.
    const store = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    const shot = { port: 80, scheme: 'http' as const, mime: 'image/png' as const, width: 1280, height: 800, bytes: 100 };
    await store.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, [open(80, 'http')], { screenshots: [shot] }) });
    await store.ingestScan({ scan: scan('s2', '198.18.0.2', 1000, [open(80, 'http')]) });

    // Assert
    expect(cluster.indices.get('pb-scans')!.fields.get('screenshot')).toBe('keyword');
    expect((await store.search(parseQuery('screenshot:true'))).items.map((s) => s.scanId)).toEqual(['s1']);
    expect((await store.search(parseQuery('-screenshot:true'))).items.map((s) => s.scanId)).toEqual(['s2']);
    expect((await store.getScan('s1'))?.screenshots).toEqual([shot]);
  });

  it('the in-memory cluster refuses query DSL it does not model, so the store cannot drift from it', async () => {
    const { client } = createMemoryElasticsearchClient();
    await openElasticsearchScanIndex({ client, prefix: 'pb' });
    await expect(client.search({ index: 'pb-scans', query: { wildcard: { product: 'ngin*' } } })).rejects.toMatchObject({
      statusCode: 400,
    });
    await expect(client.search({ index: 'pb-scans', query: { range: { product: { gt: 'a' } } } })).rejects.toMatchObject({
      statusCode: 400,
    });
    await expect(client.index({ index: 'pb-scans', id: 'x', document: { surprise: 1 } })).rejects.toMatchObject({ statusCode: 400 });
    expect((await client.search({ index: 'pb-scans', query: { match_all: {} } })).hits.hits).toEqual([]);
  });

  it('openStore pairs SQLite with the index when the configuration names a cluster, and writes the outbox only then', async () => {
    const fed = await openStore({ kind: 'sqlite', path: ':memory:', elasticsearch: { client: createMemoryElasticsearchClient().client } });
    const sqlite = await openStore({ kind: 'sqlite', path: ':memory:' });
    expect([fed instanceof IndexedStore, fed.kind, sqlite instanceof IndexedStore, sqlite.kind]).toEqual([true, 'sqlite', false, 'sqlite']);
    for (const store of [fed, sqlite]) await store.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, []) });
    expect([await fed.countOutbox(), await sqlite.countOutbox()]).toEqual([1, 0]);
    await Promise.all([fed.close(), sqlite.close()]);
  });

  it('rejects an unusable index prefix or bulk retry setting with the option named', async () => {
    const { client } = createMemoryElasticsearchClient();
    await expect(openElasticsearchScanIndex({ client, prefix: 'pb', bulkRetry: { retries: -1 } })).rejects.toSatisfy(
      (e) => isPortbanditError(e, 'PB_ERR_CONFIG') && e.where === 'store.elasticsearch.bulkRetry.retries',
    );
    await expect(openElasticsearchScanIndex({ client, prefix: 'Bad Prefix' })).rejects.toSatisfy(
      (e) => isPortbanditError(e, 'PB_ERR_CONFIG') && e.where === 'store.elasticsearch.prefix',
    );
  });

  it('a retried ingest after a failure midway completes it (the history document is the commit point)', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    const store = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    const scans = cluster.indices.get('pb-scans')!;
    // Make the commit step fail once by dropping the history index's mapping for `doc`.
    const saved = scans.fields.get('doc')!;
    scans.fields.delete('doc');
    const input = {
      scan: scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]),
      events: [{ kind: 'service-new' as const, at: 1000, ip: '198.18.0.1', scanId: 's1', tags: [], port: 22 }],
    };
    await expect(store.ingestScan(input)).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_STORE'));
    expect(await store.getScan('s1')).toBeUndefined();
    scans.fields.set('doc', saved);
    expect(await store.ingestScan(input)).toEqual({ inserted: true, latest: true });
    expect((await store.readEvents()).events).toHaveLength(1);
    expect(await store.count(undefined, { view: 'history' })).toBe(1);
  });

  it('ingests a visit with its events in one _bulk request, the latest document versioned by finishedAt', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    const store = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    const event = (scanId: string) => ({ kind: 'service-new' as const, at: 1000, ip: '198.18.0.1', scanId, tags: [], port: 22 });

    await store.ingestScan({ scan: scan('s2', '198.18.0.1', 2000, [open(22, 'ssh')]), events: [event('s2'), event('s2')] });
    expect(cluster.bulkRequests).toBe(1);
    expect(await store.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, [open(80, 'http')]), events: [event('s1')] })).toEqual({
      inserted: true,
      latest: false,
    });
    expect(cluster.bulkRequests).toBe(2);

    const latest = [...cluster.indices.get('pb-latest')!.docs.values()];
    expect(latest.map((d) => [d.source.scanId, d.version])).toEqual([['s2', 2000]]);
    expect((await store.readEvents()).events.map((e) => e.scanId)).toEqual(['s2', 's2', 's1']);
    // A duplicate is answered from a real-time get: no bulk request, nothing rewritten.
    expect(await store.ingestScan({ scan: scan('s2', '198.18.0.1', 2000, [open(22, 'ssh')]) })).toEqual({ inserted: false, latest: false });
    expect(cluster.bulkRequests).toBe(2);
  });

  it.each(['items', 'request'] as const)(
    're-sends bulk work Elasticsearch rejects with 429 (%s) with backoff, and the ingest completes',
    async (as) => {
      const { client, cluster } = createMemoryElasticsearchClient();
      const store = await openElasticsearchScanIndex({ client, prefix: 'pb', bulkRetry: { baseDelayMs: 20 } });
      cluster.rejectBulk = { remaining: 2, as };
      const event = { kind: 'service-new' as const, at: 1000, ip: '198.18.0.1', scanId: 's1', tags: [], port: 22 };
      const started = performance.now();

      const result = await store.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]), events: [event] });

      expect(result).toEqual({ inserted: true, latest: true });
      expect(cluster.bulkRequests).toBe(3);
      // Two waits of about 20 ms then 40 ms, each at least half of that (jitter).
      expect(performance.now() - started).toBeGreaterThanOrEqual(30);
      expect((await store.getScan('s1'))?.scanId).toBe('s1');
      expect((await store.getLatestScan('198.18.0.1'))?.scanId).toBe('s1');
      await store.refresh();
      expect((await store.readEvents()).events).toHaveLength(1);
    },
  );

  it('deletes the history document again when another item of the bulk failed, so the retry is not taken for a duplicate', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    const store = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    const events = cluster.indices.get('pb-events')!;
    const saved = events.fields.get('doc')!;
    events.fields.delete('doc');
    const input = {
      scan: scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]),
      events: [{ kind: 'service-new' as const, at: 1000, ip: '198.18.0.1', scanId: 's1', tags: [], port: 22 }],
    };

    await expect(store.ingestScan(input)).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_STORE') && e.where === 'pb-events');
    expect(await store.getScan('s1')).toBeUndefined();

    events.fields.set('doc', saved);
    expect(await store.ingestScan(input)).toEqual({ inserted: true, latest: true });
    expect((await store.readEvents()).events.map((e) => e.scanId)).toEqual(['s1']);
  });

  it('the scan index alone replaces a stored visit only with more rounds, in one _bulk, and takes no lease', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    const index = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    const first = scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')], { rounds: ['s1'] });
    const second = scan('s1', '198.18.0.1', 1500, [open(22, 'ssh'), open(80, 'http')], { rounds: ['s1', 'l2'] });
    const event = { kind: 'service-new' as const, at: 1500, ip: '198.18.0.1', scanId: 's1', tags: [], port: 80 };

    expect(await index.ingestScan({ scan: first })).toEqual({ inserted: true, latest: true });
    expect(await index.ingestScan({ scan: { ...first, finishedAt: 1200 }, replace: true })).toEqual({ inserted: false, latest: false });
    const before = cluster.bulkRequests;
    expect(await index.ingestScan({ scan: second, replace: true, events: [event] })).toEqual({ inserted: true, latest: true });
    expect(cluster.bulkRequests).toBe(before + 1);
    expect(await index.ingestScan({ scan: second, replace: true, events: [event] })).toEqual({ inserted: false, latest: false });

    await index.refresh();
    expect((await index.getLatestScan('198.18.0.1'))?.rounds).toEqual(['s1', 'l2']);
    expect((await index.hostHistory('198.18.0.1')).items.map((s) => s.finishedAt)).toEqual([1500]);
    expect((await index.readEvents()).events.map((e) => e.port)).toEqual([80]);
    expect(cluster.indices.get('pb-kv')!.docs.size).toBe(1); // the event sequence counter only
    await index.close();
  });
});
