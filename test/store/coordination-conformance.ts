import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isPortbanditError } from '../../src/core/errors.js';
import type { CoordinationStore, Lease, Store } from '../../src/store/types.js';
import { closeAfterEach, freshPerTest } from './close-after-each.js';
import { lease, open, scan } from './fixtures.js';

/**
 * The coordination store contract (scope, documents, agents, tokens, leases, work queue), as one
 * suite every implementation runs: `describeCoordinationConformance('postgres', open)`. The
 * factory must return a fresh, empty store on every call.
 */
export function describeCoordinationConformance<S extends CoordinationStore>(name: string, openStore: () => Promise<S>): void {
  describe(`coordination store conformance: ${name}`, () => {
    const fresh = freshPerTest(openStore);

    describe('scope and blocklist', () => {
      it('adds, upserts, removes and replaces entries and bumps the version only on change', async () => {
        const store = await fresh();
        expect(await store.getScopeVersion()).toBe(0);
        const v1 = await store.addScopeEntries(
          'scope',
          [
            { range: '198.18.0.0/24', tags: ['dmz'] },
            { range: '198.18.1.0/24', tags: [] },
          ],
          1000,
        );
        expect(v1).toBe(1);
        expect(await store.addScopeEntries('scope', [{ range: '198.18.0.0/24', tags: ['dmz'] }], 2000)).toBe(1);
        expect(await store.addScopeEntries('scope', [{ range: '198.18.0.0/24', tags: ['dmz', 'web'] }], 3000)).toBe(2);
        await store.addScopeEntries('blocklist', [{ range: '198.18.0.7', tags: [] }], 3000);
        const scope = await store.listScope('scope');
        expect(scope.version).toBe(3);
        expect(scope.entries).toEqual([
          { range: '198.18.0.0/24', tags: ['dmz', 'web'], addedAt: 1000 },
          { range: '198.18.1.0/24', tags: [], addedAt: 1000 },
        ]);
        expect((await store.listScope('blocklist')).entries.map((e) => e.range)).toEqual(['198.18.0.7']);
        expect(await store.removeScopeEntries('scope', ['198.18.1.0/24', '198.18.9.0/24'])).toEqual({ removed: 1, version: 4 });
        expect(await store.removeScopeEntries('scope', ['198.18.9.0/24'])).toEqual({ removed: 0, version: 4 });
        expect(await store.replaceScope('scope', [{ range: '198.18.2.0/23', tags: ['lab'] }], 5000)).toBe(5);
        expect((await store.listScope('scope')).entries).toEqual([{ range: '198.18.2.0/23', tags: ['lab'], addedAt: 5000 }]);
        expect((await store.listScope('blocklist')).entries).toHaveLength(1);
      });
    });

    describe('documents', () => {
      it('stores JSON documents with increasing revisions and rejects a stale expected revision', async () => {
        const store = await fresh();
        expect(await store.getDocument('policies', 'dmz')).toBeUndefined();
        const first = await store.putDocument('policies', 'dmz', { strategy: 'adaptive', budget: 100 }, { at: 10, expectedRevision: 0 });
        expect(first).toEqual({ key: 'dmz', value: { strategy: 'adaptive', budget: 100 }, revision: 1, updatedAt: 10 });
        await expect(store.putDocument('policies', 'dmz', { x: 1 }, { at: 11, expectedRevision: 0 })).rejects.toSatisfy((e) =>
          isPortbanditError(e, 'PB_ERR_CONFLICT'),
        );
        const second = await store.putDocument('policies', 'dmz', { strategy: 'fixed' }, { at: 12, expectedRevision: 1 });
        expect(second.revision).toBe(2);
        await store.putDocument('policies', '', { strategy: 'adaptive' }, { at: 13 });
        await store.putDocument('strategyStates', 'dmz/adaptive', { counts: [1, 2, 3] }, { at: 14 });
        expect((await store.listDocuments('policies')).map((d) => [d.key, d.revision])).toEqual([
          ['', 1],
          ['dmz', 2],
        ]);
        expect(await store.getDocument('strategyStates', 'dmz/adaptive')).toMatchObject({ value: { counts: [1, 2, 3] }, revision: 1 });
        expect(await store.getDocument('coordinator', 'dmz/adaptive')).toBeUndefined();
        expect(await store.deleteDocument('policies', 'dmz')).toBe(true);
        expect(await store.deleteDocument('policies', 'dmz')).toBe(false);
        expect(await store.getDocument('policies', 'dmz')).toBeUndefined();
      });

      it('refuses a value with no JSON form (PB_ERR_DOCUMENT_VALUE, naming the document) and keeps what was stored', async () => {
        const store = await fresh();
        await store.putDocument('policies', 'dmz', { strategy: 'fixed' }, { at: 10 });
        for (const value of [undefined, () => 1, Symbol('x')]) {
          const error = await store.putDocument('policies', 'dmz', value, { at: 11 }).catch((e: unknown) => e);
          expect(isPortbanditError(error, 'PB_ERR_DOCUMENT_VALUE')).toBe(true);
          expect((error as Error).message).toContain('policies/dmz');
        }
        expect(await store.getDocument('policies', 'dmz')).toMatchObject({ value: { strategy: 'fixed' }, revision: 1 });
      });
    });

    describe('agents and admin tokens', () => {
      it('registers agents, finds them by token hash and accumulates activity', async () => {
        const store = await fresh();
        const agent = await store.createAgent({ id: 'a1', name: 'agent one', tokenHash: 'h1', createdAt: 100 });
        expect(agent).toEqual({
          id: 'a1',
          name: 'agent one',
          tokenHash: 'h1',
          createdAt: 100,
          version: undefined,
          lastSeenAt: undefined,
          counters: {},
        });
        await expect(store.createAgent({ id: 'a1', name: 'dup', tokenHash: 'h2', createdAt: 100 })).rejects.toSatisfy((e) =>
          isPortbanditError(e, 'PB_ERR_CONFLICT'),
        );
        await expect(store.createAgent({ id: 'a2', name: 'dup', tokenHash: 'h1', createdAt: 100 })).rejects.toSatisfy((e) =>
          isPortbanditError(e, 'PB_ERR_CONFLICT'),
        );
        expect((await store.findAgentByTokenHash('h1'))?.id).toBe('a1');
        expect(await store.findAgentByTokenHash('nope')).toBeUndefined();
        await store.recordAgentActivity('a1', { at: 500, version: '0.1.0', increments: { workItems: 2 } });
        const after = await store.recordAgentActivity('a1', { at: 400, increments: { workItems: 1, results: 1 } });
        expect(after).toMatchObject({ lastSeenAt: 500, version: '0.1.0', counters: { workItems: 3, results: 1 } });
        await expect(store.recordAgentActivity('ghost', { at: 1 })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_NOT_FOUND'));
        await store.createAgent({ id: 'a0', name: 'zero', tokenHash: 'h0', createdAt: 1, version: '0.0.9' });
        expect((await store.listAgents()).map((a) => a.id)).toEqual(['a0', 'a1']);
        expect(await store.deleteAgent('a1')).toBe(true);
        expect(await store.findAgentByTokenHash('h1')).toBeUndefined();
        expect(await store.getAgent('a0')).toMatchObject({ version: '0.0.9' });
      });

      it('stores admin tokens by hash only', async () => {
        const store = await fresh();
        await store.createAdminToken({ id: 't1', name: 'ops', tokenHash: 'sha256:x', createdAt: 5 });
        await expect(store.createAdminToken({ id: 't2', name: 'ops', tokenHash: 'sha256:x', createdAt: 5 })).rejects.toSatisfy((e) =>
          isPortbanditError(e, 'PB_ERR_CONFLICT'),
        );
        expect(await store.findAdminTokenByHash('sha256:x')).toEqual({ id: 't1', name: 'ops', tokenHash: 'sha256:x', createdAt: 5 });
        expect(await store.listAdminTokens()).toHaveLength(1);
        expect(await store.deleteAdminToken('t1')).toBe(true);
        expect(await store.findAdminTokenByHash('sha256:x')).toBeUndefined();
      });
    });

    describe('leases and the work queue', () => {
      it('completes a lease once, so a duplicate submission finds nothing', async () => {
        const store = await fresh();
        await store.putLease(lease('l1', '198.18.0.1', 'a1', 1000));
        await expect(store.putLease(lease('l1', '198.18.0.2', 'a1', 1000))).rejects.toSatisfy((e) =>
          isPortbanditError(e, 'PB_ERR_CONFLICT'),
        );
        expect(await store.getLease('l1')).toEqual(lease('l1', '198.18.0.1', 'a1', 1000));
        expect(await store.completeLease('l1')).toEqual(lease('l1', '198.18.0.1', 'a1', 1000));
        expect(await store.completeLease('l1')).toBeUndefined();
        expect(await store.countLeases()).toBe(0);
      });

      it("keeps a lease's request key (the agent's name for the request that leased it)", async () => {
        const store = await fresh();
        const keyed = { ...lease('l1', '198.18.0.1', 'a1', 1000), requestKey: 'k_0123456789abcdef' };
        await store.putLease(keyed);
        await store.putLease(lease('l2', '198.18.0.2', 'a1', 1000));
        expect(await store.getLease('l1')).toEqual(keyed);
        expect((await store.listLeases({ agentId: 'a1' })).map((l) => l.requestKey)).toEqual(['k_0123456789abcdef', undefined]);
      });

      it('lists, counts and renews leases and takes expired ones oldest first', async () => {
        const store = await fresh();
        await store.putLease(lease('l1', '198.18.0.1', 'a1', 3000));
        await store.putLease(lease('l2', '198.18.0.2', 'a2', 1000));
        await store.putLease(lease('l3', '198.18.0.3', 'a1', 2000));
        expect((await store.listLeases()).map((l) => l.id)).toEqual(['l2', 'l3', 'l1']);
        expect((await store.listLeases({ agentId: 'a1' })).map((l) => l.id)).toEqual(['l3', 'l1']);
        expect((await store.listLeases({ ip: '198.18.0.2' })).map((l) => l.id)).toEqual(['l2']);
        expect(await store.countLeases({ agentId: 'a1' })).toBe(2);
        expect(await store.countLeases({ liveAt: 2000 })).toBe(1);
        expect(await store.countLeases({ liveAt: 999 })).toBe(3);
        expect(await store.countLeases({ agentId: 'a1', liveAt: 2000 })).toBe(1);
        expect(await store.renewLease('l3', 5000)).toBe(true);
        expect(await store.renewLease('nope', 5000)).toBe(false);
        expect((await store.getLease('l3'))?.deadline).toBe(5000);
        const expired = await store.takeExpiredLeases(3000, 10);
        expect(expired.map((l) => l.id)).toEqual(['l2', 'l1']);
        expect((await store.listLeases()).map((l) => l.id)).toEqual(['l3']);
        expect(await store.takeExpiredLeases(3000, 10)).toEqual([]);
      });

      it('requeues expired leases ahead of manual rescans, first in first out within each', async () => {
        const store = await fresh();
        const [manual] = await store.enqueueWork([{ ip: '198.18.0.9', tags: ['dmz'], reason: 'manual', enqueuedAt: 1 }]);
        expect(manual).toMatchObject({ ip: '198.18.0.9', reason: 'manual' });
        await store.putLease({ ...lease('l1', '198.18.0.1', 'a1', 1000), cycle: 4 });
        await store.putLease({ ...lease('l2', '198.18.0.2', 'a1', 1500), cycle: 4 });
        await store.takeExpiredLeases(2000, 10, { requeue: true });
        await store.enqueueWork([{ ip: '198.18.0.10', tags: [], reason: 'manual', enqueuedAt: 3 }]);
        const queued = await store.listQueuedWork();
        expect(queued.map((q) => [q.ip, q.reason])).toEqual([
          ['198.18.0.1', 'expired'],
          ['198.18.0.2', 'expired'],
          ['198.18.0.9', 'manual'],
          ['198.18.0.10', 'manual'],
        ]);
        expect(queued[0]).toMatchObject({ portRanges: '22,80,443', session: { round: 0 }, round: 0, cycle: 4, tags: ['dmz'] });
        expect(await store.removeQueuedWork(queued[3]!.id)).toBe(true);
        expect(await store.removeQueuedWork(queued[3]!.id)).toBe(false);
        const head = await store.dequeueWork(1);
        expect(head.map((q) => q.ip)).toEqual(['198.18.0.1']);
        expect((await store.dequeueWork(5)).map((q) => q.ip)).toEqual(['198.18.0.2', '198.18.0.9']);
        expect(await store.dequeueWork(5)).toEqual([]);
      });

      it('serves a follow-up round queued after a claimed block of the cycle before the block, also to an agent of a group', async () => {
        const store = await fresh();
        const fresh500 = Array.from({ length: 500 }, (_, i) => ({
          ip: `198.18.${1 + (i >> 8)}.${i & 255}`,
          tags: [],
          reason: 'cycle' as const,
          enqueuedAt: 1,
          cycle: 1,
        }));
        await store.putDocument('coordinator', 'cycle', { position: 500 }, { at: 1, expectedRevision: 0, enqueue: fresh500 });
        const followUp = (n: number, groups?: string[]) => ({
          ip: `198.18.0.${n}`,
          tags: [],
          reason: 'followup' as const,
          enqueuedAt: 2,
          portRanges: '8080',
          session: { round: 1 },
          round: 1,
          cycle: 1,
          ...(groups ? { groups } : {}),
        });
        await store.enqueueWork([followUp(1), followUp(2, ['internal'])]);
        await store.enqueueWork([{ ip: '198.18.0.9', tags: [], reason: 'manual', enqueuedAt: 3 }]);
        await store.enqueueWork([followUp(3)]);
        expect((await store.listQueuedWork(5)).map((q) => [q.ip, q.reason])).toEqual([
          ['198.18.0.1', 'followup'],
          ['198.18.0.2', 'followup'],
          ['198.18.0.3', 'followup'],
          ['198.18.0.9', 'manual'],
          ['198.18.1.0', 'cycle'],
        ]);
        expect((await store.dequeueWorkFor(2, ['internal'])).map((q) => q.ip)).toEqual(['198.18.0.1', '198.18.0.2']);
        expect((await store.dequeueWork(3)).map((q) => q.ip)).toEqual(['198.18.0.3', '198.18.0.9', '198.18.1.0']);
        expect(await store.countQueuedWork()).toBe(499);
      });

      it('serves the follow-up rounds of visits that found nothing (silent) after those that answered, with the manual rescans', async () => {
        const store = await fresh();
        const round = (n: number, silent: boolean) => ({
          ip: `198.18.0.${n}`,
          tags: [],
          reason: 'followup' as const,
          enqueuedAt: n,
          portRanges: '1001-65535',
          round: 1,
          ...(silent ? { silent: true } : {}),
        });
        await store.enqueueWork([{ ip: '198.18.1.1', tags: [], reason: 'cycle', enqueuedAt: 0, cycle: 1 }]);
        await store.enqueueWork([round(1, true), round(2, true)]);
        await store.enqueueWork([{ ip: '198.18.0.9', tags: [], reason: 'manual', enqueuedAt: 3 }]);
        await store.enqueueWork([round(3, false), round(4, true), round(5, false)]);
        expect((await store.listQueuedWork(10)).map((q) => q.ip)).toEqual([
          '198.18.0.3',
          '198.18.0.5',
          '198.18.0.1',
          '198.18.0.2',
          '198.18.0.9',
          '198.18.0.4',
          '198.18.1.1',
        ]);
        const served = await store.dequeueWork(3);
        expect(served.map((q) => [q.ip, q.silent ?? false])).toEqual([
          ['198.18.0.3', false],
          ['198.18.0.5', false],
          ['198.18.0.1', true],
        ]);
      });
    });

    describe('several coordinators', () => {
      it('creates the first admin token only while none exists', async () => {
        const store = await fresh();
        expect(await store.createFirstAdminToken({ id: 't1', name: 'bootstrap', tokenHash: 'h1', createdAt: 1 })).toBe(true);
        expect(await store.createFirstAdminToken({ id: 't2', name: 'bootstrap', tokenHash: 'h2', createdAt: 2 })).toBe(false);
        expect((await store.listAdminTokens()).map((t) => t.id)).toEqual(['t1']);
      });

      it('writes a document and the work it enqueues together, or neither on a stale revision', async () => {
        const store = await fresh();
        const block = [0, 1, 2].map((i) => ({ ip: `198.18.0.${i}`, tags: ['lab'], reason: 'cycle' as const, enqueuedAt: 5, cycle: 1 }));
        const doc = await store.putDocument('coordinator', 'cycle', { position: 3 }, { at: 5, expectedRevision: 0, enqueue: block });
        expect(doc.revision).toBe(1);
        expect((await store.listQueuedWork()).map((q) => [q.ip, q.reason, q.cycle])).toEqual(block.map((b) => [b.ip, 'cycle', 1]));
        await expect(
          store.putDocument('coordinator', 'cycle', { position: 6 }, { at: 6, expectedRevision: 0, enqueue: block }),
        ).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_CONFLICT'));
        expect(await store.countQueuedWork()).toBe(3);
        expect((await store.getDocument('coordinator', 'cycle'))?.value).toEqual({ position: 3 });
      });

      it('holds a role for the handle that took it', async () => {
        const store = await fresh();
        expect(await store.holdRole('learner')).toBe(true);
        expect(await store.holdRole('learner')).toBe(true);
        expect((await store.readLearning(undefined)).items).toEqual([]);
      });
    });

    describe('properties', () => {
      it('leases and the queue behave like a simple model under random operations', async () => {
        type Op =
          | { op: 'put'; id: number; deadline: number }
          | { op: 'complete'; id: number }
          | { op: 'expire'; now: number; requeue: boolean }
          | { op: 'enqueue'; host: number }
          | { op: 'dequeue'; n: number };
        const opArb: fc.Arbitrary<Op> = fc.oneof(
          fc.record({ op: fc.constant('put' as const), id: fc.integer({ min: 0, max: 5 }), deadline: fc.integer({ min: 0, max: 9 }) }),
          fc.record({ op: fc.constant('complete' as const), id: fc.integer({ min: 0, max: 5 }) }),
          fc.record({ op: fc.constant('expire' as const), now: fc.integer({ min: 0, max: 9 }), requeue: fc.boolean() }),
          fc.record({ op: fc.constant('enqueue' as const), host: fc.integer({ min: 0, max: 9 }) }),
          fc.record({ op: fc.constant('dequeue' as const), n: fc.integer({ min: 1, max: 3 }) }),
        );
        await fc.assert(
          fc.asyncProperty(fc.array(opArb, { maxLength: 20 }), async (ops) => {
            const store = await fresh();
            const leases = new Map<string, Lease>();
            // The queue by class: expired leases ahead of manual rescans, each first in first out.
            const expiredQueue: string[] = [];
            const manualQueue: string[] = [];
            const queue = (): string[] => [...expiredQueue, ...manualQueue];
            for (const o of ops) {
              if (o.op === 'put') {
                const l = lease(`l${o.id}`, `198.18.9.${o.id}`, 'a1', o.deadline);
                if (leases.has(l.id)) {
                  await expect(store.putLease(l)).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_CONFLICT'));
                } else {
                  await store.putLease(l);
                  leases.set(l.id, l);
                }
              } else if (o.op === 'complete') {
                const want = leases.get(`l${o.id}`);
                leases.delete(`l${o.id}`);
                expect(await store.completeLease(`l${o.id}`)).toEqual(want);
              } else if (o.op === 'expire') {
                const due = [...leases.values()]
                  .filter((l) => l.deadline <= o.now)
                  .sort((a, b) => a.deadline - b.deadline || (a.id < b.id ? -1 : 1));
                for (const l of due) {
                  leases.delete(l.id);
                  if (o.requeue) expiredQueue.push(l.ip);
                }
                expect((await store.takeExpiredLeases(o.now, 100, { requeue: o.requeue })).map((l) => l.id)).toEqual(due.map((l) => l.id));
              } else if (o.op === 'enqueue') {
                await store.enqueueWork([{ ip: `198.18.8.${o.host}`, tags: [], reason: 'manual', enqueuedAt: 0 }]);
                manualQueue.push(`198.18.8.${o.host}`);
              } else {
                const head = queue().slice(0, o.n);
                const fromExpired = Math.min(o.n, expiredQueue.length);
                expiredQueue.splice(0, fromExpired);
                manualQueue.splice(0, head.length - fromExpired);
                expect((await store.dequeueWork(o.n)).map((q) => q.ip)).toEqual(head);
              }
              expect((await store.listLeases()).map((l) => l.id).sort()).toEqual([...leases.keys()].sort());
              expect(await store.countLeases()).toBe(leases.size);
            }
            expect((await store.listQueuedWork()).map((q) => q.ip)).toEqual(queue());
            expect(await store.countQueuedWork()).toBe(queue().length);
          }),
          { numRuns: 25 },
        );
      });

      it('canonicalises lease addresses on the way in and on lookups', async () => {
        const store = await fresh();
        await store.putLease(lease('l6', '2001:DB8::8', 'a1', 5));
        expect((await store.listLeases({ ip: '2001:db8::8' })).map((l) => l.ip)).toEqual(['2001:db8::8']);
      });
    });
  });
}

/** A store opened with `outbox: true`, and a way to open the same data again (a restarted process). */
export interface OutboxFixture {
  readonly store: Store;
  reopen(): Promise<Store>;
}

/**
 * The outbox (CoordinationStore.readOutbox): every stored visit, event append and history
 * deletion is recorded in the same transaction as the write, and stays until acknowledged, also
 * across a restart. Run on every Store that can be opened with `outbox: true`.
 */
export function describeOutboxConformance(
  name: string,
  openWithOutbox: () => Promise<OutboxFixture>,
  openWithout: () => Promise<Store>,
): void {
  describe(`coordination store conformance (outbox): ${name}`, () => {
    const keep = closeAfterEach({ tolerant: true });
    const fresh = async (): Promise<OutboxFixture> => {
      const fixture = await openWithOutbox();
      return { store: keep(fixture.store), reopen: async () => keep(await fixture.reopen()) };
    };
    const event = (scanId: string, port: number) => ({ kind: 'service-new' as const, at: 500, ip: '198.18.0.1', scanId, tags: [], port });

    it('records an ingested visit with its events in the ingest that completes the lease, queues the follow-up and the learning item', async () => {
      const { store } = await fresh();
      await store.putLease(lease('l1', '198.18.0.1', 'a1', 1000));
      const followUp = { ip: '198.18.0.1', tags: [], reason: 'followup' as const, enqueuedAt: 2, portRanges: '8080', round: 1 };
      const first = scan('l1', '198.18.0.1', 500, [open(22, 'ssh')], { rounds: ['l1'] });

      const result = await store.ingestScan({
        scan: first,
        leaseId: 'l1',
        events: [event('l1', 22)],
        enqueue: [followUp],
        learn: [{ key: '', result: {}, at: 500 }],
      });

      expect(result).toMatchObject({ inserted: true, latest: true, lease: { id: 'l1' } });
      const records = await store.readOutbox(100);
      const { events } = await store.readEvents();
      expect(records).toEqual([{ id: records[0]!.id, kind: 'visit', scan: first, latest: true, events }]);
      expect(events.map((e) => e.port)).toEqual([22]);
      expect(await store.countOutbox()).toBe(1);
      expect(await store.getLease('l1')).toBeUndefined();
      expect(await store.countQueuedWork()).toBe(1);
    });

    it('records nothing for a duplicate, a record per later round, and keeps records until acknowledged', async () => {
      const { store } = await fresh();
      await store.putLease(lease('l1', '198.18.0.1', 'a1', 1000));
      const first = scan('l1', '198.18.0.1', 500, [open(22, 'ssh')], { rounds: ['l1'] });
      const second = scan('l1', '198.18.0.1', 900, [open(22, 'ssh'), open(80, 'http')], { rounds: ['l1', 'l2'] });
      await store.ingestScan({ scan: first, leaseId: 'l1' });
      expect(await store.ingestScan({ scan: first, leaseId: 'l1' })).toEqual({ inserted: false, latest: false });
      await store.putLease(lease('l2', '198.18.0.1', 'a1', 2000));
      await store.ingestScan({ scan: second, leaseId: 'l2', replace: true, events: [event('l1', 80)] });
      expect(await store.ingestScan({ scan: second, leaseId: 'l2', replace: true })).toEqual({ inserted: false, latest: false });
      // An older visit of the host: stored, not its latest.
      await store.ingestScan({ scan: scan('old', '198.18.0.1', 100, []) });

      const records = await store.readOutbox(100);
      expect(
        records.map((r) => (r.kind === 'visit' ? [r.scan.scanId, r.scan.rounds?.length ?? 1, r.latest, r.events.length] : r.kind)),
      ).toEqual([
        ['l1', 1, true, 0],
        ['l1', 2, true, 1],
        ['old', 1, false, 0],
      ]);
      const ids = records.map((r) => BigInt(r.id));
      expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
      expect((await store.readOutbox(2)).map((r) => r.id)).toEqual(records.slice(0, 2).map((r) => r.id));

      expect(await store.ackOutbox([records[0]!.id, '999999', 'not-an-id'])).toBe(1);
      expect((await store.readOutbox(100)).map((r) => r.id)).toEqual(records.slice(1).map((r) => r.id));
      expect(await store.ackOutbox([records[0]!.id])).toBe(0);
      expect(await store.ackOutbox(records.map((r) => r.id))).toBe(2);
      expect(await store.countOutbox()).toBe(0);
      expect(await store.readOutbox(100)).toEqual([]);
    });

    it('records event appends and history deletions with what they changed', async () => {
      const { store } = await fresh();
      await store.ingestScan({ scan: scan('s1', '198.18.0.1', 100, []) });
      await store.ingestScan({ scan: scan('s2', '198.18.0.1', 200, []) });
      await store.appendEvents([event('s2', 443)]);
      await store.appendEvents([]);
      // s2 is the host's latest: refused, not recorded; an unknown id is not recorded either.
      expect(await store.deleteHistory(['s1', 's2', 'nope'])).toEqual({ deleted: 1, refusedLatest: 1 });
      expect(await store.deleteHistory(['nope'])).toEqual({ deleted: 0, refusedLatest: 0 });

      const records = await store.readOutbox(100);
      const { events } = await store.readEvents();
      expect(records.map(({ id: _id, ...r }) => (r.kind === 'visit' ? r.scan.scanId : r))).toEqual([
        's1',
        's2',
        { kind: 'events', events },
        { kind: 'delete', scanIds: ['s1'] },
      ]);
    });

    it('writes no record for an ingest that fails, and leaves the lease in place', async () => {
      const { store } = await fresh();
      await store.putLease(lease('l1', '198.18.0.1', 'a1', 1000));
      const bad = { ip: '198.18.0.300', tags: [], reason: 'followup' as const, enqueuedAt: 2 };
      await expect(store.ingestScan({ scan: scan('l1', '198.18.0.1', 500, []), leaseId: 'l1', enqueue: [bad] })).rejects.toSatisfy((e) =>
        isPortbanditError(e, 'PB_ERR_ADDRESS'),
      );
      expect(await store.countOutbox()).toBe(0);
      expect(await store.getLease('l1')).toBeDefined();
    });

    it('keeps unacknowledged records across a restart (a feeder killed mid-batch loses nothing)', async () => {
      const fixture = await fresh();
      for (let i = 0; i < 5; i++) await fixture.store.ingestScan({ scan: scan(`s${i}`, `198.18.0.${i + 1}`, 100 + i, [open(22, 'ssh')]) });
      const read = await fixture.store.readOutbox(3);
      await fixture.store.ackOutbox(read.slice(0, 2).map((r) => r.id));
      await fixture.store.close();

      const again = await fixture.reopen();
      const left = await again.readOutbox(100);
      expect(left.map((r) => (r.kind === 'visit' ? r.scan.scanId : r.kind))).toEqual(['s2', 's3', 's4']);
      expect(await again.countOutbox()).toBe(3);
    });

    it('a store opened without the outbox records nothing', async () => {
      const store = keep(await openWithout());
      await store.ingestScan({ scan: scan('s1', '198.18.0.1', 100, []), events: [event('s1', 22)] });
      await store.appendEvents([event('s1', 80)]);
      expect(await store.countOutbox()).toBe(0);
      expect(await store.readOutbox(10)).toEqual([]);
    });
  });
}
