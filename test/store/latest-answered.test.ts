import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { ANSWERED_SEARCH_DEPTH, latestAnsweredScan, latestAnsweredScanPaged, openStore } from '../../src/store/index.js';
import type { ScanDocument } from '../../src/store/types.js';
import { open, scan } from './fixtures.js';

/** One scan of a host's history: its time (seconds, may repeat), and whether the host answered. */
const visit = fc.record({ at: fc.integer({ min: 0, max: 40 }), status: fc.constantFrom('up', 'down', 'absent') });

function scanOf(ip: string, i: number, v: { at: number; status: string }): ScanDocument {
  const host = v.status === 'absent' ? {} : { host: { status: v.status as 'up' | 'down' } };
  return scan(
    `s-${ip}-${String(i).padStart(3, '0')}`,
    ip,
    1_700_000_000_000 + v.at * 1000,
    v.status === 'up' ? [open(22, 'ssh')] : [],
    host,
  );
}

describe("a host's latest answered scan", () => {
  test.prop([fc.array(visit, { maxLength: ANSWERED_SEARCH_DEPTH + 8 }), fc.array(visit, { maxLength: 6 })], { numRuns: 40 })(
    "SQLite's fast path gives what reading the latest scan and a page of history gives, for any history",
    async (history, neighbour) => {
      // Arrange: the host's history, and another host's (whose scans must never be the answer).
      const store = await openStore({ kind: 'sqlite', path: ':memory:' });
      try {
        for (const [i, v] of history.entries()) await store.ingestScan({ scan: scanOf('198.18.0.7', i, v) });
        for (const [i, v] of neighbour.entries()) await store.ingestScan({ scan: scanOf('198.18.0.8', i, v) });

        // Act
        const fast = await latestAnsweredScan(store, '198.18.0.7');
        const paged = await latestAnsweredScanPaged(store, '198.18.0.7');

        // Assert: the same document (or none), and it is the host's and answered.
        expect(store.latestAnsweredScan).toBeDefined();
        expect(fast?.scanId).toBe(paged?.scanId);
        if (fast) {
          expect(fast.ip).toBe('198.18.0.7');
          expect(fast.host?.status).not.toBe('down');
        }
      } finally {
        await store.close();
      }
    },
  );

  test('looks no further back than ANSWERED_SEARCH_DEPTH scans: a host down for longer has no baseline', async () => {
    const store = await openStore({ kind: 'sqlite', path: ':memory:' });
    try {
      await store.ingestScan({ scan: scanOf('198.18.0.7', 0, { at: 0, status: 'up' }) });
      for (let i = 1; i < ANSWERED_SEARCH_DEPTH; i++) await store.ingestScan({ scan: scanOf('198.18.0.7', i, { at: i, status: 'down' }) });
      expect((await latestAnsweredScan(store, '198.18.0.7'))?.scanId).toBe('s-198.18.0.7-000');
      await store.ingestScan({ scan: scanOf('198.18.0.7', 99, { at: 99, status: 'down' }) });
      expect(await latestAnsweredScan(store, '198.18.0.7')).toBeUndefined();
      expect(await latestAnsweredScanPaged(store, '198.18.0.7')).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
