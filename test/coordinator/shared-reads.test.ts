import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkItem } from '../../src/protocol/protocol.js';
import type { PostgresStore } from '../../src/store/postgres-store.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { scan, open } from '../store/fixtures.js';
import { addScope, bearer, manualClock, openApp, tempDataDir, tokens } from './helpers.js';

const missing = postgresMissing();
if (missing) console.warn(`shared-reads: skipped: ${missing}`);

/**
 * A coordinator on a real PostgreSQL: a lease batch reads its hosts' latest scans ahead, all at
 * once, so the store answers them with one query instead of one round trip per host.
 */
describe.skipIf(missing !== undefined)('a lease batch on PostgreSQL', () => {
  const pg = usePostgres();
  let app: FastifyInstance | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await app?.close();
    cleanup?.();
  });

  it("reads its hosts' latest scans together, and each visit starts from its own host's", async () => {
    const data = tempDataDir();
    cleanup = data.cleanup;
    app = await openApp(data.dir, manualClock().now, { postgresUrl: pg.url(), postgresSchema: pg.freshSchema() });
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.31.0/27', tags: ['lab'] }]);
    const store = app.coordinator.store as PostgresStore;
    // Half the hosts were seen before, each with its own odd port open.
    for (let i = 0; i < 32; i += 2) await store.ingestScan({ scan: scan(`before-${i}`, `198.18.31.${i}`, 1000, [open(40_000 + i, 'x')]) });
    const names: string[] = [];
    const query = store.db.pool.query.bind(store.db.pool);
    store.db.pool.query = ((config: unknown, ...rest: unknown[]) => {
      if (typeof config === 'object' && config !== null && 'name' in config) names.push(String((config as { name: unknown }).name));
      return (query as (...args: unknown[]) => unknown)(config, ...rest);
    }) as typeof store.db.pool.query;
    const res = await app.inject({ method: 'GET', url: '/api/v1/agent/work?max=32', headers: bearer(t.agents[0]!) });
    expect(res.statusCode).toBe(200);
    const items = (res.json() as { items: WorkItem[] }).items;
    expect(items).toHaveLength(32);
    const reads = names.filter((n) => n === 'pb_latests_get').length;
    expect(reads).toBeGreaterThan(0);
    expect(reads).toBeLessThanOrEqual(4);
    // A host seen before is probed on its own open port; one never seen has no such port.
    for (const item of items) {
      const last = Number(item.ip.split('.').at(-1));
      const ports = JSON.stringify(item);
      if (last % 2 === 0) expect(ports).toContain(String(40_000 + last));
      else expect(ports).not.toContain(String(40_000 + last));
    }
  });
});
