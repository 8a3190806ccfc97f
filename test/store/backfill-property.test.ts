import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { backfillIndex } from '../../src/store/backfill.js';
import { openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { parseQuery } from '../../src/store/query.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { ElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import type { Store } from '../../src/store/types.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { open, scan } from './fixtures.js';

const HOSTS = ['198.18.7.1', '198.18.7.2', '198.18.7.3'];
const PORTS = [
  [22, 'ssh'],
  [80, 'http'],
  [443, 'https'],
] as const;

/** One visit: its host, finish time (ties allowed: latest then goes by scanId) and open ports. */
const visitArbitrary = fc.record({
  host: fc.integer({ min: 0, max: HOSTS.length - 1 }),
  at: fc.integer({ min: 1, max: 40 }),
  ports: fc.subarray([0, 1, 2]),
  event: fc.boolean(),
});

/** What the index must answer as the store does after a backfill. */
async function sameAnswers(record: Store, index: ElasticsearchScanIndex): Promise<void> {
  await index.refresh();
  expect(await index.count(undefined, { view: 'history' })).toBe(await record.count(undefined, { view: 'history' }));
  for (const ip of HOSTS) {
    expect(await index.getLatestScan(ip)).toEqual(await record.getLatestScan(ip));
    expect((await index.hostHistory(ip, { limit: 1000 })).items).toEqual((await record.hostHistory(ip, { limit: 1000 })).items);
  }
  for (const q of ['port:22', 'port:443', 'service:http']) {
    expect((await index.search(parseQuery(q), { limit: 1000 })).items.map((s) => s.scanId)).toEqual(
      (await record.search(parseQuery(q), { limit: 1000 })).items.map((s) => s.scanId),
    );
  }
  expect((await index.readEvents({ limit: 1000 })).events).toEqual((await record.readEvents({ limit: 1000 })).events);
  expect(await index.counts()).toEqual(await record.counts());
}

// Any history a store can hold (visits in any order, ties in time, history thinned by
// retention, events), backfilled in batches of any size into the in-memory double (contract
// tests only): the index then answers as the store does, and a second backfill changes nothing.
describe('index backfill (property)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-backfill-prop-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  it('the index answers as the store does for any history and batch size', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(visitArbitrary, { minLength: 1, maxLength: 14 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        fc.integer({ min: 1, max: 6 }),
        async (visits, drops, batchSize) => {
          const record = await openSqliteStore({ path: join(dir, `p-${n++}.db`) });
          const { client } = createMemoryElasticsearchClient();
          const index = await openElasticsearchScanIndex({ client, prefix: 'prop' });
          try {
            const ids: string[] = [];
            for (const [i, v] of visits.entries()) {
              const id = `v${i}`;
              const ip = HOSTS[v.host]!;
              ids.push(id);
              await record.ingestScan({
                scan: scan(
                  id,
                  ip,
                  v.at * 1000,
                  v.ports.map((k) => open(PORTS[k]![0], PORTS[k]![1])),
                ),
                events: v.event ? [{ kind: 'service-new', at: v.at * 1000, ip, scanId: id, tags: [], port: 22 }] : [],
              });
            }
            // Retention thins history (a host's latest is never deleted; the store refuses it).
            if (drops.length > 0) await record.deleteHistory(drops.map((d) => ids[d % ids.length]!));
            await backfillIndex(record, index, { batchSize });
            await sameAnswers(record, index);
            await backfillIndex(record, index, { batchSize: batchSize + 1 });
            await sameAnswers(record, index);
          } finally {
            await index.close();
            await record.close();
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
