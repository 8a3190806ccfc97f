import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isPortbanditError } from '../../src/core/errors.js';
import { matchScan } from '../../src/store/match-scan.js';
import { parseQuery } from '../../src/store/query.js';
import { compareNewestFirst } from '../../src/store/scan-index.js';
import type { QueryNode } from '../../src/store/query-ast.js';
import type { Lease, ScanDocument, ScannedPort, Store } from '../../src/store/types.js';

/**
 * The store contract, as one suite every implementation runs:
 * `describeStoreConformance('sqlite', () => openSqliteStore({ path }))`.
 * The factory must return a fresh, empty store on every call.
 */
export function describeStoreConformance(name: string, openStore: () => Promise<Store>): void {
  describe(`store conformance: ${name}`, () => {
    const opened: Store[] = [];
    const fresh = async (): Promise<Store> => {
      const store = await openStore();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close();
    });

    describe('scope and blocklist', () => {
      it('adds, upserts, removes and replaces entries and bumps the version only on change', async () => {
        const store = await fresh();
        expect(await store.getScopeVersion()).toBe(0);
        const v1 = await store.addScopeEntries('scope', [{ range: '198.18.0.0/24', tags: ['dmz'] }, { range: '198.18.1.0/24', tags: [] }], 1000);
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
        await expect(store.putDocument('policies', 'dmz', { x: 1 }, { at: 11, expectedRevision: 0 })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_CONFLICT'));
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
    });

    describe('agents and admin tokens', () => {
      it('registers agents, finds them by token hash and accumulates activity', async () => {
        const store = await fresh();
        const agent = await store.createAgent({ id: 'a1', name: 'agent one', tokenHash: 'h1', createdAt: 100 });
        expect(agent).toEqual({ id: 'a1', name: 'agent one', tokenHash: 'h1', createdAt: 100, version: undefined, lastSeenAt: undefined, counters: {} });
        await expect(store.createAgent({ id: 'a1', name: 'dup', tokenHash: 'h2', createdAt: 100 })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_CONFLICT'));
        await expect(store.createAgent({ id: 'a2', name: 'dup', tokenHash: 'h1', createdAt: 100 })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_CONFLICT'));
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
        await expect(store.putLease(lease('l1', '198.18.0.2', 'a1', 1000))).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_CONFLICT'));
        expect(await store.getLease('l1')).toEqual(lease('l1', '198.18.0.1', 'a1', 1000));
        expect(await store.completeLease('l1')).toEqual(lease('l1', '198.18.0.1', 'a1', 1000));
        expect(await store.completeLease('l1')).toBeUndefined();
        expect(await store.countLeases()).toBe(0);
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
        expect(await store.renewLease('l3', 5000)).toBe(true);
        expect(await store.renewLease('nope', 5000)).toBe(false);
        expect((await store.getLease('l3'))?.deadline).toBe(5000);
        const expired = await store.takeExpiredLeases(3000, 10);
        expect(expired.map((l) => l.id)).toEqual(['l2', 'l1']);
        expect((await store.listLeases()).map((l) => l.id)).toEqual(['l3']);
        expect(await store.takeExpiredLeases(3000, 10)).toEqual([]);
      });

      it('requeues expired leases into the FIFO queue behind earlier items', async () => {
        const store = await fresh();
        const [manual] = await store.enqueueWork([{ ip: '198.18.0.9', tags: ['dmz'], reason: 'manual', enqueuedAt: 1 }]);
        expect(manual).toMatchObject({ ip: '198.18.0.9', reason: 'manual' });
        await store.putLease({ ...lease('l1', '198.18.0.1', 'a1', 1000), cycle: 4 });
        await store.takeExpiredLeases(2000, 10, { requeue: true });
        await store.enqueueWork([{ ip: '198.18.0.10', tags: [], reason: 'manual', enqueuedAt: 3 }]);
        const queued = await store.listQueuedWork();
        expect(queued.map((q) => [q.ip, q.reason])).toEqual([
          ['198.18.0.9', 'manual'],
          ['198.18.0.1', 'expired'],
          ['198.18.0.10', 'manual'],
        ]);
        expect(queued[1]).toMatchObject({ ports: [22, 80, 443], session: { round: 0 }, round: 0, cycle: 4, tags: ['dmz'] });
        expect(await store.removeQueuedWork(queued[2]!.id)).toBe(true);
        expect(await store.removeQueuedWork(queued[2]!.id)).toBe(false);
        const head = await store.dequeueWork(1);
        expect(head.map((q) => q.ip)).toEqual(['198.18.0.9']);
        expect((await store.dequeueWork(5)).map((q) => q.ip)).toEqual(['198.18.0.1']);
        expect(await store.dequeueWork(5)).toEqual([]);
      });
    });

    describe('scans', () => {
      it('ingests idempotently by scanId and keeps the newest scan as the host latest', async () => {
        const store = await fresh();
        const older = scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]);
        const newer = scan('s2', '198.18.0.1', 2000, [open(22, 'ssh'), open(80, 'http')]);
        expect(await store.ingestScan({ scan: newer })).toEqual({ inserted: true, latest: true });
        expect(await store.ingestScan({ scan: older })).toEqual({ inserted: true, latest: false });
        expect(await store.ingestScan({ scan: { ...older, finishedAt: 9999 } })).toEqual({ inserted: false, latest: false });
        expect(await store.getLatestScan('198.18.0.1')).toEqual(newer);
        expect(await store.getScan('s1')).toEqual(older);
        expect(await store.getScan('nope')).toBeUndefined();
        expect(await store.getLatestScan('198.18.0.2')).toBeUndefined();
        const history = await store.hostHistory('198.18.0.1');
        expect(history.items.map((s) => s.scanId)).toEqual(['s2', 's1']);
        expect(history.total).toBe(2);
        expect((await store.counts()).scans).toBe(2);
      });

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

      it('queues the follow-up work of an ingest only when the scan is inserted', async () => {
        const store = await fresh();
        await store.enqueueWork([{ ip: '198.18.0.9', tags: [], reason: 'manual', enqueuedAt: 1 }]);
        await store.putLease(lease('l1', '198.18.0.1', 'a1', 1000));
        const followUp = { ip: '198.18.0.1', tags: ['dmz'], reason: 'followup' as const, enqueuedAt: 2, ports: [8080, 8443], session: { round: 1 }, round: 1, cycle: 3 };
        const first = await store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, [open(22, 'ssh')]), leaseId: 'l1', enqueue: [followUp] });
        expect(first).toMatchObject({ inserted: true, latest: true, lease: { id: 'l1' } });
        expect(first.queued).toHaveLength(1);
        expect(first.queued![0]).toMatchObject(followUp);
        // A duplicate submission of the same result queues nothing more.
        const again = await store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, [open(22, 'ssh')]), leaseId: 'l1', enqueue: [followUp] });
        expect(again).toEqual({ inserted: false, latest: false });
        const queued = await store.listQueuedWork();
        expect(queued.map((q) => [q.ip, q.reason])).toEqual([
          ['198.18.0.9', 'manual'],
          ['198.18.0.1', 'followup'],
        ]);
        expect(queued[1]).toEqual(first.queued![0]);
        expect(await store.ingestScan({ scan: scan('s2', '198.18.0.2', 500, []) })).toEqual({ inserted: true, latest: true });
        expect(await store.countQueuedWork()).toBe(2);
      });

      it('stores nothing of an ingest whose follow-up work is malformed', async () => {
        const store = await fresh();
        const bad = { ip: '198.18.0.300', tags: [], reason: 'followup' as const, enqueuedAt: 2 };
        await expect(store.ingestScan({ scan: scan('s1', '198.18.0.1', 500, []), enqueue: [bad] })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_ADDRESS') && e.where === 'enqueue.ip');
        expect((await store.counts()).scans).toBe(0);
        expect(await store.countQueuedWork()).toBe(0);
      });

      it('rejects a malformed scan with the field named', async () => {
        const store = await fresh();
        const bad = { ...scan('s1', '198.18.0.1', 1, []), ip: '198.18.0.300' };
        await expect(store.ingestScan({ scan: bad })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_ADDRESS') && e.where === 'scan.ip');
        const bad2 = { ...scan('s1', '198.18.0.1', 1, []), finishedAt: 1.5 };
        await expect(store.ingestScan({ scan: bad2 })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_INVALID_ARGUMENT') && e.where === 'scan.finishedAt');
        expect((await store.counts()).scans).toBe(0);
      });
    });

    describe('search', () => {
      const fixture = buildFixture();
      const latestOf = (): ScanDocument[] => {
        const byIp = new Map<string, ScanDocument>();
        for (const s of fixture) {
          const current = byIp.get(s.ip);
          if (!current || compareNewestFirst(s, current) < 0) byIp.set(s.ip, s);
        }
        return [...byIp.values()].sort(compareNewestFirst);
      };
      const loaded = async (): Promise<Store> => {
        const store = await fresh();
        for (const s of fixture) await store.ingestScan({ scan: s });
        return store;
      };
      const ids = async (store: Store, query: string, view: 'latest' | 'history' = 'latest'): Promise<string[]> =>
        (await store.search(parseQuery(query), { view, limit: 1000 })).items.map((s) => s.scanId);
      const expected = (query: string, view: 'latest' | 'history' = 'latest'): string[] =>
        (view === 'latest' ? latestOf() : [...fixture].sort(compareNewestFirst)).filter((s) => matchScan(s, parseQuery(query))).map((s) => s.scanId);

      it('matches each field as documented in query-ast.ts', async () => {
        const store = await loaded();
        const cases: [string, string[]][] = [
          ['port:22', ['h2b', 'h1b']],
          ['port:8080', ['h4']],
          ['port:25', []], // closed on h3: closed ports never match
          ['service:SSH', ['h2b', 'h1b']],
          ['product:nginx', ['h4', 'h1b']],
          ['product:"Apache httpd"', ['h6']],
          ['version:8.9p1', ['h1b']],
          ['cpe:cpe:/a:openbsd:openssh:8.9p1', ['h1b']],
          ['script:ssl-cert', ['h4']],
          ['tag:dmz', ['h4', 'h2b', 'h1b']],
          ['agent:agent-2', ['h6', 'h5']],
          ['ip:198.18.0.0/24', ['h3', 'h2b', 'h1b']],
          ['ip:198.18.1.4', ['h4']],
          ['ip:2001:db8::/32', ['h6', 'h5']],
          ['ip:2001:db8::5', ['h5']],
          [`ctime:>=${day(3)}`, ['h6', 'h5', 'h4', 'h3']],
          [`ctime:${day(3)}`, ['h3']],
          [`ctime:${day(2)}..${day(4)}`, ['h3', 'h2b', 'h1b']],
          ['OpenSSH Ubuntu', ['h1b']],
          ['"expires 2027"', ['h4']],
          ['-port:22', ['h6', 'h5', 'h4', 'h3']],
          ['port:80 OR port:443', ['h6', 'h4', 'h1b']],
          ['tag:dmz -(service:ssh product:nginx)', ['h4', 'h2b']],
          ['NOT tag:dmz AND NOT ip:2001:db8::/32', ['h3']],
          ['screenshot:true', ['h4']],
          ['screenshot:false tag:dmz', ['h2b', 'h1b']],
          ['screenshot:true OR port:3306', ['h4', 'h3']],
        ];
        for (const [query, want] of cases) {
          expect(await ids(store, query), query).toEqual(want);
          expect(expected(query), `reference semantics for ${query}`).toEqual(want);
        }
        expect(await ids(store, 'port:22', 'history')).toEqual(['h2b', 'h1b', 'h2a', 'h1a']);
        expect(await ids(store, 'screenshot:true', 'history')).toEqual(['h4', 'h1a']);
        expect(await store.count(parseQuery('port:22'), { view: 'history' })).toBe(4);
        expect(await store.count(undefined)).toBe(6);
      });

      it('agrees with the in-memory semantics on random queries', async () => {
        const store = await loaded();
        await fc.assert(
          fc.asyncProperty(queryArbitrary(), fc.constantFrom('latest' as const, 'history' as const), async (query, view) => {
            const got = (await store.search(query, { view, limit: 1000 })).items.map((s) => s.scanId);
            const want = (view === 'latest' ? latestOf() : [...fixture].sort(compareNewestFirst)).filter((s) => matchScan(s, query)).map((s) => s.scanId);
            expect(got).toEqual(want);
          }),
          { numRuns: 150 },
        );
      });

      it('paginates with cursors and offsets without gaps or duplicates', async () => {
        const store = await loaded();
        const all = [...fixture].sort(compareNewestFirst).map((s) => s.scanId);
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.search(undefined, { view: 'history', limit: 3, ...(cursor ? { cursor } : {}) });
          expect(page.total).toBe(fixture.length);
          seen.push(...page.items.map((s) => s.scanId));
          cursor = page.nextCursor;
        } while (cursor);
        expect(seen).toEqual(all);
        const second = await store.search(undefined, { view: 'history', limit: 3, offset: 3 });
        expect(second.items.map((s) => s.scanId)).toEqual(all.slice(3, 6));
        await expect(store.search(undefined, { cursor: 'garbage' })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_INVALID_ARGUMENT'));
        await expect(store.search(undefined, { limit: 0 })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_INVALID_ARGUMENT'));
      });

      it('exports history oldest first within [since, until)', async () => {
        const store = await loaded();
        const exported: string[] = [];
        for await (const s of store.exportHistory({ batchSize: 2 })) exported.push(s.scanId);
        expect(exported).toEqual([...fixture].sort(compareNewestFirst).reverse().map((s) => s.scanId));
        const window: string[] = [];
        for await (const s of store.exportHistory({ since: Date.parse(day(2)), until: Date.parse(day(4)) })) window.push(s.scanId);
        expect(window).toEqual(['h1b', 'h2b', 'h3']);
      });

      it('computes counts, top ports and services over latest-per-host, and scans per hour', async () => {
        const store = await loaded();
        expect(await store.counts()).toEqual({ hosts: 6, scans: 8, events: 0, openPorts: 9 });
        expect(await store.counts({ tag: 'dmz' })).toEqual({ hosts: 3, scans: 5, events: 0, openPorts: 5 });
        expect(await store.topPorts({ limit: 3 })).toEqual([
          { port: 22, hosts: 2 },
          { port: 80, hosts: 2 },
          { port: 443, hosts: 2 },
        ]);
        expect(await store.topPorts({ tag: 'dmz' })).toEqual([
          { port: 22, hosts: 2 },
          { port: 80, hosts: 1 },
          { port: 443, hosts: 1 },
          { port: 8080, hosts: 1 },
        ]);
        expect(await store.topServices({ limit: 2 })).toEqual([
          { service: 'http', hosts: 2 },
          { service: 'ssh', hosts: 2 },
        ]);
        const since = Date.parse(day(1));
        expect(await store.scansPerHour({ since, until: since + 2 * 86_400_000 })).toEqual([
          { hourStart: since + 3_600_000, scans: 2 },
          { hourStart: since + 86_400_000 + 3_600_000, scans: 2 },
        ]);
        expect(await store.scansPerHour({ since, until: since + 2 * 86_400_000, tag: 'lab' })).toEqual([]);
      });
    });

    describe('properties', () => {
      it('latest-per-host does not depend on the order scans arrive in', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.record({ host: fc.integer({ min: 0, max: 3 }), at: fc.integer({ min: 0, max: 5 }), id: fc.integer({ min: 0, max: 40 }) }), { minLength: 1, maxLength: 12 }),
            async (draws) => {
              const store = await fresh();
              const scans = new Map<string, ScanDocument>();
              for (const d of draws) {
                const id = `p${d.id}`;
                // A scan id names one scan: the first draw of an id wins, as in the store.
                if (!scans.has(id)) scans.set(id, scan(id, `198.18.7.${d.host}`, 1000 + d.at, [open(22 + d.host, 'svc')]));
                await store.ingestScan({ scan: scans.get(id)! });
              }
              const latest = new Map<string, ScanDocument>();
              for (const s of scans.values()) {
                const current = latest.get(s.ip);
                if (!current || compareNewestFirst(s, current) < 0) latest.set(s.ip, s);
              }
              const got = (await store.search(undefined, { limit: 100 })).items;
              expect(got).toEqual([...latest.values()].sort(compareNewestFirst));
              for (const [ip, s] of latest) expect((await store.getLatestScan(ip))?.scanId).toBe(s.scanId);
            },
          ),
          { numRuns: 25 },
        );
      });

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
            const queue: string[] = [];
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
                const due = [...leases.values()].filter((l) => l.deadline <= o.now).sort((a, b) => a.deadline - b.deadline || (a.id < b.id ? -1 : 1));
                for (const l of due) {
                  leases.delete(l.id);
                  if (o.requeue) queue.push(l.ip);
                }
                expect((await store.takeExpiredLeases(o.now, 100, { requeue: o.requeue })).map((l) => l.id)).toEqual(due.map((l) => l.id));
              } else if (o.op === 'enqueue') {
                await store.enqueueWork([{ ip: `198.18.8.${o.host}`, tags: [], reason: 'manual', enqueuedAt: 0 }]);
                queue.push(`198.18.8.${o.host}`);
              } else {
                expect((await store.dequeueWork(o.n)).map((q) => q.ip)).toEqual(queue.splice(0, o.n));
              }
              expect((await store.listLeases()).map((l) => l.id).sort()).toEqual([...leases.keys()].sort());
              expect(await store.countLeases()).toBe(leases.size);
            }
            expect((await store.listQueuedWork()).map((q) => q.ip)).toEqual(queue);
            expect(await store.countQueuedWork()).toBe(queue.length);
          }),
          { numRuns: 25 },
        );
      });

      it('canonicalises addresses on the way in and on lookups', async () => {
        const store = await fresh();
        await store.ingestScan({ scan: scan('v6', '2001:DB8:0:0::7', 1000, [open(22, 'ssh')]) });
        expect((await store.getScan('v6'))?.ip).toBe('2001:db8::7');
        expect((await store.getLatestScan('2001:db8:0::7'))?.scanId).toBe('v6');
        expect((await store.hostHistory('2001:0db8::7')).total).toBe(1);
        await store.putLease(lease('l6', '2001:DB8::8', 'a1', 5));
        expect((await store.listLeases({ ip: '2001:db8::8' })).map((l) => l.ip)).toEqual(['2001:db8::8']);
      });
    });

    describe('events', () => {
      it('reads events in append order from a cursor', async () => {
        const store = await fresh();
        const event = (i: number) => ({ kind: 'service-new' as const, at: i, ip: '198.18.0.1', scanId: `s${i}`, tags: [], port: i });
        await store.appendEvents([event(1), event(2), event(3)]);
        const first = await store.readEvents({ limit: 2 });
        expect(first.events.map((e) => e.port)).toEqual([1, 2]);
        await store.appendEvents([event(4)]);
        const second = await store.readEvents({ cursor: first.cursor!, limit: 10 });
        expect(second.events.map((e) => e.port)).toEqual([3, 4]);
        const none = await store.readEvents({ cursor: second.cursor!, limit: 10 });
        expect(none).toEqual({ events: [], cursor: second.cursor });
        expect(new Set([...first.events, ...second.events].map((e) => e.id)).size).toBe(4);
      });

      it('reads events backward, newest first, from a cursor (when the store offers it)', async () => {
        const store = await fresh();
        if (!store.readEventsBackward) return;
        const event = (i: number) => ({ kind: 'service-new' as const, at: i, ip: '198.18.0.1', scanId: `s${i}`, tags: [], port: i });
        expect(await store.readEventsBackward({ limit: 5 })).toEqual({ events: [], cursor: undefined });
        await store.appendEvents([1, 2, 3, 4, 5].map(event));
        const forward = (await store.readEvents({ limit: 10 })).events;
        const newest = await store.readEventsBackward({ limit: 2 });
        expect(newest.events.map((e) => e.port)).toEqual([5, 4]);
        const older = await store.readEventsBackward({ before: newest.cursor!, limit: 10 });
        expect(older.events.map((e) => e.port)).toEqual([3, 2, 1]);
        expect([...newest.events, ...older.events].reverse()).toEqual(forward);
        expect(await store.readEventsBackward({ before: older.cursor!, limit: 10 })).toEqual({ events: [], cursor: older.cursor });
        await expect(store.readEventsBackward({ before: 'nope' })).rejects.toThrow(/not an event cursor/);
      });
    });
  });
}

/** A lease with fixed content, for equality checks. */
export function lease(id: string, ip: string, agentId: string, deadline: number): Lease {
  return { id, ip, agentId, deadline, ports: [22, 80, 443], tags: ['dmz'], session: { round: 0 }, issuedAt: deadline - 100, round: 0, reason: 'cycle' };
}

/** An open port with a service name and optional banner details. */
export function open(port: number, service: string, extra: Partial<ScannedPort> = {}): ScannedPort {
  return { port, state: 'open', service, cpes: [], scripts: [], ...extra };
}

/** A scan document with plausible defaults. */
export function scan(scanId: string, ip: string, finishedAt: number, ports: ScannedPort[], extra: Partial<ScanDocument> = {}): ScanDocument {
  return {
    scanId,
    ip,
    tags: [],
    agentId: 'agent-1',
    startedAt: finishedAt - 60_000,
    finishedAt,
    epoch: 0,
    cycle: 1,
    ports,
    preflight: 'masscan',
    probedPorts: '1-1024',
    timings: { total: 60_000 },
    ...extra,
  };
}

function day(n: number): string {
  return `2026-11-0${n}`;
}

/** Eight scans of six hosts over four days (two hosts scanned twice). */
/** Screenshot metadata of one port (the images live in the screenshot store, not here). */
const SHOT = (port: number) => ({ port, scheme: 'https' as const, mime: 'image/png' as const, width: 1280, height: 800, bytes: 4242, title: 'login' });

function buildFixture(): ScanDocument[] {
  const at = (d: number, hour = 1): number => Date.parse(day(d)) + hour * 3_600_000;
  return [
    // h1a had a screenshot (of a service gone by h1b): only history search finds it.
    scan('h1a', '198.18.0.1', at(1), [open(22, 'ssh', { product: 'OpenSSH', version: '8.2p1' })], { tags: ['dmz'], screenshots: [SHOT(22)] }),
    scan('h2a', '198.18.0.2', at(1), [open(22, 'ssh')], { tags: ['dmz'] }),
    scan(
      'h1b',
      '198.18.0.1',
      at(2),
      [
        open(22, 'ssh', { product: 'OpenSSH', version: '8.9p1', extrainfo: 'Ubuntu Linux; protocol 2.0', cpes: ['cpe:/a:openbsd:openssh:8.9p1'] }),
        open(80, 'http', { product: 'nginx', version: '1.18.0' }),
      ],
      { tags: ['dmz'] },
    ),
    scan('h2b', '198.18.0.2', at(2), [open(22, 'ssh')], { tags: ['dmz'] }),
    scan('h3', '198.18.0.3', at(3), [{ port: 25, state: 'closed', service: 'smtp', cpes: [], scripts: [] }, open(3306, 'mysql')], { tags: ['lab'] }),
    scan(
      'h4',
      '198.18.1.4',
      at(4),
      [
        open(443, 'https', { product: 'nginx', scripts: [{ id: 'ssl-cert', output: 'Subject: commonName=198.18.1.4\nNot valid after: expires 2027-01-01' }] }),
        open(8080, 'http-proxy'),
      ],
      { tags: ['dmz', 'web'], screenshots: [SHOT(443), SHOT(8080)] },
    ),
    scan('h5', '2001:db8::5', at(5), [open(53, 'domain')], { agentId: 'agent-2' }),
    scan('h6', '2001:db8::6', at(6), [open(80, 'http'), open(443, 'http', { product: 'Apache httpd' })], { agentId: 'agent-2' }),
  ];
}

/** Random queries over the fixture's vocabulary (so they match something often). */
function queryArbitrary(): fc.Arbitrary<QueryNode> {
  const leaf: fc.Arbitrary<QueryNode> = fc.oneof(
    fc.constantFrom(22, 80, 443, 25, 3306, 53, 8080, 9).map((port) => ({ type: 'port' as const, port })),
    fc.constantFrom<[QueryNode & { type: 'term' }]>(
      [{ type: 'term', field: 'service', value: 'ssh' }],
      [{ type: 'term', field: 'service', value: 'HTTP' }],
      [{ type: 'term', field: 'product', value: 'nginx' }],
      [{ type: 'term', field: 'version', value: '8.9p1' }],
      [{ type: 'term', field: 'tag', value: 'dmz' }],
      [{ type: 'term', field: 'tag', value: 'web' }],
      [{ type: 'term', field: 'agent', value: 'agent-2' }],
      [{ type: 'term', field: 'script', value: 'ssl-cert' }],
      [{ type: 'term', field: 'cpe', value: 'cpe:/a:openbsd:openssh:8.9p1' }],
    ).map(([node]) => node),
    fc.constantFrom('198.18.0.0/24', '198.18.0.0/16', '198.18.0.1', '198.18.1.4', '2001:db8::/32', '2001:db8::6', '::/0', '0.0.0.0/0').map((value) => ({ type: 'ip' as const, value })),
    fc.record({
      type: fc.constant('time' as const),
      op: fc.constantFrom('>' as const, '>=' as const, '<' as const, '<=' as const),
      at: fc.integer({ min: 1, max: 6 }).map((d) => Date.parse(day(d)) + 3_600_000),
    }),
    fc.constantFrom('openssh', 'ubuntu linux', 'expires', 'nginx 1.18.0', 'absent').map((value) => ({ type: 'text' as const, value })),
    fc.constant({ type: 'screenshot' as const }),
  );
  const { node } = fc.letrec<{ node: QueryNode }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('node'), { minLength: 2, maxLength: 3 }).map((children) => ({ type: 'and' as const, children })),
      fc.array(tie('node'), { minLength: 2, maxLength: 3 }).map((children) => ({ type: 'or' as const, children })),
      tie('node').map((child) => ({ type: 'not' as const, child })),
    ),
  }));
  return node;
}
