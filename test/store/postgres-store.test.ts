import fc from 'fast-check';
import { Client as PgClient } from 'pg';
import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { INDEX_SCHEMA, facetPairs, openPostgresIndex } from '../../src/store/postgres-index.js';
import { indexScan } from '../../src/store/scan-index.js';
import { COORDINATION_SCHEMA, PostgresDatabase } from '../../src/store/postgres-database.js';
import { openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { IndexedStore } from '../../src/store/indexed-store.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { feedBeforeSearch } from '../helpers/es-refresh.js';
import { parseQuery } from '../../src/store/query.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { describeStoreConformance } from './conformance.js';
import { describeOutboxConformance } from './coordination-conformance.js';
import { describeIndexConformance } from './index-conformance.js';
import { lease, open, scan } from './fixtures.js';

/**
 * The whole store on a real PostgreSQL (a throwaway cluster for this file, one schema per
 * store): the coordination suite, the index suite and the ingest across both; and the index
 * alone (no coordination tables), as a deployment could open it.
 */
const missing = postgresMissing();
if (missing) console.warn(`postgres-store: skipped: ${missing}`);

describe.skipIf(missing !== undefined)('PostgreSQL store', () => {
  const pg = usePostgres();
  describeStoreConformance('postgres', () => openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 }));
  describeOutboxConformance(
    'postgres',
    async () => {
      const options = { url: pg.url(), schema: pg.freshSchema(), poolSize: 4, outbox: true };
      return { store: await openPostgresStore(options), reopen: () => openPostgresStore(options) };
    },
    () => openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 }),
  );
  // PostgreSQL coordination with the Elasticsearch index (the in-memory double, near-real-time),
  // fed from the outbox: reads through the index drain the outbox and refresh first.
  describeStoreConformance('postgres + elasticsearch (in-memory cluster, fed from the outbox)', async () => {
    const { client, cluster } = createMemoryElasticsearchClient();
    cluster.nearRealTime = true;
    const record = await openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4, outbox: true });
    return feedBeforeSearch(new IndexedStore(record, await openElasticsearchScanIndex({ client, prefix: 'pb-pg' })));
  });
  describeIndexConformance('postgres index alone', () => openPostgresIndex({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 }));
  describe('group commit of ingests', () => {
    it('writes the ingests of one turn in one transaction, and a failing one fails alone', async () => {
      const store = await openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 });
      try {
        await store.putLease(lease('lease-1', '198.18.0.1', 'agent-1', 10_000));
        await store.putLease(lease('lease-3', '198.18.0.3', 'agent-1', 10_000));
        // Issued in the same turn: one transaction (the rows share their xmin).
        const together = await Promise.all([
          store.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]), leaseId: 'lease-1' }),
          store.ingestScan({ scan: scan('s2', '198.18.0.2', 1000, [open(80, 'http')]) }),
          store.ingestScan({ scan: scan('s3', '198.18.0.3', 1000, []), leaseId: 'lease-3' }),
        ]);
        expect(together.map((r) => r.inserted)).toEqual([true, true, true]);
        expect(together.map((r) => r.lease?.id)).toEqual(['lease-1', undefined, 'lease-3']);
        const xmins = await store.db.pool.query<{ xmin: string }>(
          `SELECT DISTINCT xmin::text AS xmin FROM scans WHERE scan_id IN ('s1', 's2', 's3')`,
        );
        expect(xmins.rows).toHaveLength(1);

        // One bad result in a group: the group is rolled back and each runs alone; the bad one
        // gets its own error, the others are stored, and a duplicate is answered as one.
        const mixed = await Promise.allSettled([
          store.ingestScan({ scan: scan('s4', '198.18.0.4', 2000, [open(443, 'https')]) }),
          store.ingestScan({ scan: scan('s5', 'not-an-address', 2000, []) }),
          store.ingestScan({ scan: scan('s2', '198.18.0.2', 1000, [open(80, 'http')]) }),
        ]);
        expect(mixed[0]).toMatchObject({ status: 'fulfilled', value: { inserted: true, latest: true } });
        expect(mixed[1]!.status).toBe('rejected');
        expect(isPortbanditError((mixed[1] as PromiseRejectedResult).reason)).toBe(true);
        expect(mixed[2]).toMatchObject({ status: 'fulfilled', value: { inserted: false } });
        expect((await store.getScan('s4'))?.ip).toBe('198.18.0.4');
        expect(await store.getScan('s5')).toBeUndefined();
        expect((await store.getLatestScan('198.18.0.1'))?.scanId).toBe('s1');
        expect(await store.listLeases()).toEqual([]);
        // A second visit of a host replaces its latest facets (the first latest row had none to clear).
        await store.ingestScan({ scan: scan('s6', '198.18.0.1', 3000, [open(8080, 'http-proxy')]) });
        expect((await store.search(parseQuery('port:22'))).items.map((s) => s.scanId)).toEqual([]);
        expect((await store.search(parseQuery('port:8080'))).items.map((s) => s.scanId)).toEqual(['s6']);
      } finally {
        await store.close();
      }
    });

    it('a group written together (one statement per table) answers and stores exactly what the same ingests one by one do', async () => {
      // Random groups over four hosts and ten visit ids: new visits, duplicates, later rounds under a
      // lease (or with a lease already gone), events, follow-ups and learning items. Store A gets
      // each group in one turn (the set-based path when no scan id, address or lease repeats,
      // else the one-by-one fallback), store B the same calls awaited one after another.
      const ingestArb = fc.record({
        visit: fc.integer({ min: 0, max: 9 }),
        finishedAt: fc.integer({ min: 1, max: 30 }).map((t) => t * 60_000),
        ports: fc.uniqueArray(fc.constantFrom(22, 80, 443, 8080), { maxLength: 3 }),
        lease: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined }),
        replace: fc.boolean(),
        events: fc.integer({ min: 0, max: 2 }),
        followUp: fc.boolean(),
        learn: fc.boolean(),
      });
      type Op = typeof ingestArb extends fc.Arbitrary<infer T> ? T : never;
      const inputOf = (o: Op) => {
        // A visit belongs to one host (a later round of it is for the same address, as the lease says).
        const ip = `198.18.0.${o.visit % 4}`;
        const scanId = `v${o.visit}`;
        return {
          scan: scan(
            scanId,
            ip,
            o.finishedAt,
            o.ports.map((p) => open(p, 'svc')),
            { tags: ['dmz'] },
          ),
          ...(o.lease !== undefined ? { leaseId: `l${o.lease}` } : {}),
          ...(o.replace ? { replace: true } : {}),
          events: Array.from({ length: o.events }, (_, k) => ({
            kind: 'service-new' as const,
            at: o.finishedAt,
            ip,
            scanId,
            tags: [],
            port: 1000 + k,
          })),
          ...(o.followUp
            ? { enqueue: [{ ip, tags: ['dmz'], reason: 'followup' as const, enqueuedAt: o.finishedAt, portRanges: '9', round: 1 }] }
            : {}),
          ...(o.learn ? { learn: [{ key: 'dmz', result: { ip, at: o.finishedAt }, at: o.finishedAt }] } : {}),
        };
      };
      const state = async (store: Awaited<ReturnType<typeof openPostgresStore>>) => {
        const history: unknown[] = [];
        for await (const d of store.exportHistory()) history.push(d);
        return {
          history,
          latest: (await store.search(undefined, { limit: 100 })).items,
          byPort: await Promise.all(
            [22, 80, 443, 8080].map(async (p) => (await store.search(parseQuery(`port:${p}`))).items.map((d) => d.scanId)),
          ),
          historyPort22: (await store.search(parseQuery('port:22'), { view: 'history' })).items.map((d) => d.scanId),
          events: (await store.readEvents({ limit: 1000 })).events.map(({ id: _id, ...e }) => e),
          leases: (await store.listLeases()).map((l) => l.id),
          queue: (await store.listQueuedWork()).map(({ id: _id, ...q }) => q),
          learning: (await store.readLearning(undefined)).items.map(({ position: _p, ...i }) => i),
          counts: await store.counts(),
        };
      };
      // Facet rows are changed by difference (only those that came or went are written): each
      // scan's scan_terms must be exactly its stored document's facets, and each host's
      // latest_terms exactly its latest scan's scan_terms, on either path.
      const latestFacets = async (store: Awaited<ReturnType<typeof openPostgresStore>>) => {
        const rows = async (sql: string) => (await store.db.pool.query(sql)).rows;
        const sorted = (list: string[][]) => list.map((r) => r.join(' ')).sort();
        const docs = await rows('SELECT scan_id, doc FROM scans');
        return {
          history: sorted(
            (await rows('SELECT s.scan_id, t.field, t.value FROM scan_terms t JOIN scans s ON s.row = t.scan_row')).map((r) => [
              r.scan_id,
              r.field,
              r.value,
            ]),
          ),
          historyFromDocs: sorted(
            docs.flatMap((d) => facetPairs(indexScan(JSON.parse(d.doc as string))).map(([field, value]) => [d.scan_id, field, value])),
          ),
          held: await rows(`SELECT encode(ip_key, 'hex') AS k, field, value FROM latest_terms ORDER BY 1, 2, 3`),
          fromScans: await rows(
            `SELECT encode(l.ip_key, 'hex') AS k, t.field, t.value FROM latest l JOIN scan_terms t ON t.scan_row = l.scan_row ORDER BY 1, 2, 3`,
          ),
        };
      };
      await fc.assert(
        fc.asyncProperty(
          fc.array(ingestArb, { maxLength: 6 }),
          fc.array(fc.array(ingestArb, { minLength: 2, maxLength: 8 }), { minLength: 1, maxLength: 3 }),
          async (prefix, groups) => {
            const [a, b] = await Promise.all([0, 1].map(() => openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 })));
            try {
              for (const store of [a!, b!]) {
                for (let k = 0; k < 10; k++) await store.putLease(lease(`l${k}`, `198.18.1.${k}`, 'agent-1', 1e12));
                for (const o of prefix) await store.ingestScan(inputOf(o)).catch(() => undefined);
              }
              for (const group of groups) {
                const together = await Promise.allSettled(group.map((o) => a!.ingestScan(inputOf(o))));
                const alone: PromiseSettledResult<unknown>[] = [];
                for (const o of group)
                  alone.push(
                    await b!.ingestScan(inputOf(o)).then(
                      (value) => ({ status: 'fulfilled' as const, value }),
                      (reason: unknown) => ({ status: 'rejected' as const, reason }),
                    ),
                  );
                const strip = (r: PromiseSettledResult<unknown>) =>
                  r.status === 'rejected'
                    ? { rejected: String((r.reason as Error).message).replace(/ schema \w+/u, ' schema (each its own)') }
                    : (({ queued, ...rest }: { queued?: { id: string }[] }) => ({
                        ...rest,
                        queued: queued?.map(({ id: _id, ...q }) => q),
                      }))(r.value as { queued?: { id: string }[] });
                expect(together.map(strip)).toEqual(alone.map(strip));
              }
              expect(await state(a!)).toEqual(await state(b!));
              for (const store of [a!, b!]) {
                const facets = await latestFacets(store);
                expect(facets.held).toEqual(facets.fromScans);
                expect(facets.history).toEqual(facets.historyFromDocs);
              }
            } finally {
              await Promise.all([a!.close(), b!.close()]);
            }
          },
        ),
        { numRuns: 12 },
      );
    }, 120_000);

    it('close() writes ingests still waiting for their turn', async () => {
      const schema = pg.freshSchema();
      const store = await openPostgresStore({ url: pg.url(), schema, poolSize: 4 });
      const pending = store.ingestScan({ scan: scan('w1', '198.18.0.9', 1000, []) });
      await store.close();
      expect((await pending).inserted).toBe(true);
      const reopened = await openPostgresStore({ url: pg.url(), schema, poolSize: 4 });
      expect((await reopened.getScan('w1'))?.ip).toBe('198.18.0.9');
      await reopened.close();
    });
  });

  describe('events in commit-safe order', () => {
    const event = (ip: string) => ({ kind: 'service-new' as const, at: 1, ip, scanId: `s-${ip}`, tags: [] as string[], port: 22 });

    it('never passes an event whose transaction commits after a later one; ids and positions both work as cursors', async () => {
      const schema = pg.freshSchema();
      const store = await openPostgresStore({ url: pg.url(), schema, poolSize: 4 });
      const slow = new PgClient({ connectionString: pg.url(), options: `-c search_path=${schema}` });
      await slow.connect();
      try {
        // The slow writer takes its transaction id first and draws its sequence number last:
        // sequence order (fast, slow) is not commit-safe order (slow, fast).
        await slow.query('BEGIN');
        await slow.query('SELECT pg_current_xact_id()');
        await store.appendEvents([event('198.18.0.2')]);
        await slow.query('INSERT INTO events (doc) VALUES ($1)', [JSON.stringify(event('198.18.0.1'))]);
        const early = await store.readEvents({ limit: 10 });
        expect(early).toEqual({ events: [], cursor: undefined });
        expect((await store.readEventsBackward({ limit: 10 })).events).toEqual([]);
        await slow.query('COMMIT');
        const all = await store.readEvents({ limit: 10 });
        expect(all.events.map((e) => e.ip)).toEqual(['198.18.0.1', '198.18.0.2']);
        const [first, second] = all.events;
        expect(Number(first!.id)).toBeGreaterThan(Number(second!.id));
        expect(all.cursor).toMatch(/^\d+\.\d+$/u);
        expect((await store.readEvents({ cursor: all.cursor!, limit: 10 })).events).toEqual([]);
        // A page of one, then the next from its cursor; an event's id (what alert rules keep) too.
        const one = await store.readEvents({ limit: 1 });
        expect((await store.readEvents({ cursor: one.cursor!, limit: 10 })).events).toEqual([second]);
        expect((await store.readEvents({ cursor: first!.id, limit: 10 })).events).toEqual([second]);
        expect((await store.readEvents({ cursor: second!.id, limit: 10 })).events).toEqual([]);
        // Newest first, the same order reversed; `before` an id or a position.
        const newest = await store.readEventsBackward({ limit: 1 });
        expect(newest.events).toEqual([second]);
        expect((await store.readEventsBackward({ before: newest.cursor!, limit: 10 })).events).toEqual([first]);
        expect((await store.readEventsBackward({ before: second!.id, limit: 10 })).events).toEqual([first]);
      } finally {
        await slow.end();
        await store.close();
      }
    });

    it('migrates events stored before positions: their order kept, their ids still cursors, new events after them', async () => {
      const schema = pg.freshSchema();
      const old = await PostgresDatabase.open({ url: pg.url(), schema }, [
        COORDINATION_SCHEMA,
        { name: INDEX_SCHEMA.name, migrations: INDEX_SCHEMA.migrations.slice(0, 1) },
      ]);
      try {
        for (const ip of ['198.18.0.1', '198.18.0.2', '198.18.0.3'])
          await old.pool.query('INSERT INTO events (doc) VALUES ($1)', [JSON.stringify(event(ip))]);
      } finally {
        await old.close();
      }
      const store = await openPostgresStore({ url: pg.url(), schema, poolSize: 4 });
      try {
        const before = await store.readEvents({ limit: 10 });
        expect(before.events.map((e) => [e.id, e.ip])).toEqual([
          ['1', '198.18.0.1'],
          ['2', '198.18.0.2'],
          ['3', '198.18.0.3'],
        ]);
        // A cursor kept from before (an alert rule's: an event id) goes on where it was.
        expect((await store.readEvents({ cursor: '1', limit: 10 })).events.map((e) => e.ip)).toEqual(['198.18.0.2', '198.18.0.3']);
        await store.appendEvents([event('198.18.0.4')]);
        expect((await store.readEvents({ cursor: '3', limit: 10 })).events.map((e) => e.ip)).toEqual(['198.18.0.4']);
        expect((await store.readEvents({ cursor: before.cursor!, limit: 10 })).events.map((e) => e.ip)).toEqual(['198.18.0.4']);
      } finally {
        await store.close();
      }
    });

    it('refuses anything but a position or an event id as a cursor, naming where', async () => {
      const store = await openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 });
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.string().filter((text) => !/^(?:\d{1,20}\.)?\d{1,16}$/u.test(text)),
            async (text) => {
              await expect(store.readEvents({ cursor: text })).rejects.toSatisfy(
                (e) => isPortbanditError(e, 'PB_ERR_CURSOR') && e.where === 'cursor',
              );
              await expect(store.readEventsBackward({ before: text })).rejects.toSatisfy(
                (e) => isPortbanditError(e, 'PB_ERR_CURSOR') && e.where === 'before',
              );
            },
          ),
          { numRuns: 200 },
        );
        await fc.assert(
          fc.asyncProperty(fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }), fc.nat(), async (xid, seq) => {
            expect(await store.readEvents({ cursor: `${xid}.${seq}` })).toEqual({ events: [], cursor: `${xid}.${seq}` });
          }),
          { numRuns: 30 },
        );
      } finally {
        await store.close();
      }
    });
  });
});
