import { errors } from '@elastic/elasticsearch';
import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { OutboxFeeder } from '../../src/store/outbox-feeder.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { OutboxRecord } from '../../src/store/types.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { backfillIndex } from '../../src/store/backfill.js';
import { describeFeederOnCluster, history, sameAnswers } from './feeder-conformance.js';
import { open, scan } from './fixtures.js';

/**
 * The outbox feeder against the in-memory Elasticsearch double (test/helpers/es-memory.ts; the
 * same checks run on a real cluster in elasticsearch-real.test.ts): batches, replays after a kill,
 * 429s and connection failures, and one feeder per deployment on PostgreSQL.
 */
describeFeederOnCluster('the in-memory Elasticsearch double (near-real-time)', async () => {
  const { client, cluster } = createMemoryElasticsearchClient();
  cluster.nearRealTime = true;
  return openElasticsearchScanIndex({ client, prefix: 'pb-feed' });
});

async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('outbox feeder failures (in-memory double)', () => {
  it('a batch Elasticsearch keeps answering 429 stays in the outbox; the running feeder backs off and delivers it once the cluster takes it', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    const index = await openElasticsearchScanIndex({ client, prefix: 'pb', bulkRetry: { retries: 1, baseDelayMs: 1, maxDelayMs: 2 } });
    const record = await openSqliteStore({ path: ':memory:', outbox: true });
    for (let i = 1; i <= 5; i++)
      await record.ingestScan({
        scan: scan(`s${i}`, `198.18.0.${i}`, 1000 + i, [open(22, 'ssh')]),
        events: [{ kind: 'host-new', at: 1000 + i, ip: `198.18.0.${i}`, scanId: `s${i}`, tags: [] }],
      });
    const warnings: string[] = [];
    const feeder = new OutboxFeeder(record, index, {
      batchSize: 100,
      idleMs: 5,
      retry: { baseDelayMs: 10, maxDelayMs: 20 },
      log: (level, message) => level === 'warn' && warnings.push(message),
    });

    // Two requests per attempt (one re-send): the first attempt by hand, the second in the loop fail.
    cluster.rejectBulk = { remaining: 5, as: 'items' };
    await expect(feeder.feedOnce()).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_STORE') && /429/u.test(e.message));
    expect(await record.countOutbox()).toBe(5);
    expect(await index.getScan('s1')).toBeUndefined();

    feeder.start();
    await until(async () => (await record.countOutbox()) === 0);
    await feeder.stop();

    expect(feeder.status()).toMatchObject({ fed: 5, failing: 0 });
    expect(feeder.status().failures).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toMatch(/stay in the outbox/u);
    expect(cluster.bulkRequests).toBeGreaterThanOrEqual(6);
    await index.refresh();
    expect(await index.count(undefined, { view: 'history' })).toBe(5);
    expect((await index.readEvents()).events.map((e) => e.scanId)).toEqual(['s1', 's2', 's3', 's4', 's5']);
    await Promise.all([record.close(), index.close()]);
  });

  it('retries after connection errors, acknowledging nothing until the index took the batch', async () => {
    const { client } = createMemoryElasticsearchClient();
    const index = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    const record = await openSqliteStore({ path: ':memory:', outbox: true });
    await record.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]) });
    let refusals = 2;
    const flaky = {
      applyOutbox: async (records: readonly OutboxRecord[]) => {
        if (refusals-- > 0) throw new errors.ConnectionError('connect ECONNREFUSED 127.0.0.1:9200');
        await index.applyOutbox(records);
      },
    };
    const feeder = new OutboxFeeder(record, flaky, { idleMs: 5, retry: { baseDelayMs: 5, maxDelayMs: 10 } });
    feeder.start();
    await until(async () => (await record.countOutbox()) === 0);
    await feeder.stop();
    expect(feeder.status()).toMatchObject({ fed: 1, failures: 2, failing: 0, lastError: expect.stringMatching(/ECONNREFUSED/u) });
    expect((await index.getScan('s1'))?.ip).toBe('198.18.0.1');
    await Promise.all([record.close(), index.close()]);
  });

  it('an ingest wakes the idle feeder at once (no idle wait)', async () => {
    const { client } = createMemoryElasticsearchClient();
    const index = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    const record = await openSqliteStore({ path: ':memory:', outbox: true });
    const feeder = new OutboxFeeder(record, index, { idleMs: 60_000 });
    feeder.start();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await record.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, []) });
    feeder.wake();
    await until(async () => (await record.countOutbox()) === 0, 2000);
    await feeder.stop();
    expect((await index.getScan('s1'))?.scanId).toBe('s1');
    await Promise.all([record.close(), index.close()]);
  });
});

const missing = postgresMissing();
if (missing) console.warn(`outbox-feeder: PostgreSQL part skipped: ${missing}`);

describe.skipIf(missing !== undefined)('outbox feeder on PostgreSQL: one feeder per deployment', () => {
  const pg = usePostgres();

  it('a PostgreSQL store written without an outbox, backfilled: the index answers as the store does', async () => {
    const record = await openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 3 });
    const { client } = createMemoryElasticsearchClient();
    const index = await openElasticsearchScanIndex({ client, prefix: 'pb-backfill' });
    try {
      await history(record);
      expect(await record.countOutbox()).toBe(0);
      expect(await backfillIndex(record, index, { batchSize: 4 })).toEqual({ visits: 11, latest: 6, events: 14, deleted: 0 });
      await sameAnswers(record, index);
    } finally {
      await index.close();
      await record.close();
    }
  });

  it('of two coordinators only the role holder feeds; when it closes, the other takes over and replays what was not acknowledged', async () => {
    const schema = pg.freshSchema();
    const [a, b] = await Promise.all([0, 1].map(() => openPostgresStore({ url: pg.url(), schema, poolSize: 3, outbox: true })));
    const { client, cluster } = createMemoryElasticsearchClient();
    const index = await openElasticsearchScanIndex({ client, prefix: 'pb' });
    try {
      for (let i = 1; i <= 6; i++)
        await (i % 2 ? a! : b!).ingestScan({ scan: scan(`s${i}`, `198.18.0.${i}`, 1000 + i, [open(22, 'ssh')]) });
      const feedA = new OutboxFeeder(a!, index, { batchSize: 2 });
      const feedB = new OutboxFeeder(b!, index, { batchSize: 2 });
      expect(await feedA.feedOnce()).toBe(2);
      expect(await feedB.feedOnce()).toBe(0);
      expect(feedB.status().active).toBe(false);
      // A applies a batch and dies before acknowledging it.
      const records = await a!.readOutbox(2);
      await index.applyOutbox(records);
      await a!.close();

      await until(async () => (await feedB.feedOnce()) > 0 || feedB.status().active);
      await feedB.drain();
      expect(await b!.countOutbox()).toBe(0);
      expect(feedB.status()).toMatchObject({ active: true });
      await index.refresh();
      expect((await index.search(undefined, { view: 'history' })).items.map((s) => s.scanId).sort()).toEqual([
        's1',
        's2',
        's3',
        's4',
        's5',
        's6',
      ]);
      expect([...cluster.indices.get('pb-scans')!.docs.keys()]).toHaveLength(6);
    } finally {
      await b!.close();
      await a!.close().catch(() => {});
      await index.close();
    }
  });
});
