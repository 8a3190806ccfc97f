import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isPortbanditError } from '../../src/core/errors.js';
import { matchScan } from '../../src/store/match-scan.js';
import { parseQuery } from '../../src/store/query.js';
import { compareNewestFirst } from '../../src/store/scan-index.js';
import type { QueryNode } from '../../src/store/query-ast.js';
import type { ScanDocument, ScanIndex } from '../../src/store/types.js';
import { freshPerTest } from './close-after-each.js';
import { day, open, scan } from './fixtures.js';

/**
 * The scan index contract (history, latest per host, events, search, statistics), as one suite
 * every implementation runs: `describeIndexConformance('sqlite', open)`. The factory must return
 * a fresh, empty index on every call.
 */
export function describeIndexConformance<S extends ScanIndex>(name: string, openStore: () => Promise<S>): void {
  describe(`scan index conformance: ${name}`, () => {
    const fresh = freshPerTest(openStore);

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

      it('rejects a malformed scan with the field named', async () => {
        const store = await fresh();
        const bad = { ...scan('s1', '198.18.0.1', 1, []), ip: '198.18.0.300' };
        await expect(store.ingestScan({ scan: bad })).rejects.toSatisfy(
          (e) => isPortbanditError(e, 'PB_ERR_ADDRESS') && e.where === 'scan.ip',
        );
        const bad2 = { ...scan('s1', '198.18.0.1', 1, []), finishedAt: 1.5 };
        await expect(store.ingestScan({ scan: bad2 })).rejects.toSatisfy(
          (e) => isPortbanditError(e, 'PB_ERR_SCAN_DOCUMENT') && e.where === 'scan.finishedAt',
        );
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
      const loaded = async (): Promise<S> => {
        const store = await fresh();
        for (const s of fixture) await store.ingestScan({ scan: s });
        return store;
      };
      const ids = async (store: S, query: string, view: 'latest' | 'history' = 'latest'): Promise<string[]> =>
        (await store.search(parseQuery(query), { view, limit: 1000 })).items.map((s) => s.scanId);
      const expected = (query: string, view: 'latest' | 'history' = 'latest'): string[] =>
        (view === 'latest' ? latestOf() : [...fixture].sort(compareNewestFirst))
          .filter((s) => matchScan(s, parseQuery(query)))
          .map((s) => s.scanId);

      it('port:* matches the scans with an open port, -port:* those with nothing open (closed ports count for neither)', async () => {
        const store = await fresh();
        const scans = [
          scan('a1', '198.18.0.1', Date.parse(day(1)), [open(22, 'ssh')]),
          scan('a2', '198.18.0.1', Date.parse(day(2)), []), // nothing open at its latest visit
          scan('b1', '198.18.0.2', Date.parse(day(1)), [{ port: 25, state: 'closed', service: 'smtp', cpes: [], scripts: [] }]),
          scan('c1', '198.18.0.3', Date.parse(day(3)), [open(8443, 'https-alt')], { tags: ['dmz'] }),
        ];
        for (const s of scans) await store.ingestScan({ scan: s });
        expect(await ids(store, 'port:*')).toEqual(['c1']);
        expect(await ids(store, '-port:*')).toEqual(['a2', 'b1']);
        expect(await ids(store, 'port:* OR ip:198.18.0.2')).toEqual(['c1', 'b1']);
        expect(await ids(store, 'port:*', 'history')).toEqual(['c1', 'a1']);
        expect(await ids(store, 'NOT port:*', 'history')).toEqual(['a2', 'b1']);
        expect(await store.count(parseQuery('port:*'))).toBe(1);
        expect(await store.count(parseQuery('-port:*'), { view: 'history' })).toBe(2);
        for (const s of scans) expect(matchScan(s, parseQuery('port:*'))).toBe(s.scanId === 'a1' || s.scanId === 'c1');
      });

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
            const want = (view === 'latest' ? latestOf() : [...fixture].sort(compareNewestFirst))
              .filter((s) => matchScan(s, query))
              .map((s) => s.scanId);
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
        await expect(store.search(undefined, { cursor: 'garbage' })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_CURSOR'));
        await expect(store.search(undefined, { limit: 0 })).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_PAGE'));
      });

      it('exports history oldest first within [since, until)', async () => {
        const store = await loaded();
        const exported: string[] = [];
        for await (const s of store.exportHistory({ batchSize: 2 })) exported.push(s.scanId);
        expect(exported).toEqual(
          [...fixture]
            .sort(compareNewestFirst)
            .reverse()
            .map((s) => s.scanId),
        );
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

    describe('hostile input', () => {
      it('stores a scan whose banner holds a 33 KB word and a 33 KB product; they are kept but not searchable', async () => {
        const store = await fresh();
        const huge = 'a'.repeat(33_000);
        const hostile = scan('h1', '198.18.0.9', 1000, [
          open(80, 'http', { product: huge, extrainfo: `ok ${huge} banner`, cpes: [`cpe:/a:${huge}`] }),
        ]);
        expect(await store.ingestScan({ scan: hostile })).toMatchObject({ inserted: true, latest: true });
        expect((await store.getScan('h1'))?.ports[0]?.product).toBe(huge);
        expect((await store.search(parseQuery('port:80'))).items.map((s) => s.scanId)).toEqual(['h1']);
        expect((await store.search(parseQuery('banner'))).items.map((s) => s.scanId)).toEqual(['h1']);
        expect((await store.search({ type: 'text', value: huge })).total).toBe(0);
        expect((await store.search({ type: 'term', field: 'product', value: huge })).total).toBe(0);
      });
    });

    describe('properties', () => {
      it('latest-per-host does not depend on the order scans arrive in', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({ host: fc.integer({ min: 0, max: 3 }), at: fc.integer({ min: 0, max: 5 }), id: fc.integer({ min: 0, max: 40 }) }),
              { minLength: 1, maxLength: 12 },
            ),
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

      it('canonicalises addresses on the way in and on lookups', async () => {
        const store = await fresh();
        await store.ingestScan({ scan: scan('v6', '2001:DB8:0:0::7', 1000, [open(22, 'ssh')]) });
        expect((await store.getScan('v6'))?.ip).toBe('2001:db8::7');
        expect((await store.getLatestScan('2001:db8:0::7'))?.scanId).toBe('v6');
        expect((await store.hostHistory('2001:0db8::7')).total).toBe(1);
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

/** Eight scans of six hosts over four days (two hosts scanned twice). */
/** Screenshot metadata of one port (the images live in the screenshot store, not here). */
const SHOT = (port: number) => ({
  port,
  scheme: 'https' as const,
  mime: 'image/png' as const,
  width: 1280,
  height: 800,
  bytes: 4242,
  title: 'login',
});

function buildFixture(): ScanDocument[] {
  const at = (d: number, hour = 1): number => Date.parse(day(d)) + hour * 3_600_000;
  return [
    // h1a had a screenshot (of a service gone by h1b): only history search finds it.
    scan('h1a', '198.18.0.1', at(1), [open(22, 'ssh', { product: 'OpenSSH', version: '8.2p1' })], {
      tags: ['dmz'],
      screenshots: [SHOT(22)],
    }),
    scan('h2a', '198.18.0.2', at(1), [open(22, 'ssh')], { tags: ['dmz'] }),
    scan(
      'h1b',
      '198.18.0.1',
      at(2),
      [
        open(22, 'ssh', {
          product: 'OpenSSH',
          version: '8.9p1',
          extrainfo: 'Ubuntu Linux; protocol 2.0',
          cpes: ['cpe:/a:openbsd:openssh:8.9p1'],
        }),
        open(80, 'http', { product: 'nginx', version: '1.18.0' }),
      ],
      { tags: ['dmz'] },
    ),
    scan('h2b', '198.18.0.2', at(2), [open(22, 'ssh')], { tags: ['dmz'] }),
    scan('h3', '198.18.0.3', at(3), [{ port: 25, state: 'closed', service: 'smtp', cpes: [], scripts: [] }, open(3306, 'mysql')], {
      tags: ['lab'],
    }),
    scan(
      'h4',
      '198.18.1.4',
      at(4),
      [
        open(443, 'https', {
          product: 'nginx',
          scripts: [{ id: 'ssl-cert', output: 'Subject: commonName=198.18.1.4\nNot valid after: expires 2027-01-01' }],
        }),
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
    fc
      .constantFrom<[QueryNode & { type: 'term' }]>(
        [{ type: 'term', field: 'service', value: 'ssh' }],
        [{ type: 'term', field: 'service', value: 'HTTP' }],
        [{ type: 'term', field: 'product', value: 'nginx' }],
        [{ type: 'term', field: 'version', value: '8.9p1' }],
        [{ type: 'term', field: 'tag', value: 'dmz' }],
        [{ type: 'term', field: 'tag', value: 'web' }],
        [{ type: 'term', field: 'agent', value: 'agent-2' }],
        [{ type: 'term', field: 'script', value: 'ssl-cert' }],
        [{ type: 'term', field: 'cpe', value: 'cpe:/a:openbsd:openssh:8.9p1' }],
      )
      .map(([node]) => node),
    fc
      .constantFrom('198.18.0.0/24', '198.18.0.0/16', '198.18.0.1', '198.18.1.4', '2001:db8::/32', '2001:db8::6', '::/0', '0.0.0.0/0')
      .map((value) => ({ type: 'ip' as const, value })),
    fc.record({
      type: fc.constant('time' as const),
      op: fc.constantFrom('>' as const, '>=' as const, '<' as const, '<=' as const),
      at: fc.integer({ min: 1, max: 6 }).map((d) => Date.parse(day(d)) + 3_600_000),
    }),
    fc.constantFrom('openssh', 'ubuntu linux', 'expires', 'nginx 1.18.0', 'absent').map((value) => ({ type: 'text' as const, value })),
    fc.constant({ type: 'screenshot' as const }),
    fc.constant({ type: 'anyPort' as const }),
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
