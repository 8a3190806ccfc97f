import { expect, test } from 'vitest';
import { AddressSpace } from '../../src/coordinator/address-space.js';
import { CycleCoverage } from '../../src/coordinator/coverage.js';
import { EventWaiters } from '../../src/coordinator/event-waiters.js';

test('cycle coverage counts per tag ("" = untagged) and starts over when a later cycle begins', () => {
  const space = AddressSpace.build([
    { target: '198.18.7.0/30', tags: ['web'], blocklist: false },
    { target: '198.18.8.0/31', tags: [], blocklist: false },
  ]);
  const coverage = new CycleCoverage();
  expect(coverage.begin(1)).toBe(true);
  expect(coverage.begin(1)).toBe(false);
  coverage.handedOut(['web']);
  coverage.handedOut(['web']);
  coverage.scanned(['web']);
  coverage.handedOut([]);
  const rows = Object.fromEntries(coverage.report(space).map((r) => [r.tag, r]));
  expect(rows.web).toEqual({ tag: 'web', handedOut: 2, scanned: 1, addresses: '4', fraction: 0.25 });
  expect(rows['']).toEqual({ tag: '', handedOut: 1, scanned: 0, addresses: '2', fraction: 0 });
  expect(coverage.begin(2)).toBe(true);
  expect(coverage.cycle).toBe(2);
  expect(coverage.report(space).every((r) => r.handedOut === 0 && r.scanned === 0)).toBe(true);
});

test('event waiters resolve on wake or after their timeout, and are forgotten once resolved', async () => {
  const waiters = new EventWaiters();
  const order: string[] = [];
  const a = waiters.wait(60_000).then(() => order.push('a'));
  const b = waiters.wait(60_000).then(() => order.push('b'));
  expect(waiters.size).toBe(2);
  waiters.wake();
  await Promise.all([a, b]);
  expect(order).toEqual(['a', 'b']);
  expect(waiters.size).toBe(0);
  const started = performance.now();
  await waiters.wait(20);
  expect(performance.now() - started).toBeGreaterThanOrEqual(15);
  expect(waiters.size).toBe(0);
});
