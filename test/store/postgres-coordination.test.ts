import { Client } from 'pg';
import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { claimSql, openPostgresCoordination, type PostgresCoordinationStore } from '../../src/store/postgres-coordination.js';
import { COORDINATION_SCHEMA, PostgresDatabase } from '../../src/store/postgres-database.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { describeCoordinationConformance } from './coordination-conformance.js';
import { lease } from './fixtures.js';

/**
 * The coordination conformance suite against a real PostgreSQL: a throwaway cluster started by
 * scripts/pg-throwaway.sh for this file (test/helpers/postgres.ts), one schema per store.
 */
const missing = postgresMissing();
if (missing) console.warn(`postgres-coordination: skipped: ${missing}`);

describe.skipIf(missing !== undefined)('PostgreSQL coordination store', () => {
  const pg = usePostgres();
  const open = (): Promise<PostgresCoordinationStore> => openPostgresCoordination({ url: pg.url(), schema: pg.freshSchema(), poolSize: 4 });

  describeCoordinationConformance('postgres', open);

  describe('several coordinators on one database', () => {
    it('hands each queued item to exactly one of many concurrent dequeuers (FOR UPDATE SKIP LOCKED)', async () => {
      const schema = pg.freshSchema();
      const stores = await Promise.all([0, 1, 2].map(() => openPostgresCoordination({ url: pg.url(), schema, poolSize: 4 })));
      try {
        const items = Array.from({ length: 300 }, (_, i) => ({
          ip: `198.18.${i >> 8}.${i & 255}`,
          tags: [],
          reason: 'manual' as const,
          enqueuedAt: i,
        }));
        await stores[0]!.enqueueWork(items);
        const taken: string[] = [];
        await Promise.all(
          stores.flatMap((store) =>
            [0, 1, 2, 3].map(async () => {
              for (;;) {
                const batch = await store.dequeueWork(7);
                if (batch.length === 0) return;
                taken.push(...batch.map((q) => q.ip));
              }
            }),
          ),
        );
        expect(taken).toHaveLength(300);
        expect(new Set(taken).size).toBe(300);
        expect(await stores[1]!.countQueuedWork()).toBe(0);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    it('brings a dequeued item back after its hold unless a lease for its address settled it', async () => {
      const store = await open();
      try {
        await store.enqueueWork(['198.18.0.1', '198.18.0.2'].map((ip) => ({ ip, tags: [], reason: 'manual' as const, enqueuedAt: 1 })));
        const taken = await store.dequeueWork(2, { holdMs: 1000 });
        expect(taken.map((q) => q.ip)).toEqual(['198.18.0.1', '198.18.0.2']);
        expect(await store.countQueuedWork()).toBe(0);
        expect(await store.dequeueWork(2)).toEqual([]);
        // The coordinator leased the first; the one that took the second "died".
        await store.putLease(lease('l1', '198.18.0.1', 'a1', 100));
        await new Promise((resolve) => setTimeout(resolve, 1100));
        expect((await store.dequeueWork(5)).map((q) => q.ip)).toEqual(['198.18.0.2']);
      } finally {
        await store.close();
      }
    });

    it('gives held items back at once on release, in their place in the queue; a settled or unknown id is not counted', async () => {
      const store = await open();
      try {
        await store.enqueueWork(
          ['198.18.0.1', '198.18.0.2', '198.18.0.3'].map((ip) => ({ ip, tags: [], reason: 'manual' as const, enqueuedAt: 1 })),
        );
        const taken = await store.dequeueWork(2, { holdMs: 600_000 });
        await store.putLease(lease('l1', '198.18.0.1', 'a1', 100));
        // The lease settled the first; the second is released: ahead of the third again, at once.
        expect(await store.releaseQueuedWork([...taken.map((q) => q.id), '999', 'x'])).toBe(1);
        expect((await store.listQueuedWork()).map((q) => q.ip)).toEqual(['198.18.0.2', '198.18.0.3']);
        expect((await store.dequeueWork(1)).map((q) => q.ip)).toEqual(['198.18.0.2']);
      } finally {
        await store.close();
      }
    });

    it('refuses a second live lease for an address, by constraint, whoever writes it', async () => {
      const schema = pg.freshSchema();
      const [a, b] = await Promise.all([0, 1].map(() => openPostgresCoordination({ url: pg.url(), schema })));
      try {
        const outcomes = await Promise.allSettled([
          a!.putLease(lease('la', '198.18.0.5', 'a1', 100)),
          b!.putLease(lease('lb', '198.18.0.5', 'a2', 100)),
        ]);
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        expect(isPortbanditError(refused.reason, 'PB_ERR_CONFLICT') && refused.reason.where === 'lease.ip').toBe(true);
        expect(await a!.countLeases()).toBe(1);
        // Once completed, the address can be leased again.
        const held = (await a!.listLeases())[0]!;
        await b!.completeLease(held.id);
        await a!.putLease(lease('lc', '198.18.0.5', 'a1', 200));
        expect((await b!.listLeases({ ip: '198.18.0.5' })).map((l) => l.id)).toEqual(['lc']);
      } finally {
        await Promise.all([a!.close(), b!.close()]);
      }
    });

    it('lets exactly one of concurrent compare-and-set writers of a document win per revision', async () => {
      const schema = pg.freshSchema();
      const stores = await Promise.all([0, 1, 2, 3].map(() => openPostgresCoordination({ url: pg.url(), schema })));
      try {
        await stores[0]!.putDocument('coordinator', 'cycle', { position: 0 }, { at: 1, expectedRevision: 0 });
        // Every writer claims blocks of 10 until 200 positions are handed out; no block twice.
        const claimed: number[] = [];
        await Promise.all(
          stores.map(async (store) => {
            for (;;) {
              const doc = (await store.getDocument<{ position: number }>('coordinator', 'cycle'))!;
              if (doc.value.position >= 200) return;
              try {
                await store.putDocument(
                  'coordinator',
                  'cycle',
                  { position: doc.value.position + 10 },
                  { at: 2, expectedRevision: doc.revision },
                );
                claimed.push(doc.value.position);
              } catch (error) {
                if (!isPortbanditError(error, 'PB_ERR_CONFLICT')) throw error;
              }
            }
          }),
        );
        expect(claimed.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i * 10));
        expect((await stores[3]!.getDocument('coordinator', 'cycle'))?.revision).toBe(21);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    it('creates the bootstrap admin token once however many coordinators start together', async () => {
      const schema = pg.freshSchema();
      const stores = await Promise.all([0, 1, 2, 3].map(() => openPostgresCoordination({ url: pg.url(), schema })));
      try {
        const created = await Promise.all(
          stores.map((s, i) => s.createFirstAdminToken({ id: `t${i}`, name: 'bootstrap', tokenHash: `h${i}`, createdAt: i })),
        );
        expect(created.filter(Boolean)).toHaveLength(1);
        expect(await stores[0]!.listAdminTokens()).toHaveLength(1);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    it('never skips a learning item whose transaction commits after a later one was read', async () => {
      const schema = pg.freshSchema();
      const store = await openPostgresCoordination({ url: pg.url(), schema });
      const slow = new Client({ connectionString: pg.url(), options: `-c search_path=${schema}` });
      const fast = new Client({ connectionString: pg.url(), options: `-c search_path=${schema}` });
      await Promise.all([slow.connect(), fast.connect()]);
      try {
        const item = (key: string) => JSON.stringify({ key, result: {}, at: 1 });
        // The slow writer starts first (the lower transaction id), the fast one commits first.
        await slow.query('BEGIN');
        await slow.query('INSERT INTO learning_queue (doc) VALUES ($1)', [item('slow')]);
        await fast.query('INSERT INTO learning_queue (doc) VALUES ($1)', [item('fast')]);
        const early = await store.readLearning(undefined);
        expect(early.items).toEqual([]);
        await slow.query('COMMIT');
        const late = await store.readLearning(early.cursor);
        expect(late.items.map((i) => i.key)).toEqual(['slow', 'fast']);
        expect((await store.readLearning(late.cursor)).items).toEqual([]);
      } finally {
        await Promise.all([slow.end(), fast.end(), store.close()]);
      }
    });

    it('reads learning items in transaction order across a change in the number of digits (9 before 10)', async () => {
      const schema = pg.freshSchema();
      const store = await openPostgresCoordination({ url: pg.url(), schema });
      const writer = new Client({ connectionString: pg.url(), options: `-c search_path=${schema}` });
      await writer.connect();
      try {
        // Transaction ids written as past ones (the cluster's own are far above): compared as
        // text, '10' sorted before '9' (the ORDER BY took the text column the query returned).
        for (const [xid, key] of [
          ['10', 'second'],
          ['9', 'first'],
          ['100', 'third'],
        ])
          await writer.query('INSERT INTO learning_queue (xid, doc) VALUES ($1::xid8, $2)', [
            xid,
            JSON.stringify({ key, result: {}, at: 1 }),
          ]);
        const read = await store.readLearning(undefined);
        expect(read.items.map((i) => [i.key, i.position])).toEqual([
          ['first', '9'],
          ['second', '10'],
          ['third', '100'],
        ]);
      } finally {
        await Promise.all([writer.end(), store.close()]);
      }
    });

    it('migrates a version-3 queue: items keep their ids and holds and are served by class, then in order', async () => {
      const schema = pg.freshSchema();
      const old = await PostgresDatabase.open({ url: pg.url(), schema }, [
        { name: COORDINATION_SCHEMA.name, migrations: COORDINATION_SCHEMA.migrations.slice(0, 3) },
      ]);
      const queued = [
        { ip: '198.18.1.1', tags: [], reason: 'cycle', enqueuedAt: 1, cycle: 1 },
        { ip: '198.18.0.9', tags: [], reason: 'manual', enqueuedAt: 2 },
        { ip: '198.18.0.1', tags: [], reason: 'followup', enqueuedAt: 3, ports: [8080], session: { round: 1 }, round: 1, cycle: 1 },
        { ip: '198.18.0.2', tags: [], reason: 'expired', enqueuedAt: 4, ports: [22], session: { round: 0 }, round: 0, cycle: 1 },
      ];
      try {
        // The version-3 layout, with the expired item held by a coordinator (dequeued, no lease yet).
        for (const [i, item] of queued.entries())
          await old.pool.query('INSERT INTO work_queue (ip, hidden_until, doc) VALUES ($1, $2, $3)', [
            item.ip,
            i === 3 ? Date.now() + 1500 : 0,
            JSON.stringify(item),
          ]);
      } finally {
        await old.close();
      }
      const store = await openPostgresCoordination({ url: pg.url(), schema });
      try {
        // A row written before range specs: its `ports` list is read as `portRanges`.
        const { ports: _ports, ...followUp } = queued[2]!;
        expect(await store.listQueuedWork()).toEqual([
          { ...followUp, portRanges: '8080', id: '3' },
          { ...queued[1], id: '2' },
          { ...queued[0], id: '1' },
        ]);
        expect((await store.dequeueWork(1)).map((q) => q.ip)).toEqual(['198.18.0.1']);
        // The held item comes back when its hold is over, ahead of the rescan and the cycle.
        await new Promise((resolve) => setTimeout(resolve, 1600));
        expect((await store.dequeueWork(2)).map((q) => q.id)).toEqual(['4', '2']);
        const [next] = await store.enqueueWork([{ ip: '198.18.0.3', tags: [], reason: 'followup', enqueuedAt: 5 }]);
        expect(next!.id).toBe('5');
        expect((await store.dequeueWork(5)).map((q) => q.ip)).toEqual(['198.18.0.3', '198.18.1.1']);
      } finally {
        await store.close();
      }
    });

    it('claims the head of a long queue through its index, without sorting the queue, and never walks the held items', async () => {
      const store = await open();
      const client = await store.db.pool.connect();
      try {
        const block = Array.from({ length: 5000 }, (_, i) => ({
          ip: `198.18.${i >> 8}.${i & 255}`,
          tags: [],
          reason: 'cycle' as const,
          enqueuedAt: 1,
        }));
        await store.enqueueWork(block);
        await store.enqueueWork([{ ip: '198.18.100.1', tags: [], reason: 'followup', enqueuedAt: 2 }]);
        // 4,000 items held at the head (as by 60 lease requests under way), then the claim itself.
        await store.dequeueWork(64, { holdMs: 60_000 });
        for (let i = 0; i < 4000 / 250; i++) await store.dequeueWork(250, { holdMs: 60_000 });
        await client.query('ANALYZE work_queue');
        await client.query('BEGIN');
        const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${claimSql()}`, [64, 60_000]);
        await client.query('ROLLBACK');
        const plan = JSON.stringify(rows[0]!['QUERY PLAN']);
        expect(plan).toContain('"Index Name":"work_queue_claim"');
        expect(plan).not.toContain('Seq Scan');
        // The held items are out of the claim's index: its walk reads a few pages for its 64 rows,
        // not one per held item (4,000 and more with the index of migration 4).
        type Node = { 'Subplan Name'?: string; 'Shared Hit Blocks': number; 'Shared Read Blocks': number; Plans?: Node[] };
        const find = (node: Node): Node | undefined =>
          node['Subplan Name'] === 'CTE fresh' ? node : (node.Plans ?? []).map(find).find((n) => n !== undefined);
        const fresh = find((rows[0]!['QUERY PLAN'] as [{ Plan: Node }])[0].Plan);
        expect(fresh).toBeDefined();
        expect(fresh!['Shared Hit Blocks'] + fresh!['Shared Read Blocks']).toBeLessThan(400);
        expect((await store.dequeueWork(1)).map((q) => q.ip)).toEqual(['198.18.15.223']);
      } finally {
        client.release();
        await store.close();
      }
    });

    it('migrates once when coordinators open a new schema together, and reopens it', async () => {
      const schema = pg.freshSchema();
      const stores = await Promise.all([0, 1, 2, 3, 4].map(() => openPostgresCoordination({ url: pg.url(), schema })));
      await stores[0]!.addScopeEntries('scope', [{ range: '198.18.0.0/24', tags: [] }], 1);
      await Promise.all(stores.map((s) => s.close()));
      const again = await openPostgresCoordination({ url: pg.url(), schema });
      expect((await again.listScope('scope')).entries.map((e) => e.range)).toEqual(['198.18.0.0/24']);
      await again.close();
    });
  });

  it('rejects an unusable schema name with the option named', async () => {
    await expect(openPostgresCoordination({ url: pg.url(), schema: 'Bad; DROP' })).rejects.toSatisfy(
      (e) => isPortbanditError(e, 'PB_ERR_CONFIG') && e.where === 'store.postgres.schema',
    );
  });

  it('reports an unreachable server as a store error naming the server, without the password', async () => {
    const error = await openPostgresCoordination({ url: 'postgres://pb:secret@127.0.0.1:1/none' }).catch((e: unknown) => e);
    expect(isPortbanditError(error, 'PB_ERR_STORE')).toBe(true);
    expect(String((error as Error).message)).toContain('127.0.0.1:1');
    expect(String((error as Error).message)).not.toContain('secret');
  });
});
