import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { lease, open, scan } from './conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'portbandit-checkpointer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Ingest `count` scans (each with a lease), 50 per grouped commit, as the coordinator does. */
async function write(store: Awaited<ReturnType<typeof openSqliteStore>>, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, async (_, k) => {
        const n = i + k;
        const ip = `198.18.${(n >> 8) & 255}.${n & 255}`;
        await store.putLease(lease(`lease-${n}`, ip, 'agent-1', 1e12));
        await store.ingestScan({
          scan: scan(`lease-${n}`, ip, 60_000 + n, [open(80, 'http', { product: `nginx ${n}` })]),
          events: [],
          leaseId: `lease-${n}`,
        });
      }),
    );
  }
}

/** Reopened without the worker: every scan written is there and every lease was consumed. */
async function expectAllStored(path: string, scans: number): Promise<void> {
  const reopened = await openSqliteStore({ path, checkpointIntervalMs: 0 });
  try {
    expect(await reopened.count(undefined, { view: 'history' })).toBe(scans);
    expect(await reopened.countLeases()).toBe(0);
  } finally {
    await reopened.close();
  }
}

describe('WAL checkpoints on a worker thread', () => {
  let attempts = 0;

  it('copies committed pages into the database file while the store is open, and loses nothing', async () => {
    const path = join(dir, 'worker.db');
    const store = await openSqliteStore({ path, checkpointIntervalMs: 20 });
    const initial = statSync(path).size;
    // Far below the main connection's backstop threshold: only the worker can have copied them.
    await write(store, 0, 1000);
    let size = statSync(path).size;
    for (let waited = 0; size < initial + 256 * 1024 && waited < 5000; waited += 20) {
      await sleep(20);
      size = statSync(path).size;
    }
    expect(size).toBeGreaterThan(initial + 256 * 1024);
    // Writes keep working while the worker checkpoints (BEGIN IMMEDIATE waits, never fails).
    await write(store, 1000, 1000);
    await store.close();

    await expectAllStored(path, 2000);
  });

  // The worker thread needs CPU to copy pages while the writer waits; on a machine loaded far past its
  // cores it can be starved once. Without the hold the WAL passes the bound every time (~54 MiB), so a
  // retry keeps the check meaningful.
  it(
    'keeps the WAL bounded under sustained writes (the writer holds a commit while the worker copies the rest)',
    { retry: 2 },
    async () => {
      // A file of its own per attempt: a retry must not find the failed attempt's leases.
      const path = join(dir, `restart-${attempts++}.db`);
      // 256 pages (1 MiB) instead of 64 MiB, so that a few thousand writes cross it many times.
      const store = await openSqliteStore({ path, checkpointIntervalMs: 20, checkpointRestartPages: 256 });
      let largest = 0;
      const watch = setInterval(() => (largest = Math.max(largest, statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0)), 5);
      try {
        // 8,000 leases and ingests back to back: ~54 MiB through the WAL, which never restarts by
        // itself (the writer never pauses).
        await write(store, 0, 8000);
      } finally {
        clearInterval(watch);
        // Closed also when an attempt fails: its checkpoint worker must not run on into the retry.
        await store.close();
      }
      expect(largest).toBeGreaterThan(0);
      // Without the hold (only resets that happen by themselves) the WAL holds everything written:
      // 54 MiB. With it, it grows past the threshold by what the writer commits between two of the
      // worker's passes (20 ms apart): 5-14 MiB here, the same for 4,000 writes as for 8,000. (The
      // bound was 8 MiB for 2,000 writes; the group commit without a savepoint per write writes
      // faster, and 2,000 writes took 75-115 ms, too short a run to tell a bound from a burst.)
      expect(largest).toBeLessThan(24 * 1024 * 1024);
      await expectAllStored(path, 8000);
    },
  );

  it('starts the worker at the first grouped write, not at open: a store used to read or edit scope runs no thread', async () => {
    const path = join(dir, 'lazy.db');
    const store = await openSqliteStore({ path, checkpointIntervalMs: 20 });
    const initial = statSync(path).size;
    // Scope edits commit on their own (not grouped): with a worker started at open, its 20 ms
    // passes would copy them into the file; without one they stay in the WAL.
    for (let i = 0; i < 20; i++) await store.addScopeEntries('scope', [{ range: `198.18.${i}.0/24`, tags: [`t${i}`] }], 1000 + i);
    expect(await store.listScope('scope')).toHaveProperty('entries.length', 20);
    await sleep(200);
    expect(statSync(path).size).toBe(initial);
    // The first grouped write starts it: the WAL's pages reach the file while the store is open.
    await write(store, 0, 50);
    let size = statSync(path).size;
    for (let waited = 0; size === initial && waited < 5000; waited += 20) {
      await sleep(20);
      size = statSync(path).size;
    }
    expect(size).toBeGreaterThan(initial);
    await store.close();
    await expectAllStored(path, 50);
  });

  it('leaves the file alone without the worker until the automatic checkpoint (checkpointIntervalMs 0)', async () => {
    const path = join(dir, 'plain.db');
    const store = await openSqliteStore({ path, checkpointIntervalMs: 0 });
    const initial = statSync(path).size;
    await write(store, 0, 100);
    await sleep(100);
    expect(statSync(path).size).toBe(initial);
    await store.close();
  });
});
