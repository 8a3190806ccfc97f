import { afterEach, expect, test } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { readLeaseSession } from '../../src/coordinator/lease-session.js';
import { type UnitRig, openUnitRig } from './unit-rig.js';

let rig: UnitRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const SCOPE = [{ range: '198.18.3.0/29', tags: ['lab'] }];

test('hands out every address of the scope once per cycle, each with a stored lease carrying a typed session', async () => {
  rig = await openUnitRig({ scope: SCOPE });
  await rig.units.policies.set('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 443] }, periodSeconds: null });
  const agent = await rig.agent();
  const items = await rig.units.leasing.getWorkBatch(agent, 20);
  // The batch stops at the end of the cycle rather than start the next one inside it.
  expect(items.map((i) => i.ip).sort()).toEqual(Array.from({ length: 8 }, (_, k) => `198.18.3.${k}`).sort());
  expect(new Set(items.map((i) => i.cycle))).toEqual(new Set([1]));
  expect(items.every((i) => i.reason === 'cycle' && i.round === 0 && i.ports.join() === '22,80,443')).toBe(true);
  for (const item of items) {
    const lease = (await rig.store.getLease(item.leaseId))!;
    expect(lease).toMatchObject({ ip: item.ip, agentId: agent.id, portRanges: '22,80,443', round: 0, cycle: 1 });
    expect(readLeaseSession(lease.session, lease.id)).toMatchObject({ policy: '', epoch: 1, previousOpen: [], previousEpoch: -1 });
  }
  expect(rig.units.leasing.progress()).toMatchObject({ cycle: 1, dispensed: 8, fraction: 1 });
  expect(rig.units.coverage.report(rig.units.scope.addressSpace)).toEqual([
    { tag: 'lab', handedOut: 8, scanned: 0, finished: 0, addresses: '8', fraction: 0 },
  ]);
  // No period: cycles run back to back, but a cycle does not begin while the last one's visits
  // are still being scanned (their leases live), or every address would be visited twice at once.
  expect(await rig.units.leasing.getWorkBatch(agent, 1)).toEqual([]);
  rig.clock.advance(1000);
  expect(await rig.units.leasing.getWorkBatch(agent, 1)).toEqual([]);
  // Once they are done (here: expired; a stored result ends a lease too), cycle 2 begins.
  rig.clock.advance(items[0]!.deadline - rig.clock.now());
  expect((await rig.units.leasing.getWorkBatch(agent, 1))[0]!.cycle).toBe(2);
});

test('a manual rescan is served before the cycle; an address outside the scope is refused and nothing is queued', async () => {
  rig = await openUnitRig({ scope: SCOPE, blocklist: ['198.18.3.7'] });
  const leasing = rig.units.leasing;
  const refused = await leasing.requestRescan(['198.18.3.5', '198.18.3.7']).catch((e: unknown) => e);
  expect(isPortbanditError(refused, 'PB_ERR_UNSAFE_TARGET') && refused.where === 'ips[1]').toBe(true);
  expect(await rig.store.listQueuedWork()).toEqual([]);
  await leasing.requestRescan(['198.18.3.5']);
  const [first] = await leasing.getWorkBatch(await rig.agent(), 1);
  expect(first).toMatchObject({ ip: '198.18.3.5', reason: 'manual', tags: ['lab'] });
});

test('an expired lease goes back to the queue and is handed out again with the same ports and round', async () => {
  rig = await openUnitRig({ scope: SCOPE, flags: { leaseSeconds: 60 } });
  const leasing = rig.units.leasing;
  const agent = await rig.agent();
  const [item] = await leasing.getWorkBatch(agent, 1);
  expect(await leasing.requeueExpired(rig.clock.now())).toBe(0);
  rig.clock.advance(60_001);
  expect(await leasing.requeueExpired(rig.clock.now())).toBe(1);
  expect((await rig.metrics.leasesExpired.get()).values[0]!.value).toBe(1);
  expect(await rig.store.getLease(item!.leaseId)).toBeUndefined();
  const [again] = await leasing.getWorkBatch(agent, 1);
  expect(again).toMatchObject({ ip: item!.ip, ports: item!.ports, round: item!.round, reason: 'expired', cycle: 1 });
  expect(again!.leaseId).not.toBe(item!.leaseId);
});

test('with agent groups in use, a cycle address for another group is queued for it, once', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.4.0/30', tags: ['lan'] }] });
  await rig.units.policies.set('lan', { strategy: 'top-k', budget: 10, groups: ['internal'] });
  const inside = await rig.agent('inside', ['internal']);
  const outside = await rig.agent('outside', ['external']);
  expect(await rig.units.leasing.getWorkBatch(outside, 4)).toEqual([]);
  expect(await rig.units.leasing.getWorkBatch(outside, 4)).toEqual([]); // queued once, not again
  const queued = await rig.store.listQueuedWork();
  expect(queued.map((q) => [q.ip, q.groups]).sort()).toEqual(
    ['198.18.4.0', '198.18.4.1', '198.18.4.2', '198.18.4.3'].map((ip) => [ip, ['internal']]),
  );
  const items = await rig.units.leasing.getWorkBatch(inside, 8);
  expect(items.map((i) => i.ip).sort()).toEqual(['198.18.4.0', '198.18.4.1', '198.18.4.2', '198.18.4.3']);
  expect(await rig.store.listQueuedWork()).toEqual([]);
});
