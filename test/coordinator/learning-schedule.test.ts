import { afterEach, expect, test } from 'vitest';
import { stateKey } from '../../src/coordinator/learner.js';
import { LEARN_INTERVAL_MS } from '../../src/coordinator/learning-schedule.js';
import { resultFor } from './helpers.js';
import { type UnitRig, openUnitRig } from './unit-rig.js';

let rig: UnitRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Lease and answer every address of the scope once (each visit finishes in one round). */
async function scanAll(r: UnitRig): Promise<number> {
  const agent = await r.agent();
  const items = await r.units.leasing.getWorkBatch(agent, 64);
  for (const item of items) await r.units.intake.submit(agent, resultFor(item, [item.ports[0]!], r.clock.now()));
  await r.units.learner.settled();
  return items.length;
}

test('one coordinator learns what is pending when asked or once LEARN_INTERVAL_MS has passed, and writes the state', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.6.0/29', tags: ['web'] }] });
  const { learning, learner, policies } = rig.units;
  // One round per visit (top-k asks for no follow-up here), so every answered visit is learned.
  await policies.set('', { strategy: 'top-k', budget: 3, periodSeconds: null });
  const key = stateKey('', learner.policy('').strategy);
  const revision = async () => (await rig!.store.getDocument<{ batches: number }>('strategyStates', key))?.revision ?? 0;
  await learning.sweep(rig.clock.now(), false); // the first sweep learns (nothing pending yet) and starts the interval
  const start = await revision();
  expect(await scanAll(rig)).toBe(8);
  rig.clock.advance(1000);
  await learning.sweep(rig.clock.now(), false);
  expect(await revision()).toBe(start); // learned in memory (full batches) but not written yet
  await learning.sweep(rig.clock.now(), true);
  expect(await revision()).toBeGreaterThan(start);
  const doc = (await rig.store.getDocument<{ batches: number; strategy: string }>('strategyStates', key))!.value;
  expect(doc).toMatchObject({ strategy: 'top-k', batches: 2 }); // 8 visits in batches of 4
  expect(learning.learns).toBe(true);
  // Results learned in memory are written by the sweep once the interval is over, without being asked.
  await scanAll(rig);
  const before = await revision();
  rig.clock.advance(LEARN_INTERVAL_MS);
  await learning.sweep(rig.clock.now(), false);
  expect(await revision()).toBeGreaterThan(before);
});

test('results that piled up are learned a batch at a time, with a turn of the event loop between batches; a short remainder waits', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.6.0/29', tags: ['web'] }] });
  const { learner, policies } = rig.units;
  await policies.set('', { strategy: 'top-k', budget: 3, periodSeconds: null });
  const strategy = learner.strategy('');
  const events: string[] = [];
  const observe = strategy.observe.bind(strategy);
  strategy.observe = (batch) => {
    events.push(`observe ${batch.length}`);
    return observe(batch);
  };
  const result = (i: number) => ({
    ip: `198.18.6.${i}`,
    tags: ['web'],
    prefix: '198.18.6.0/24',
    epoch: 1,
    probed: [22, 80, 443],
    open: [80],
    previousOpen: [],
    sweep: false,
  });
  // Ten results in one turn (learnBatchSize is 4 in the rig): two full batches now, two wait.
  for (let i = 0; i < 10; i++) learner.add('', result(i), rig.clock.now());
  setImmediate(() => events.push('another turn'));
  await learner.settled();
  expect(events).toEqual(['observe 4', 'another turn', 'observe 4']);
  // A flush (the sweep's, or shutdown's) learns the remainder too.
  await learner.flush('', rig.clock.now());
  expect(events).toEqual(['observe 4', 'another turn', 'observe 4', 'observe 2']);
});
