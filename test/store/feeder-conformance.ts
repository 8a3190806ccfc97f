import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { backfillIndex } from '../../src/store/backfill.js';
import { OutboxFeeder } from '../../src/store/outbox-feeder.js';
import { parseQuery } from '../../src/store/query.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { OutboxRecord, Store } from '../../src/store/types.js';
import { closeAfterEach } from './close-after-each.js';
import { lease, open, scan } from './fixtures.js';

/** Six hosts, two visits each with events, a later round of one, an event append and a deletion. */
export async function history(record: Store): Promise<void> {
  for (let h = 1; h <= 6; h++) {
    const ip = `198.18.7.${h}`;
    for (const [v, at] of [
      [0, 1000],
      [1, 2000],
    ] as const) {
      const id = `v${h}-${v}`;
      await record.ingestScan({
        scan: scan(id, ip, at + h, [open(22, 'ssh'), ...(v === 1 && h % 2 === 0 ? [open(80, 'http')] : [])], { rounds: [id] }),
        events: [{ kind: 'service-new', at: at + h, ip, scanId: id, tags: [], port: 22 }],
      });
    }
  }
  await record.putLease(lease('r2', '198.18.7.1', 'a1', 9000));
  await record.ingestScan({
    scan: scan('v1-1', '198.18.7.1', 2500, [open(22, 'ssh'), open(443, 'https')], { rounds: ['v1-1', 'r2'] }),
    leaseId: 'r2',
    replace: true,
    events: [{ kind: 'service-new', at: 2500, ip: '198.18.7.1', scanId: 'v1-1', tags: [], port: 443 }],
  });
  await record.appendEvents([{ kind: 'host-gone', at: 3000, ip: '198.18.7.6', scanId: 'v6-1', tags: [] }]);
  expect(await record.deleteHistory(['v3-0'])).toEqual({ deleted: 1, refusedLatest: 0 });
}

/** The index answers as the coordination store does. */
export async function sameAnswers(record: Store, index: ElasticsearchScanIndex): Promise<void> {
  await index.refresh();
  expect(await index.count(undefined, { view: 'history' })).toBe(await record.count(undefined, { view: 'history' }));
  for (let h = 1; h <= 6; h++) {
    const ip = `198.18.7.${h}`;
    expect(await index.getLatestScan(ip)).toEqual(await record.getLatestScan(ip));
    expect((await index.hostHistory(ip)).items).toEqual((await record.hostHistory(ip)).items);
  }
  for (const q of ['port:443', 'port:80', 'service:ssh']) {
    expect((await index.search(parseQuery(q))).items.map((s) => s.scanId)).toEqual(
      (await record.search(parseQuery(q))).items.map((s) => s.scanId),
    );
  }
  expect((await index.readEvents({ limit: 1000 })).events).toEqual((await record.readEvents({ limit: 1000 })).events);
  expect(await index.counts()).toEqual(await record.counts());
}

/**
 * The outbox feeder against an Elasticsearch index (the in-memory double, or a real cluster in
 * elasticsearch-real.test.ts): a real SQLite coordination store with its outbox, fed in batches;
 * afterwards the index answers as the coordination store does. And a feeder killed after the
 * index took a batch but before the acknowledgement: the reopened store replays it, and the index
 * ends the same, nothing lost and nothing twice. And a store written with no outbox, backfilled
 * (`portbandit index backfill`): the index answers as the store does, as after the feed; a
 * second backfill changes nothing.
 */
export function describeFeederOnCluster(name: string, openIndex: () => Promise<ElasticsearchScanIndex>): void {
  describe(`outbox feeder into ${name}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-feeder-'));
    let n = 0;
    const keep = closeAfterEach({ tolerant: true });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const openRecord = async (path: string): Promise<Store> => {
      return keep(await openSqliteStore({ path, outbox: true }));
    };
    const fresh = async () => {
      const path = join(dir, `f-${n++}.db`);
      const index = keep(await openIndex());
      return { path, index, record: await openRecord(path) };
    };

    it('feeds visits, later rounds, events and deletions in batches; the index then answers as the coordination store', async () => {
      const { record, index } = await fresh();
      await history(record);
      const waiting = await record.countOutbox();
      expect(waiting).toBe(12 + 1 + 1 + 1);
      const feeder = new OutboxFeeder(record, index, { batchSize: 4 });

      expect(await feeder.drain()).toBe(waiting);

      expect(await record.countOutbox()).toBe(0);
      expect(feeder.status()).toMatchObject({ active: true, fed: waiting, failures: 0 });
      await sameAnswers(record, index);
      expect((await index.getScan('v1-1'))?.rounds).toEqual(['v1-1', 'r2']);
      expect(await index.getScan('v3-0')).toBeUndefined();
    });

    it('a store written without an outbox, backfilled: the index answers as the coordination store; again, nothing changes', async () => {
      const path = join(dir, `b-${n++}.db`);
      const index = keep(await openIndex());
      const plain = keep(await openSqliteStore({ path }));
      await history(plain);
      expect(await plain.countOutbox()).toBe(0);
      const done = await backfillIndex(plain, index, { batchSize: 5 });
      expect(done).toEqual({ visits: 11, latest: 6, events: 14, deleted: 0 });
      await sameAnswers(plain, index);
      expect((await index.getScan('v1-1'))?.rounds).toEqual(['v1-1', 'r2']);

      expect(await backfillIndex(plain, index, { batchSize: 3 })).toEqual(done);
      await sameAnswers(plain, index);
    });

    it('a feeder killed after the index took a batch, before the acknowledgement: the reopened store replays it, nothing lost, nothing twice', async () => {
      const { path, record, index } = await fresh();
      await history(record);
      const total = await record.countOutbox();
      // The "process" dies after the index applied part (then all) of a batch, before acknowledging.
      const dying = (part: number) => ({
        applyOutbox: async (records: readonly OutboxRecord[]) => {
          await index.applyOutbox(records.slice(0, Math.ceil(records.length * part)));
          throw new Error('killed before the acknowledgement');
        },
      });
      await new OutboxFeeder(record, index, { batchSize: 6 }).feedOnce(); // one batch went through
      await expect(new OutboxFeeder(record, dying(0.5), { batchSize: 6 }).feedOnce()).rejects.toThrow(/killed/);
      await expect(new OutboxFeeder(record, dying(1), { batchSize: 6 }).feedOnce()).rejects.toThrow(/killed/);
      expect(await record.countOutbox()).toBe(total - 6);
      await record.close();

      const reopened = await openRecord(path);
      expect(await reopened.countOutbox()).toBe(total - 6);
      expect(await new OutboxFeeder(reopened, index, { batchSize: 6 }).drain()).toBe(total - 6);

      expect(await reopened.countOutbox()).toBe(0);
      await sameAnswers(reopened, index);
    });
  });
}
