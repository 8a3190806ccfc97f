import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/index.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { openSqliteStoreOnThread } from '../../src/store/sqlite-thread.js';

const dir = mkdtempSync(join(tmpdir(), 'portbandit-sqlite-thread-open-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the SQLite store on its thread: opening, sharing the file, closing', () => {
  it('refuses an in-memory database, which its two connections cannot share', async () => {
    const error = await openSqliteStoreOnThread({ path: ':memory:' }).catch((e: unknown) => e);
    expect(isPortbanditError(error, 'PB_ERR_STORE')).toBe(true);
    expect((error as Error).message).toMatch(/:memory:.*database file/);
  });

  it('names the file it could not open', async () => {
    const notADatabase = join(dir, 'not-a-database.db');
    writeFileSync(notADatabase, 'this is not SQLite'.repeat(100));
    const error = await openSqliteStoreOnThread({ path: notADatabase }).catch((e: unknown) => e);
    expect(isPortbanditError(error)).toBe(true);
    expect((error as Error).message).toContain(notADatabase);
  });

  it('stores what it acknowledged in the same file the store on the calling thread opens', async () => {
    const path = join(dir, 'shared.db');
    const threaded = await openSqliteStoreOnThread({ path });
    // Writes of one turn (one message to the thread), then a read right after they resolve.
    const [first, second] = await Promise.all([
      threaded.addScopeEntries('scope', [{ range: '198.18.0.0/24', tags: ['a'] }], 1),
      threaded.putDocument('policies', '', { strategy: 'fixed' }, { at: 1 }),
    ]);
    expect(first).toBe(1);
    expect(second.revision).toBe(1);
    expect((await threaded.listScope('scope')).entries.map((e) => e.range)).toEqual(['198.18.0.0/24']);
    await threaded.close();
    await expect(threaded.getScopeVersion()).rejects.toThrow(/closed/);
    await expect(threaded.putDocument('policies', 'x', {}, { at: 2 })).rejects.toThrow(/closed/);

    const inline = await openSqliteStore({ path });
    try {
      expect(await inline.getScopeVersion()).toBe(1);
      expect((await inline.getDocument('policies', ''))?.value).toEqual({ strategy: 'fixed' });
    } finally {
      await inline.close();
    }
  });

  it('fails every call, naming the store and its thread, once the thread is gone; what it acknowledged stays', async () => {
    const path = join(dir, 'lost-thread.db');
    const threaded = await openSqliteStoreOnThread({ path });
    await threaded.addScopeEntries('scope', [{ range: '198.18.1.0/24', tags: [] }], 1);
    // Fault injection: the worker ends as if it had crashed.
    await (threaded as unknown as { worker: Worker }).worker.terminate();
    const error = await threaded.putDocument('policies', '', {}, { at: 2 }).catch((e: unknown) => e);
    expect(isPortbanditError(error, 'PB_ERR_STORE')).toBe(true);
    expect((error as Error).message).toContain("the store's thread exited");
    expect((error as Error).message).toContain(path);
    await threaded.close();
    const inline = await openSqliteStore({ path });
    try {
      expect((await inline.listScope('scope')).entries.map((e) => e.range)).toEqual(['198.18.1.0/24']);
    } finally {
      await inline.close();
    }
  });
});
