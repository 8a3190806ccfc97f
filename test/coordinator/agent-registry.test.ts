import { afterEach, expect, test } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { ACTIVITY_FLUSH_MS, AgentRegistry } from '../../src/coordinator/agent-registry.js';
import { type UnitRig, openUnitRig } from './unit-rig.js';

let rig: UnitRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

test('a new agent authenticates with its token until it is deleted; the store keeps only a hash', async () => {
  rig = await openUnitRig();
  const agents = rig.units.agents;
  const { agent, token } = await agents.create('scanner-1');
  expect((await agents.authenticate(token))?.id).toBe(agent.id);
  expect(await agents.authenticate(`${token}x`)).toBeUndefined();
  expect(JSON.stringify(await rig.store.listAgents())).not.toContain(token);
  expect(await agents.delete(agent.id)).toBe(true);
  expect(await agents.authenticate(token)).toBeUndefined();
});

test('groups are checked, sorted, stored, and seen by another registry over the same store', async () => {
  rig = await openUnitRig();
  const agents = rig.units.agents;
  const { agent } = await agents.create('inside', [' internal', 'dmz', 'internal']);
  expect(agents.groupsOf(agent.id)).toEqual(['dmz', 'internal']);
  const other = new AgentRegistry(rig.store, rig.log, rig.clock.now);
  await other.refresh();
  expect(other.groupsOf(agent.id)).toEqual(['dmz', 'internal']);
  expect(other.routable(['internal', 'x'])).toBe(true);
  expect(other.routable(['external'])).toBe(false);
  const bad = await agents.setGroups(agent.id, ['in ternal']).catch((e: unknown) => e);
  expect(isPortbanditError(bad, 'PB_ERR_GROUP')).toBe(true);
  const unknown = await agents.setGroups('agent_nope', ['internal']).catch((e: unknown) => e);
  expect(isPortbanditError(unknown, 'PB_ERR_NOT_FOUND')).toBe(true);
  expect(await agents.setGroups(agent.id, [])).toEqual([]);
  expect(agents.groupsOf(agent.id)).toEqual([]);
  expect(await rig.store.getDocument('agentGroups', agent.id)).toBeUndefined();
});

test('activity is buffered and written by the sweep only once ACTIVITY_FLUSH_MS has passed', async () => {
  rig = await openUnitRig();
  const agents = rig.units.agents;
  const { agent } = await agents.create('busy');
  await agents.sweep(rig.clock.now()); // the first sweep flushes (nothing yet) and starts the period
  const touchedAt = rig.clock.now();
  agents.touch(agent.id, '1.2.3', 'workItems');
  agents.touch(agent.id, undefined, 'results');
  agents.touch(agent.id, undefined, 'visits');
  agents.touch(agent.id, undefined, 'results');
  rig.clock.advance(ACTIVITY_FLUSH_MS - 1);
  await agents.sweep(rig.clock.now());
  expect((await rig.store.getAgent(agent.id))?.lastSeenAt).toBeUndefined();
  rig.clock.advance(1);
  await agents.sweep(rig.clock.now());
  const stored = await rig.store.getAgent(agent.id);
  expect(stored).toMatchObject({ version: '1.2.3', lastSeenAt: touchedAt, counters: { workItems: 1, results: 2, visits: 1 } });
  expect((await agents.list()).map((a) => [a.name, a.resultsLastHour, a.visitsLastHour, a.inFlight])).toEqual([['busy', 2, 1, 0]]);
});

test('an admin token authenticates; anything else does not', async () => {
  rig = await openUnitRig();
  const made = await rig.units.agents.createAdminToken('ops');
  expect(made.name).toBe('ops');
  expect(await rig.units.agents.authenticateAdmin(made.token)).toBe(true);
  expect(await rig.units.agents.authenticateAdmin('pba_nope')).toBe(false);
});
