import type { FastifyInstance } from 'fastify';
import pgModule from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { addScope, bearer, manualClock, openApp, tempDataDir, tokens } from './helpers.js';

const missing = postgresMissing();
if (missing) console.warn(`shared-queue: skipped: ${missing}`);

/**
 * A coordinator on a real PostgreSQL (a throwaway cluster): the shared queue hides what a lease
 * request dequeues until the lease for it is written. When that write fails, the items must come
 * back at once, not after their hold (a whole lease time: 900 s here, the default).
 */
describe.skipIf(missing !== undefined)('the shared queue after a failed lease write', () => {
  const pg = usePostgres();
  let app: FastifyInstance | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await app?.close();
    cleanup?.();
  });

  it('gives the dequeued items back at once, and the next request leases them', async () => {
    const schema = pg.freshSchema();
    const data = tempDataDir();
    cleanup = data.cleanup;
    app = await openApp(data.dir, manualClock().now, { postgresUrl: pg.url(), postgresSchema: schema, leaseSeconds: 900 });
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.30.0/30', tags: ['lab'] }]);
    const lease = (max: number) => app!.inject({ method: 'GET', url: `/api/v1/agent/work?max=${max}`, headers: bearer(t.agents[0]!) });

    // The database refuses leases of one address: a real PostgreSQL error (a CHECK violation) in
    // the statement that writes the batch's leases, so none of the batch is stored.
    const sql = new pgModule.Client({ connectionString: pg.url(), options: `-c search_path=${schema}` });
    await sql.connect();
    try {
      await sql.query(`ALTER TABLE leases ADD CONSTRAINT refuse_one CHECK (ip <> '198.18.30.2')`);
      const all = ['198.18.30.0', '198.18.30.1', '198.18.30.2', '198.18.30.3'];
      // The request dequeues the four cycle addresses. Written one by one, the refused lease fails
      // alone (three served); written as one batch, all four fail (an error answer). Either way,
      // what was not leased is in the queue again, visible now, not held for 900 s.
      const first = await lease(4);
      const served = first.statusCode === 200 ? (first.json() as { items: WorkItem[] }).items.map((w) => w.ip) : [];
      expect(served).not.toContain('198.18.30.2');
      const store = app.coordinator.store;
      expect(await store.countLeases()).toBe(served.length);
      const back = (await store.listQueuedWork()).map((q) => q.ip);
      expect(back).toContain('198.18.30.2');
      expect([...served, ...back].sort()).toEqual(all);
      await sql.query('ALTER TABLE leases DROP CONSTRAINT refuse_one');
      const again = (await lease(4)).json() as { items: WorkItem[] };
      expect(again.items.map((w) => w.ip).sort()).toEqual([...back].sort());
      expect(again.items.every((w) => w.reason === 'cycle' && w.cycle === 1)).toBe(true);
      expect(await store.countQueuedWork()).toBe(0);
    } finally {
      await sql.end();
    }
  });
});
