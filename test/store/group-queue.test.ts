import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/types.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { open, scan } from './conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'pb-group-queue-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const stores: Array<[string, () => Promise<Store>]> = [['sqlite', () => openSqliteStore({ path: join(dir, `q-${n++}.db`) })]];

function suite(openStore: () => Promise<Store>): void {
  it('dequeueWorkFor takes only unrestricted items and items of the given groups, head first, and leaves the rest in place', async () => {
    const store = await openStore();
    try {
      const item = (n: number, groups?: string[]) => ({
        ip: `198.18.0.${n}`,
        tags: [],
        reason: 'manual' as const,
        enqueuedAt: n,
        ...(groups ? { groups } : {}),
      });
      await store.enqueueWork([item(1, ['external']), item(2), item(3, ['internal', 'cloud']), item(4, ['external']), item(5, ['cloud'])]);
      expect((await store.dequeueWorkFor(2, ['internal'])).map((w) => w.ip)).toEqual(['198.18.0.2', '198.18.0.3']);
      expect(await store.dequeueWorkFor(5, ['internal'])).toEqual([]);
      expect(await store.dequeueWorkFor(5, [])).toEqual([]);
      const external = await store.dequeueWorkFor(5, ['external', 'other']);
      expect(external.map((w) => [w.ip, w.groups])).toEqual([
        ['198.18.0.1', ['external']],
        ['198.18.0.4', ['external']],
      ]);
      expect((await store.listQueuedWork()).map((w) => w.ip)).toEqual(['198.18.0.5']);
      expect((await store.dequeueWork(5)).map((w) => w.ip)).toEqual(['198.18.0.5']);
    } finally {
      await store.close();
    }
  });

  it('indexes the vantage group of a scan for search (group:)', async () => {
    const store = await openStore();
    try {
      await store.ingestScan({ scan: { ...scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]), group: 'Internal' } });
      await store.ingestScan({ scan: scan('s2', '198.18.0.2', 1000, [open(22, 'ssh')]) });
      const found = await store.search({ type: 'term', field: 'group', value: 'internal' });
      expect(found.items.map((s) => s.scanId)).toEqual(['s1']);
      expect(found.items[0]!.group).toBe('Internal');
    } finally {
      await store.close();
    }
  });
}

describe.each(stores)('%s: the work queue routed by agent group', (_name, openStore) => suite(openStore));

const missing = postgresMissing();
if (missing) console.warn(`skipped on PostgreSQL: ${missing}`);
describe.skipIf(missing !== undefined)('postgres: the work queue routed by agent group', () => {
  const pg = usePostgres();
  suite(() => openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 2 }));
});

describe('elasticsearch: indices of an older version', () => {
  it('gain the fields added since (strict mappings would refuse them) when the index opens', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    await (await openElasticsearchScanIndex({ client, prefix: 'pb-old' })).close();
    cluster.indices.get('pb-old-scans')!.fields.delete('group');
    cluster.indices.get('pb-old-latest')!.fields.delete('group');
    const store = await openElasticsearchScanIndex({ client, prefix: 'pb-old' });
    await store.ingestScan({ scan: { ...scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]), group: 'internal' } });
    expect((await store.search({ type: 'term', field: 'group', value: 'internal' })).total).toBe(1);
  });
});
