import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import type { Store } from '../../src/store/types.js';
import { describeCoordinationConformance } from './coordination-conformance.js';
import { freshPerTest } from './close-after-each.js';
import { lease, open, scan } from './fixtures.js';
import { describeIndexConformance } from './index-conformance.js';

export { lease, open, scan } from './fixtures.js';

/**
 * The whole store contract: the coordination suite, the index suite, and the ingest that spans
 * both (a result, its lease and its follow-up work in one write). Every composite Store runs it:
 * `describeStoreConformance('sqlite', () => openSqliteStore({ path }))`. The factory must return
 * a fresh, empty store on every call.
 */
export function describeStoreConformance(name: string, openStore: () => Promise<Store>, options: { learningQueue?: boolean } = {}): void {
  describeCoordinationConformance(name, openStore);
  describeIndexConformance(name, openStore);
  describe(`store conformance (ingest across both): ${name}`, () => {
    const fresh = freshPerTest(openStore);

    it('completes the lease and appends events in the same ingest', async () => {
      const store = await fresh();
      await store.putLease(lease('l1', '198.18.0.1', 'a1', 1000));
      const result = await store.ingestScan({
        scan: scan('s1', '198.18.0.1', 500, [open(22, 'ssh')]),
        leaseId: 'l1',
        events: [{ kind: 'service-new', at: 500, ip: '198.18.0.1', scanId: 's1', tags: [], port: 22, detail: { service: 'ssh' } }],
      });
      expect(result).toEqual({ inserted: true, latest: true, lease: lease('l1', '198.18.0.1', 'a1', 1000) });
      expect(await store.getLease('l1')).toBeUndefined();
      const { events } = await store.readEvents();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ kind: 'service-new', port: 22, detail: { service: 'ssh' } });
    });

    it('queues the follow-up work of an ingest only when the scan is inserted, ahead of the cycle and of rescans queued before it', async () => {
      const store = await fresh();
      // A claimed block of the cycle (as several coordinators claim it) and a rescan, queued first.
      const block = Array.from({ length: 100 }, (_, i) => ({
        ip: `198.18.1.${i}`,
        tags: [],
        reason: 'cycle' as const,
        enqueuedAt: 1,
        cycle: 3,
      }));
      await store.putDocument('coordinator', 'cycle', { position: 100 }, { at: 1, enqueue: block });
      await store.enqueueWork([{ ip: '198.18.0.9', tags: [], reason: 'manual', enqueuedAt: 1 }]);
      await store.putLease(lease('l1', '198.18.0.1', 'a1', 1000));
      const followUp = {
        ip: '198.18.0.1',
        tags: ['dmz'],
        reason: 'followup' as const,
        enqueuedAt: 2,
        portRanges: '8080,8443',
        session: { round: 1 },
        round: 1,
        cycle: 3,
      };
      const first = await store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, [open(22, 'ssh')]), leaseId: 'l1', enqueue: [followUp] });
      expect(first).toMatchObject({ inserted: true, latest: true, lease: { id: 'l1' } });
      expect(first.queued).toHaveLength(1);
      expect(first.queued![0]).toMatchObject(followUp);
      // A duplicate submission of the same result queues nothing more.
      const again = await store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, [open(22, 'ssh')]), leaseId: 'l1', enqueue: [followUp] });
      expect(again).toEqual({ inserted: false, latest: false });
      const queued = await store.listQueuedWork();
      expect(queued.map((q) => [q.ip, q.reason])).toEqual([
        ['198.18.0.1', 'followup'],
        ['198.18.0.9', 'manual'],
        ...block.map((b) => [b.ip, 'cycle']),
      ]);
      expect(queued[0]).toEqual(first.queued![0]);
      expect(await store.ingestScan({ scan: scan('s2', '198.18.0.2', 500, []) })).toEqual({ inserted: true, latest: true });
      expect(await store.countQueuedWork()).toBe(102);
      // The visit's next round is what the next lease request gets, not the 100 addresses before it.
      expect(await store.dequeueWork(1)).toEqual([first.queued![0]]);
      expect((await store.dequeueWork(2)).map((q) => q.ip)).toEqual(['198.18.0.9', '198.18.1.0']);
    });

    it.skipIf(options.learningQueue === false)('queues a finished visit for the learner only with an inserted scan', async () => {
      const store = await fresh();
      const learn = [{ key: 'dmz', result: { ip: '198.18.0.1', open: [22] }, at: 500 }];
      expect(await store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, [open(22, 'ssh')]), learn })).toMatchObject({ inserted: true });
      expect(await store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, [open(22, 'ssh')]), learn })).toMatchObject({ inserted: false });
      const first = await store.readLearning(undefined);
      expect(first.items.map(({ position: _p, ...item }) => item)).toEqual(learn);
      // The next window starts where this one ended: nothing twice.
      expect((await store.readLearning(first.cursor)).items).toEqual([]);
      await store.ingestScan({ scan: scan('s2', '198.18.0.2', 600, []), learn: [{ key: '', result: { ip: '198.18.0.2' }, at: 600 }] });
      const second = await store.readLearning(first.cursor);
      expect(second.items.map((i) => i.key)).toEqual(['']);
      expect(BigInt(second.items[0]!.position) >= BigInt(first.cursor)).toBe(true);
      expect(await store.pruneLearning(second.cursor)).toBe(2);
      expect((await store.readLearning(undefined)).items).toEqual([]);
    });

    it('stores nothing of an ingest whose follow-up work is malformed', async () => {
      const store = await fresh();
      const bad = { ip: '198.18.0.300', tags: [], reason: 'followup' as const, enqueuedAt: 2 };
      await expect(store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, []), enqueue: [bad] })).rejects.toSatisfy(
        (e) => isPortbanditError(e, 'PB_ERR_ADDRESS') && e.where === 'enqueue.ip',
      );
      expect((await store.counts()).scans).toBe(0);
      expect(await store.countQueuedWork()).toBe(0);
    });
  });
}
