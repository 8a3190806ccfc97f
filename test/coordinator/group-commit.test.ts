import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Lease } from '../../src/store/types.js';
import { tempDataDir } from './helpers.js';
import { join } from 'node:path';

const lease = (id: string, ip: string): Lease => ({
  id,
  ip,
  agentId: 'agent-1',
  portRanges: '22,80',
  tags: [],
  session: { round: 0 },
  issuedAt: 1,
  deadline: 2,
  round: 0,
  reason: 'cycle',
});

describe('SQLite group commit of the coordinator hot writes', () => {
  let data: ReturnType<typeof tempDataDir>;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  it('applies grouped writes of one turn in call order, fails only the failing one, and commits the rest', async () => {
    const path = join(data.dir, 'pb.db');
    const store = await openSqliteStore({ path });
    await store.putLease(lease('lease-a', '198.18.0.1'));
    // All issued in the same turn: they share one transaction.
    const results = await Promise.allSettled([
      store.putLease(lease('lease-b', '198.18.0.2')),
      store.putLease(lease('lease-a', '198.18.0.3')), // duplicate id: this one alone fails
      store.enqueueWork([{ ip: '198.18.0.4', tags: [], reason: 'manual', enqueuedAt: 3 }]),
      // Not grouped: its own transaction at once, so it runs before the group and does not see
      // the item enqueued in the same turn (getwork's latency; the queue is FIFO either way).
      store.dequeueWork(1),
      store.completeLease('lease-a'),
    ]);
    expect(results[0]!.status).toBe('fulfilled');
    expect(results[1]!.status).toBe('rejected');
    expect(isPortbanditError((results[1] as PromiseRejectedResult).reason, 'PB_ERR_CONFLICT')).toBe(true);
    expect(results[3]).toEqual({ status: 'fulfilled', value: [] });
    expect(results[4]).toMatchObject({ status: 'fulfilled', value: { id: 'lease-a', ip: '198.18.0.1' } });
    await store.close();

    const reopened = await openSqliteStore({ path });
    expect((await reopened.listLeases()).map((l) => [l.id, l.ip])).toEqual([['lease-b', '198.18.0.2']]);
    expect((await reopened.dequeueWork(5)).map((q) => q.ip)).toEqual(['198.18.0.4']);
    await reopened.close();
  });

  it('close() commits writes still waiting for their turn', async () => {
    const path = join(data.dir, 'pb.db');
    const store = await openSqliteStore({ path });
    const pending = store.putLease(lease('lease-c', '198.18.0.5'));
    await store.close();
    await pending;
    const reopened = await openSqliteStore({ path });
    expect((await reopened.getLease('lease-c'))?.ip).toBe('198.18.0.5');
    await reopened.close();
  });
});
