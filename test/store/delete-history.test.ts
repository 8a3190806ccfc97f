import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseQuery } from '../../src/store/query.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/types.js';
import { openFedMemoryStore } from '../helpers/es-refresh.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { open, scan } from './conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'pb-delete-history-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const stores: Array<[string, () => Promise<Store>]> = [
  ['sqlite', () => openSqliteStore({ path: join(dir, `d-${n++}.db`) })],
  // The deletion reaches the index through the outbox (searches below drain it first).
  ['sqlite + elasticsearch (in-memory cluster, fed from the outbox)', async () => (await openFedMemoryStore()).store],
];

function suite(openStore: () => Promise<Store>): void {
  it('deletes visits and their search facets, refuses a host latest, ignores unknown ids and leaves events alone', async () => {
    const store = await openStore();
    try {
      const ip = '198.18.3.1';
      await store.ingestScan({
        scan: scan('v1', ip, 1000, [open(23, 'telnet')]),
        events: [{ kind: 'service-new', at: 1000, ip, scanId: 'v1', tags: [], port: 23 }],
      });
      await store.ingestScan({ scan: scan('v2', ip, 2000, [open(22, 'ssh')]) });
      await store.ingestScan({ scan: scan('v3', ip, 3000, [open(22, 'ssh')]) });
      await store.ingestScan({ scan: scan('w1', '198.18.3.2', 1500, [open(23, 'telnet')]) });
      expect(await store.count(parseQuery('service:telnet'), { view: 'history' })).toBe(2);

      expect(await store.deleteHistory(['v1', 'v2', 'v3', 'nope', 'w1'])).toEqual({ deleted: 2, refusedLatest: 2 });

      expect((await store.hostHistory(ip)).items.map((s) => s.scanId)).toEqual(['v3']);
      expect(await store.getScan('v1')).toBeUndefined();
      expect((await store.getLatestScan(ip))?.scanId).toBe('v3');
      // The deleted visits' facets are gone from history search; latest is untouched.
      expect(await store.count(parseQuery('service:telnet'), { view: 'history' })).toBe(1);
      expect(await store.count(parseQuery('port:22'), { view: 'history' })).toBe(1);
      expect((await store.search(parseQuery('service:telnet'))).items.map((s) => s.scanId)).toEqual(['w1']);
      expect((await store.counts()).scans).toBe(2);
      // Events are the caller's business: still there, pointing at v1.
      expect((await store.readEvents()).events.map((e) => e.scanId)).toEqual(['v1']);
    } finally {
      await store.close();
    }
  });
}

describe.each(stores)('%s: deleting history entries (retention)', (_name, openStore) => suite(openStore));

const missing = postgresMissing();
if (missing) console.warn(`skipped on PostgreSQL: ${missing}`);
describe.skipIf(missing !== undefined)('postgres: deleting history entries (retention)', () => {
  const pg = usePostgres();
  suite(() => openPostgresStore({ url: pg.url(), schema: pg.freshSchema(), poolSize: 2 }));
});
