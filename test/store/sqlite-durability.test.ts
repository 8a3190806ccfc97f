import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isPortbanditError } from '../../src/core/errors.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { SCHEMA_VERSION, migrateSqlite } from '../../src/store/sqlite-schema.js';
import type { ScanDocument, Store } from '../../src/store/types.js';
import { lease, open, scan } from './conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'portbandit-durability-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Everything an ingest can touch, read back through the public interface. */
async function snapshot(store: Store): Promise<unknown> {
  const history: unknown[] = [];
  for await (const s of store.exportHistory()) history.push(s);
  return {
    history,
    latest: (await store.search(undefined, { limit: 1000 })).items,
    events: (await store.readEvents({ limit: 1000 })).events,
    leases: await store.listLeases(),
    counts: await store.counts(),
    topPorts: await store.topPorts(),
  };
}

const operation = fc.record({
  ip: fc.constantFrom('198.18.0.1', '198.18.0.2', '198.18.5.9', '2001:db8::1'),
  finishedAt: fc.integer({ min: 1, max: 50 }).map((t) => t * 60_000),
  ports: fc.uniqueArray(fc.constantFrom(22, 80, 443, 8080), { maxLength: 3 }),
  scanNo: fc.integer({ min: 0, max: 30 }),
  withLease: fc.boolean(),
  poisoned: fc.boolean(),
});

describe('sqlite store durability', () => {
  it('a failed ingest leaves everything already stored exactly as it was, and data survives reopening', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), async (ops) => {
        const path = join(dir, `prop-${n++}.db`);
        const store = await openSqliteStore({ path });
        try {
          for (let i = 0; i < 5; i++) await store.putLease(lease(`l${i}`, '198.18.0.1', 'a1', 1000 + i));
          for (const op of ops) {
            const before = await snapshot(store);
            const input = {
              scan: scan(
                `s${op.scanNo}`,
                op.ip,
                op.finishedAt,
                op.ports.map((p) => open(p, 'svc')),
              ),
              ...(op.withLease ? { leaseId: `l${op.scanNo % 5}` } : {}),
              events: [
                { kind: 'service-new' as const, at: op.finishedAt, ip: op.ip, scanId: `s${op.scanNo}`, tags: [], port: 22 },
                // A BigInt cannot be serialised: the failure happens inside the transaction, after the scan row was written.
                ...(op.poisoned ? [{ kind: 'service-new' as const, at: 0, ip: op.ip, scanId: 'x', tags: [], detail: { big: 1n } }] : []),
              ],
            };
            const known = (await store.getScan(input.scan.scanId)) !== undefined;
            if (op.poisoned && !known) {
              await expect(store.ingestScan(input)).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_STORE'));
              expect(await snapshot(store)).toEqual(before);
            } else {
              await store.ingestScan(input);
            }
          }
          const final = await snapshot(store);
          await store.close();
          const reopened = await openSqliteStore({ path });
          try {
            expect(await snapshot(reopened)).toEqual(final);
          } finally {
            await reopened.close();
          }
        } catch (error) {
          await store.close().catch(() => undefined);
          throw error;
        }
      }),
      { numRuns: 25 },
    );
  });

  it('failed scope and document writes leave scope, version and documents as they were', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({
              kind: fc.constant('scope' as const),
              ranges: fc.uniqueArray(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 4 }),
              poisoned: fc.boolean(),
            }),
            fc.record({
              kind: fc.constant('doc' as const),
              key: fc.constantFrom('dmz', 'lab', ''),
              revision: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
              value: fc.integer(),
            }),
          ),
          { minLength: 1, maxLength: 15 },
        ),
        async (ops) => {
          const store = await openSqliteStore({ path: ':memory:' });
          const state = async (): Promise<unknown> => ({
            scope: await store.listScope('scope'),
            version: await store.getScopeVersion(),
            docs: await store.listDocuments('policies'),
          });
          try {
            for (const op of ops) {
              const before = await state();
              let failed = false;
              try {
                if (op.kind === 'scope') {
                  // The last entry's tags cannot be serialised: the failure comes after earlier rows were written.
                  const entries = op.ranges.map((r, i) => ({
                    range: `198.18.${r}.0/24`,
                    tags: op.poisoned && i === op.ranges.length - 1 ? ([1n] as unknown as string[]) : [`t${r}`],
                  }));
                  await store.addScopeEntries('scope', entries, 1000);
                } else {
                  await store.putDocument(
                    'policies',
                    op.key,
                    { budget: op.value },
                    { at: 5, ...(op.revision === undefined ? {} : { expectedRevision: op.revision }) },
                  );
                }
              } catch (error) {
                expect(isPortbanditError(error, 'PB_ERR_STORE') || isPortbanditError(error, 'PB_ERR_CONFLICT')).toBe(true);
                failed = true;
              }
              if (failed) expect(await state()).toEqual(before);
            }
          } finally {
            await store.close();
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it('keeps the facet tables exactly as a fresh ingest of the stored documents would write them, through later rounds and later visits', async () => {
    // The facet tables are changed by difference (only facets that came or went are written):
    // after any sequence of new visits and later rounds, history's (scan_terms) must be what
    // ingesting the final documents into an empty store writes, and each host's latest facets
    // (latest_terms) exactly its latest scan's.
    const step = fc.record({
      host: fc.integer({ min: 0, max: 3 }),
      replace: fc.boolean(),
      finishedAt: fc.integer({ min: 1, max: 40 }).map((t) => t * 60_000),
      ports: fc.uniqueArray(fc.constantFrom(22, 80, 443, 8080), { maxLength: 3 }),
      product: fc.constantFrom('nginx', 'openssh', 'apache'),
      tags: fc.subarray(['dmz', 'lab']),
    });
    const facets = (path: string) => {
      const db = new Database(path, { readonly: true });
      try {
        return {
          history: db
            .prepare('SELECT s.scan_id, t.field, t.value FROM scan_terms t JOIN scans s ON s.row = t.scan_row ORDER BY 1, 2, 3')
            .all(),
          latest: db.prepare('SELECT hex(ip_key) AS k, field, value FROM latest_terms ORDER BY 1, 2, 3').all(),
          latestScans: db
            .prepare(
              'SELECT hex(l.ip_key) AS k, t.field, t.value FROM latest l JOIN scan_terms t ON t.scan_row = l.scan_row ORDER BY 1, 2, 3',
            )
            .all(),
        };
      } finally {
        db.close();
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 30 }), async (steps) => {
        const path = join(dir, `facets-${n++}.db`);
        const store = await openSqliteStore({ path, checkpointIntervalMs: 0 });
        const visits = new Map<number, string>();
        let k = 0;
        for (const st of steps) {
          const ip = `198.18.0.${st.host}`;
          const ports = st.ports.map((p) => open(p, 'svc', { product: st.product }));
          const prior = visits.get(st.host);
          if (st.replace && prior !== undefined) {
            // A later round of the host's current visit: replaces the document under its lease.
            await store.putLease(lease(`r${k}`, ip, 'a1', 1e12));
            await store.ingestScan({ scan: scan(prior, ip, st.finishedAt, ports, { tags: st.tags }), replace: true, leaseId: `r${k++}` });
          } else {
            const id = `v${k++}`;
            visits.set(st.host, id);
            await store.ingestScan({ scan: scan(id, ip, st.finishedAt, ports, { tags: st.tags }) });
          }
        }
        const docs: ScanDocument[] = [];
        for await (const d of store.exportHistory()) docs.push(d);
        await store.close();
        const freshPath = join(dir, `facets-${n++}.db`);
        const fresh = await openSqliteStore({ path: freshPath, checkpointIntervalMs: 0 });
        for (const d of docs) await fresh.ingestScan({ scan: d });
        await fresh.close();
        const kept = facets(path);
        expect(kept.history).toEqual(facets(freshPath).history);
        expect(kept.latest).toEqual(kept.latestScans);
      }),
      { numRuns: 40 },
    );
  });

  it('migrates a version-1 database: latest-per-host search terms are rebuilt from history', async () => {
    const path = join(dir, 'v1.db');
    const store = await openSqliteStore({ path });
    await store.ingestScan({ scan: scan('a', '198.18.0.1', 1000, [open(22, 'ssh')], { tags: ['dmz'] }) });
    await store.ingestScan({ scan: scan('b', '198.18.0.1', 2000, [open(80, 'http')], { tags: ['dmz'] }) });
    await store.ingestScan({ scan: scan('c', '198.18.0.2', 1500, [open(22, 'ssh')]) });
    await store.close();
    const db = new Database(path);
    db.exec('DROP TABLE latest_terms');
    db.pragma('user_version = 1');
    db.close();
    const migrated = await openSqliteStore({ path });
    try {
      expect((await migrated.search({ type: 'port', port: 22 })).items.map((s) => s.scanId)).toEqual(['c']);
      expect((await migrated.search({ type: 'term', field: 'tag', value: 'dmz' })).items.map((s) => s.scanId)).toEqual(['b']);
      expect(await migrated.topPorts()).toEqual([
        { port: 22, hosts: 1 },
        { port: 80, hosts: 1 },
      ]);
    } finally {
      await migrated.close();
    }
  });

  it('migrates a version-5 database: its work queue is kept (ids, documents) and served by class, then in order', async () => {
    const path = join(dir, 'v5-queue.db');
    const db = new Database(path);
    migrateSqlite(db, path, 5);
    const queued = [
      { ip: '198.18.1.1', tags: [], reason: 'cycle', enqueuedAt: 1, cycle: 1 },
      { ip: '198.18.1.2', tags: [], reason: 'cycle', enqueuedAt: 1, cycle: 1 },
      { ip: '198.18.0.9', tags: ['dmz'], reason: 'manual', enqueuedAt: 2 },
      { ip: '198.18.0.1', tags: [], reason: 'followup', enqueuedAt: 3, ports: [8080], session: { round: 1 }, round: 1, cycle: 1 },
      { ip: '198.18.0.2', tags: [], reason: 'expired', enqueuedAt: 4, ports: [22], session: { round: 0 }, round: 0, cycle: 1 },
    ];
    // The version-5 layout: (seq, doc), served by seq alone.
    for (const item of queued) db.prepare('INSERT INTO work_queue (doc) VALUES (?)').run(JSON.stringify(item));
    db.close();
    const migrated = await openSqliteStore({ path });
    try {
      // Rows written before range specs: their `ports` lists are read as `portRanges`.
      const { ports: _p3, ...followUp } = queued[3]!;
      const { ports: _p4, ...expired } = queued[4]!;
      expect(await migrated.listQueuedWork()).toEqual([
        { ...followUp, portRanges: '8080', id: '4' },
        { ...expired, portRanges: '22', id: '5' },
        { ...queued[2], id: '3' },
        { ...queued[0], id: '1' },
        { ...queued[1], id: '2' },
      ]);
      // New items take their class's place; ids keep increasing.
      const [rescan] = await migrated.enqueueWork([{ ip: '198.18.0.10', tags: [], reason: 'manual', enqueuedAt: 5 }]);
      expect(rescan!.id).toBe('6');
      expect((await migrated.dequeueWork(4)).map((q) => q.ip)).toEqual(['198.18.0.1', '198.18.0.2', '198.18.0.9', '198.18.0.10']);
      expect((await migrated.dequeueWork(4)).map((q) => q.ip)).toEqual(['198.18.1.1', '198.18.1.2']);
    } finally {
      await migrated.close();
    }
  });

  it('creates the schema at the current version and refuses a newer database', async () => {
    const path = join(dir, 'newer.db');
    const store = await openSqliteStore({ path });
    await store.close();
    const db = new Database(path);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await expect(openSqliteStore({ path })).rejects.toSatisfy(
      (e) => isPortbanditError(e, 'PB_ERR_STORE') && e.message.includes('newer than this portbandit understands'),
    );
  });

  it('commits a lease ahead of ingests called before it in the same turn, in a commit of its own', async () => {
    const store = await openSqliteStore({ path: join(dir, 'lanes.db'), checkpointIntervalMs: 0 });
    try {
      const order: string[] = [];
      const ingests = Array.from({ length: 40 }, (_, i) =>
        store.ingestScan({ scan: scan(`s${i}`, `198.18.1.${i + 1}`, 1000, [open(22, 'ssh')]) }).then(() => order.push(`ingest ${i}`)),
      );
      let seenAtLease: unknown = 'not yet';
      const leased = store.putLease(lease('l1', '198.18.2.1', 'a1', 5000)).then(async () => {
        order.push('lease');
        // Answered before the ingests' commit: none of them is visible yet.
        seenAtLease = await store.getScan('s0');
      });
      await Promise.all([...ingests, leased]);
      expect(order[0]).toBe('lease');
      expect(order.slice(1)).toEqual(Array.from({ length: 40 }, (_, i) => `ingest ${i}`));
      expect(seenAtLease).toBeUndefined();
      expect(await store.getLease('l1')).toEqual(lease('l1', '198.18.2.1', 'a1', 5000));
      expect(await store.count(undefined, { view: 'history' })).toBe(40);
    } finally {
      await store.close();
    }
  });

  it('commits leases before the check phase: ahead of callbacks already queued there', async () => {
    const store = await openSqliteStore({ path: join(dir, 'lease-first.db'), checkpointIntervalMs: 0 });
    try {
      // A batch of results' next slice, waiting in the check phase (setImmediate).
      const order: string[] = [];
      setImmediate(() => order.push('queued before'));
      const leases = Array.from({ length: 64 }, (_, i) => lease(`l${i}`, `198.18.3.${i + 1}`, 'a1', 5000));
      await Promise.all(leases.map((l) => store.putLease(l)));
      order.push('leases committed');
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(order).toEqual(['leases committed', 'queued before']);
      expect(await store.listLeases({ agentId: 'a1' })).toHaveLength(64);
    } finally {
      await store.close();
    }
  });

  it('group-committed ingests in one tick fail one by one: a bad scan does not take its batch down', async () => {
    const store = await openSqliteStore({ path: join(dir, 'batch.db') });
    try {
      const poisoned = { kind: 'service-new' as const, at: 0, ip: '198.18.0.2', scanId: 's2', tags: [], detail: { big: 1n } };
      const results = await Promise.allSettled([
        store.ingestScan({ scan: scan('s1', '198.18.0.1', 1000, [open(22, 'ssh')]) }),
        store.ingestScan({ scan: scan('s2', '198.18.0.2', 1000, [open(22, 'ssh')]), events: [poisoned] }),
        store.ingestScan({ scan: scan('s3', '198.18.0.3', 1000, [open(80, 'http')]) }),
        store.ingestScan({ scan: scan('s3', '198.18.0.3', 1000, [open(80, 'http')]) }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect(results.map((r) => (r.status === 'fulfilled' ? r.value.inserted : undefined))).toEqual([true, undefined, true, false]);
      expect((await store.search(undefined, { view: 'history' })).items.map((s) => s.scanId)).toEqual(['s3', 's1']);
      expect(await store.getScan('s2')).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
