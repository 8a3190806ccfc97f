import { afterEach, expect, test } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { resultFor } from './helpers.js';
import { type UnitRig, openUnitRig } from './unit-rig.js';

let rig: UnitRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function leased(r: UnitRig, n = 1): Promise<{ items: WorkItem[]; agent: Awaited<ReturnType<UnitRig['agent']>> }> {
  await r.units.policies.set('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 443] }, periodSeconds: null });
  const agent = await r.agent();
  return { items: await r.units.leasing.getWorkBatch(agent, n), agent };
}

test('stores a result with its events, wakes the long-poll waiters and counts the host as scanned', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.5.0/30', tags: ['web'] }] });
  const { items, agent } = await leased(rig);
  const item = items[0]!;
  const woken = rig.units.waiters.wait(60_000).then(() => 'woken');
  const answer = await rig.units.intake.submit(agent, resultFor(item, [80], rig.clock.now()));
  expect(answer).toMatchObject({ scanId: item.leaseId, accepted: true, duplicate: false });
  expect(answer.events).toBeGreaterThan(0);
  expect(await Promise.race([woken, new Promise((r) => setTimeout(() => r('timeout'), 2000))])).toBe('woken');
  const scan = (await rig.store.getScan(item.leaseId))!;
  expect(scan).toMatchObject({ ip: item.ip, tags: ['web'], agentId: agent.id });
  expect(scan.ports.filter((p) => p.state === 'open').map((p) => p.port)).toEqual([80]);
  expect(await rig.store.getLease(item.leaseId)).toBeUndefined();
  expect(rig.units.coverage.report(rig.units.scope.addressSpace)[0]).toMatchObject({ tag: 'web', scanned: 1 });
  // A retried submission of the same lease is a duplicate, and stores nothing twice.
  expect(await rig.units.intake.submit(agent, resultFor(item, [80], rig.clock.now()))).toMatchObject({ accepted: false, duplicate: true });
});

test('a result for another address or with a port outside its work item is refused with its own code, and nothing is stored', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.5.0/30' }] });
  const { items, agent } = await leased(rig);
  const item = items[0]!;
  const other = item.ip === '198.18.5.1' ? '198.18.5.2' : '198.18.5.1';
  const wrongIp = await rig.units.intake.submit(agent, { ...resultFor(item, [80], rig.clock.now()), ip: other }).catch((e: unknown) => e);
  expect(isPortbanditError(wrongIp, 'PB_ERR_LEASE_ADDRESS') && wrongIp.where === 'ip').toBe(true);
  const wrongPort = await rig.units.intake
    .submit(agent, { ...resultFor(item, [80], rig.clock.now()), ports: [{ port: 8080, state: 'open' }] })
    .catch((e: unknown) => e);
  expect(isPortbanditError(wrongPort, 'PB_ERR_LEASE_PORT') && wrongPort.where === 'ports[0].port').toBe(true);
  const stranger = await rig.agent('stranger');
  const notYours = await rig.units.intake.submit(stranger, resultFor(item, [80], rig.clock.now())).catch((e: unknown) => e);
  expect(isPortbanditError(notYours, 'PB_ERR_FORBIDDEN')).toBe(true);
  expect(await rig.store.getScan(item.leaseId)).toBeUndefined();
  expect(await rig.store.getLease(item.leaseId)).toBeDefined();
  expect((await rig.metrics.results.get()).values.find((v) => v.labels.outcome === 'rejected')?.value).toBe(3);
});

test('a lease whose stored session is damaged is refused with PB_ERR_STORE naming the lease and the field', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.5.0/30' }] });
  const { items, agent } = await leased(rig);
  const lease = (await rig.store.getLease(items[0]!.leaseId))!;
  await rig.store.takeExpiredLeases(lease.deadline + 1, 10, { requeue: false });
  await rig.store.putLease({ ...lease, id: 'lease_damaged', session: { state: { allowance: 3 }, policy: '' } });
  const refused = await rig.units.intake
    .submit(agent, resultFor({ ...items[0]!, leaseId: 'lease_damaged' }, [80], rig.clock.now()))
    .catch((e: unknown) => e);
  expect(isPortbanditError(refused, 'PB_ERR_STORE') && refused.where === 'lease lease_damaged').toBe(true);
  expect((refused as Error).message).toContain('state.round');
  expect(await rig.store.getScan('lease_damaged')).toBeUndefined();
});
