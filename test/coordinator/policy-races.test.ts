import { afterEach, expect, test } from 'vitest';
import type { Store } from '../../src/store/types.js';
import { type UnitRig, openUnitRig } from './unit-rig.js';

/**
 * A policy changed while a lease, another change or a reload of learned states is half done (each
 * awaits the store between its steps). Found by edits-under-load.test.ts with two coordinators
 * on PostgreSQL, where those awaits are network round trips; here a store read is held open by
 * hand so the change lands exactly inside it.
 */
let rig: UnitRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Hold the store's `method` open until `release` (its first call whose first argument `when` accepts). */
function hold(store: Store, method: 'latestAnsweredScan' | 'getDocument' | 'putDocument', when: (first: unknown) => boolean = () => true) {
  const target = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = target[method]!.bind(store);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  let held = false;
  target[method] = async (...args: unknown[]) => {
    if (!held && when(args[0])) {
      held = true;
      entered();
      await gate;
    }
    return original(...args);
  };
  return { inside, release };
}

test("a lease whose tag's policy is deleted while it reads the host's last visit is served with the policy left (was: 500)", async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.4.0/30', tags: ['web'] }] });
  const { policies, leasing, learner } = rig.units;
  await policies.set('web', { strategy: 'top-k', budget: 7 });
  const agent = await rig.agent();
  // The lease's read of the host's last visit (SQLite's fast path of it).
  const read = hold(rig.store, 'latestAnsweredScan');
  const leasing1 = leasing.getWorkBatch(agent, 1);
  await read.inside;
  await policies.delete('web');
  expect(learner.has('web')).toBe(false);
  read.release();
  const [item] = await leasing1;
  expect(item).toBeDefined();
  expect(item!.ip).toMatch(/^198\.18\.4\./u);
  // The default policy's strategy chose its ports (top-k at 7 would have named 7).
  expect(item!.ports.length).not.toBe(7);
});

test('a set made while a delete of the same tag is writing what it learned leaves the book and the learner agreeing', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.4.0/30', tags: ['web'] }] });
  const { policies, learner } = rig.units;
  await policies.set('web', { strategy: 'top-k', budget: 7 });
  // Something learned for 'web', so dropping it first writes its state (held open here).
  learner.add(
    'web',
    { ip: '198.18.4.1', tags: ['web'], prefix: '198.18.4.0/24', epoch: 1, probed: [22, 80], open: [80], previousOpen: [], sweep: false },
    rig.clock.now(),
  );
  const write = hold(rig.store, 'putDocument', (collection) => collection === 'strategyStates');
  const deleting = policies.delete('web');
  await write.inside;
  const setting = policies.set('web', { strategy: 'top-k', budget: 9 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  write.release();
  await Promise.all([deleting, setting]);
  expect(policies.keyOf(['web'])).toBe('web');
  expect(learner.has('web')).toBe(true);
  expect(learner.policy('web').budget).toBe(9);
});

test('reloading the learned states (another coordinator learns) does not undo a policy changed while it read them', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.4.0/30', tags: ['web'] }] });
  const { policies, learner } = rig.units;
  await policies.set('web', { strategy: 'top-k', budget: 7 });
  // The learner elsewhere wrote a new state for 'web': the next reload reads it.
  await rig.store.putDocument(
    'strategyStates',
    'web/top-k',
    { strategy: 'top-k', state: undefined, batches: 1, learned: 1, pseudo: 0, lossyBatches: 0 },
    {
      at: rig.clock.now(),
    },
  );
  const read = hold(rig.store, 'getDocument', (collection) => collection === 'strategyStates');
  const reloading = learner.reloadChanged(rig.clock.now());
  await read.inside;
  await policies.set('web', { strategy: 'top-k', budget: 9 });
  read.release();
  await reloading;
  expect(learner.policy('web').budget).toBe(9);
  expect(policies.policy('web')!.budget).toBe(9);
});

test('a result learned while a policy change reads its stored state is learned by the new entry (was: dropped)', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.4.0/30', tags: ['web'] }] });
  const { policies, learner } = rig.units;
  await policies.set('web', { strategy: 'adaptive', budget: 50 });
  const read = hold(rig.store, 'getDocument', (collection) => collection === 'strategyStates');
  const setting = policies.set('web', { strategy: 'adaptive', budget: 60 });
  await read.inside;
  // The change has written what the old entry learned and is reading the state back.
  learner.add(
    'web',
    { ip: '198.18.4.1', tags: ['web'], prefix: '198.18.4.0/24', epoch: 1, probed: [22, 80], open: [80], previousOpen: [], sweep: false },
    rig.clock.now(),
  );
  read.release();
  await setting;
  expect(learner.policy('web').budget).toBe(60);
  await learner.flush('web', rig.clock.now());
  const stored = await rig.store.getDocument<{ learned: number }>('strategyStates', 'web/adaptive');
  expect(stored?.value.learned).toBe(1);
});
