import fc from 'fast-check';
import { expect, test } from 'vitest';
import { AddressSpace } from '../../src/coordinator/address-space.js';
import { CycleCoverage, storedCoverageRows } from '../../src/coordinator/coverage.js';
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
  let rows = Object.fromEntries(coverage.report(space).map((r) => [r.tag, r]));
  expect(rows.web).toEqual({ tag: 'web', handedOut: 2, scanned: 1, finished: 0, addresses: '4', fraction: 0.25 });
  expect(rows['']).toEqual({ tag: '', handedOut: 1, scanned: 0, finished: 0, addresses: '2', fraction: 0 });
  // The visit's last round: finished, per tag and in the total.
  coverage.finished(['web']);
  rows = Object.fromEntries(coverage.report(space).map((r) => [r.tag, r]));
  expect(rows.web).toMatchObject({ scanned: 1, finished: 1 });
  expect(coverage.finishedTotal).toBe(1);
  expect(coverage.begin(2)).toBe(true);
  expect(coverage.cycle).toBe(2);
  expect(coverage.report(space).every((r) => r.handedOut === 0 && r.scanned === 0 && r.finished === 0)).toBe(true);
  expect(coverage.finishedTotal).toBe(0);
  // Resumed from the store: scanned less the visits with a later round pending are finished.
  coverage.resume(
    3,
    new Map([
      ['web', 3],
      ['', 2],
    ]),
    new Map([['web', 1]]),
    { scanned: 5, pending: 1 },
  );
  rows = Object.fromEntries(coverage.report(space).map((r) => [r.tag, r]));
  expect(rows.web).toMatchObject({ handedOut: 3, scanned: 3, finished: 2 });
  expect(rows['']).toMatchObject({ handedOut: 2, scanned: 2, finished: 2 });
  expect(coverage.finishedTotal).toBe(4);
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

test('coverage counted in the store (several coordinators): one row per tag, handed out >= scanned >= finished >= 0, fraction in [0, 1]', () => {
  const space = AddressSpace.build([
    { target: '198.18.7.0/30', tags: ['web'], blocklist: false },
    { target: '198.18.8.0/31', tags: [], blocklist: false },
    { target: '198.18.9.0/29', tags: ['db', 'web'], blocklist: false },
  ]);
  const tag = fc.constantFrom('web', 'db', '', 'gone');
  const counts = fc.array(fc.tuple(tag, fc.nat({ max: 40 })), { maxLength: 6 }).map((pairs) => new Map<string, number>(pairs));
  fc.assert(
    fc.property(counts, counts, counts, (scanned, pending, inFlight) => {
      const rows = storedCoverageRows(space, { scanned, pending, inFlight });
      // The scope's tags, each once; a tag only the counts name ("gone", out of scope since) has no row.
      expect(rows.map((r) => r.tag).sort()).toEqual(['', 'db', 'web']);
      for (const r of rows) {
        expect(r.scanned).toBe(scanned.get(r.tag) ?? 0);
        expect(r.handedOut).toBeGreaterThanOrEqual(r.scanned);
        expect(r.finished).toBeLessThanOrEqual(r.scanned);
        expect(r.finished).toBeGreaterThanOrEqual(0);
        expect(r.fraction).toBeGreaterThanOrEqual(0);
        expect(r.fraction).toBeLessThanOrEqual(1);
        expect(r.addresses).toBe(String(space.sizeByTag().get(r.tag)));
      }
    }),
  );
  // The figures as a shared coordinator shows them: 5 of web's 12 scanned, 2 of them with a round to come, 3 more in flight.
  const web = storedCoverageRows(space, {
    scanned: new Map([['web', 5]]),
    pending: new Map([['web', 2]]),
    inFlight: new Map([['web', 3]]),
  }).find((r) => r.tag === 'web');
  expect(web).toEqual({ tag: 'web', handedOut: 8, scanned: 5, finished: 3, addresses: '12', fraction: 5 / 12 });
});
