import { afterEach, expect, test } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import type { Policy } from '../../src/coordinator/policy.js';
import { type UnitRig, openUnitRig } from './unit-rig.js';

let rig: UnitRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

test("a rate-stated budget is derived from the tag's addresses and follows the scope when it grows", async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.1.0/29', tags: ['web'] }] });
  const { policies, learner, scope } = rig.units;
  await policies.set('', { strategy: 'top-k', budget: 100, periodSeconds: 3600 });
  await policies.set('web', { strategy: 'top-k', rate: 10 });
  const before = policies.budgets().find((b) => b.tag === 'web')!;
  expect(before).toMatchObject({ tag: 'web', addresses: 8, rate: 10, periodSeconds: 3600 });
  expect(before.budget).toBe(learner.policy('web').budget);
  await scope.add('scope', [{ range: '198.18.2.0/29', tags: ['web'] }]);
  const after = policies.budgets().find((b) => b.tag === 'web')!;
  expect(after.addresses).toBe(16);
  expect(after.budget).toBeLessThan(before.budget);
  expect(learner.policy('web').budget).toBe(after.budget);
});

test('a period on a tag policy is refused with PB_ERR_POLICY, and nothing is stored', async () => {
  rig = await openUnitRig();
  const refused = await rig.units.policies.set('web', { strategy: 'top-k', budget: 50, periodSeconds: 60 }).catch((e: unknown) => e);
  expect(isPortbanditError(refused, 'PB_ERR_POLICY') && refused.where === 'policy(web).periodSeconds').toBe(true);
  expect(await rig.store.getDocument('policies', 'web')).toBeUndefined();
  expect(rig.units.policies.keys()).toEqual(['']);
});

test('reload applies a policy edited by another process and drops a stored one that does not validate', async () => {
  rig = await openUnitRig();
  const { policies, learner, store } = { ...rig.units, store: rig.store };
  const stated = await policies.set('web', { strategy: 'top-k', budget: 50 });
  await store.putDocument<Policy>('policies', 'web', { ...stated, budget: 20 }, { at: rig.clock.now() });
  await store.putDocument('policies', 'broken', { ...stated, strategy: 'no-such-strategy' }, { at: rig.clock.now() });
  expect(await policies.reload()).toBe(true);
  expect(policies.policy('web')!.budget).toBe(20);
  expect(learner.policy('web').budget).toBe(20);
  expect(policies.policy('broken')).toBeUndefined();
  expect(rig.log.lines.some((l) => l.level === 'error' && (l.obj as { policy?: string }).policy === 'broken')).toBe(true);
  expect(await policies.reload()).toBe(false);
});

test("a host's allowed agent groups are the intersection of its tags' groups; its policy is its first tag that has one", async () => {
  rig = await openUnitRig();
  const { policies } = rig.units;
  expect(policies.groupsInUse()).toBe(false);
  await policies.set('lan', { strategy: 'top-k', budget: 50, groups: ['internal'] });
  await policies.set('dmz', { strategy: 'top-k', budget: 50, groups: ['external', 'internal'], retention: { keepLast: 3 } });
  expect(policies.groupsInUse()).toBe(true);
  expect(policies.allowedGroups(['lan', 'dmz'])).toEqual(['internal']);
  expect(policies.allowedGroups(['other'])).toBeUndefined();
  expect(policies.keyOf(['other', 'dmz', 'lan'])).toBe('dmz');
  expect(policies.retentionRuleFor(['dmz'])).toEqual({ keepLast: 3 });
  expect(policies.anyRetentionRule()).toBe(true);
  const bad = await policies.set('lan', { strategy: 'top-k', budget: 50, groups: [] }).catch((e: unknown) => e);
  expect(isPortbanditError(bad, 'PB_ERR_GROUP')).toBe(true);
});

test('a policy becomes the policy of its hosts only once the learner has loaded it (reload and set)', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.1.0/29', tags: ['web'] }] });
  const { policies, learner } = rig.units;
  // Checked between every two steps of the load (most of its awaits resolve as microtasks on
  // SQLite, a write's commit in a later tick): a lease served meanwhile asks the learner for the
  // strategy of the key the book names.
  const watch = async (loading: Promise<unknown>) => {
    let done = false;
    const checked: string[] = [];
    void loading.finally(() => (done = true));
    while (!done) {
      const key = policies.keyOf(['web']);
      checked.push(key);
      expect(learner.has(key), `the book names "${key}", the learner has ${learner.keys().join(', ')}`).toBe(true);
      if (checked.length % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
      else await Promise.resolve();
    }
    await loading;
    return checked;
  };
  await rig.store.putDocument<Policy>('policies', 'web', { strategy: 'top-k', budget: 20 } as Policy, { at: rig.clock.now() });
  const reloaded = await watch(policies.reload());
  expect(reloaded.length).toBeGreaterThan(1);
  expect(policies.keyOf(['web'])).toBe('web');
  await policies.delete('web');
  const set = await watch(policies.set('web', { strategy: 'top-k', budget: 30 }));
  expect(set.length).toBeGreaterThan(1);
  expect(learner.policy('web').budget).toBe(30);
});
