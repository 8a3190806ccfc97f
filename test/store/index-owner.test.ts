import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/open-store.js';
import { storeIdentity } from '../../src/store/store-identity.js';
import { createMemoryElasticsearchClient } from '../helpers/es-memory.js';
import { open, scan } from './fixtures.js';

// One coordination database per Elasticsearch index prefix (the in-memory double; contract
// tests only): fed events are keyed by the database's ids, so a second database on the same
// prefix would have its events skipped as replays. It is refused when the store opens.
describe('an index prefix belongs to one coordination database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-owner-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const { client } = createMemoryElasticsearchClient();
  const withIndex = (file: string, prefix: string) =>
    openStore({ kind: 'sqlite', path: join(dir, file), elasticsearch: { client, prefix } });

  it('the first database claims the prefix and opens it again; another database is refused, naming the prefix, and loses nothing', async () => {
    const a = await withIndex('a.db', 'pb');
    await a.ingestScan({ scan: scan('s1', '198.18.3.1', 1000, [open(22, 'ssh')]) });
    await a.close();
    const again = await withIndex('a.db', 'pb');
    expect((await again.getScan('s1'))?.scanId).toBe('s1');
    await again.close();

    const b = openStore({ kind: 'sqlite', path: join(dir, 'b.db'), elasticsearch: { client, prefix: 'pb' } });
    await expect(b).rejects.toMatchObject({ code: 'PB_ERR_CONFIG', where: 'store.elasticsearch.prefix' });
    await expect(b).rejects.toThrow(/pb-\* are fed by another coordination database.*--elasticsearch-prefix/su);
    // The refused store was closed (its file opens again) and another prefix is free.
    const other = await withIndex('b.db', 'pb-other');
    await other.close();
    const first = await withIndex('a.db', 'pb');
    expect((await first.getScan('s1'))?.scanId).toBe('s1');
    await first.close();
  });

  it("a database's identity is made once, kept across opens, and the same for callers racing to make it", async () => {
    const store = await openStore({ kind: 'sqlite', path: join(dir, 'id.db') });
    const [x, y] = await Promise.all([storeIdentity(store), storeIdentity(store)]);
    expect(x).toBe(y);
    expect(x).toMatch(/^[0-9a-f-]{36}$/u);
    await store.close();
    const reopened = await openStore({ kind: 'sqlite', path: join(dir, 'id.db') });
    expect(await storeIdentity(reopened)).toBe(x);
    await reopened.close();
    const fresh = await openStore({ kind: 'sqlite', path: join(dir, 'id2.db') });
    expect(await storeIdentity(fresh)).not.toBe(x);
    await fresh.close();
  });
});
