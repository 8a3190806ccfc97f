import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { addScope, bearer, leaseItems, manualClock, openApp, postgresCoordinators, tempDataDir, tokens } from './helpers.js';

// Removing an agent (its token stops working) gives its live leases back at once: nobody could
// complete them, and before this their hosts waited for the deadline (15 min by default).
describe('removing an agent', () => {
  let app: FastifyInstance | undefined;
  let data: ReturnType<typeof tempDataDir> | undefined;
  afterEach(async () => {
    await app?.close();
    data?.cleanup();
  });

  async function setUp() {
    data = tempDataDir();
    // The CLI runs on the wall clock: the coordinator's leases must be live by it too.
    const clock = manualClock(Date.now());
    app = await openApp(data.dir, clock.now);
    const t = await tokens(app, 2);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 2, params: { ports: [22, 80] }, periodSeconds: null });
    await addScope(app, t.admin, [{ range: '198.18.22.0/29', tags: ['lab'] }]);
    // The first agent takes half the cycle and is then removed while it holds it.
    const held = await leaseItems(app, t.agents[0]!, undefined, 4);
    expect(held).toHaveLength(4);
    return { app, dir: data.dir, t, held: held.map((w) => w.ip).sort(), clock };
  }

  it('through the admin API: its leases go back to the queue, the next agent gets every address, the audit says so', async () => {
    const { app, t, held } = await setUp();
    const removed = await app.inject({ method: 'DELETE', url: `/api/v1/admin/agents/${t.agentIds[0]}`, headers: bearer(t.admin) });
    expect(removed.statusCode).toBe(200);
    expect(removed.json()).toEqual({ deleted: true, released: 4 });
    expect(await app.coordinator.store.listLeases({ agentId: t.agentIds[0] })).toEqual([]);
    // Its token is refused; the other agent is handed all 8 addresses, the removed agent's 4 among them.
    expect((await app.inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer(t.agents[0]!) })).statusCode).toBe(401);
    const next = (await leaseItems(app, t.agents[1]!, undefined, 16)).map((w) => w.ip).sort();
    expect(next).toHaveLength(8);
    expect(next).toEqual(expect.arrayContaining(held));
    const audit = await app.inject({ method: 'GET', url: '/api/v1/admin/audit', headers: bearer(t.admin) });
    expect(audit.json<{ items: { action: string; summary: string }[] }>().items[0]).toMatchObject({
      action: 'agent.delete',
      summary: 'agent "agent-0" removed (its token stops working); its 4 lease(s) went back to the queue',
    });
    // Removing it again: nothing to remove, nothing given back.
    const again = await app.inject({ method: 'DELETE', url: `/api/v1/admin/agents/${t.agentIds[0]}`, headers: bearer(t.admin) });
    expect(again.json()).toEqual({ deleted: false, released: 0 });
  });

  it('through `portbandit token revoke` next to the running coordinator: the leases are queued, the coordinator hands them out after its sweep', async () => {
    const { app, dir, t, held } = await setUp();
    const revoked = await runCli(['token', 'revoke', t.agentIds[0]!, '--data', dir]);
    expect(revoked.code).toBe(0);
    expect(revoked.err).toBe(`revoked ${t.agentIds[0]}; its 4 lease(s) went back to the queue\n`);
    await app.coordinator.sweep();
    const next = (await leaseItems(app, t.agents[1]!, undefined, 16)).map((w) => w.ip).sort();
    expect(next).toHaveLength(8);
    expect(next).toEqual(expect.arrayContaining(held));
  });

  it('an agent with no live lease: removed, nothing given back; expired leases are left to the sweep', async () => {
    const { app, t, clock } = await setUp();
    clock.advance(901_000); // past the default 900 s leases
    const removed = await app.inject({ method: 'DELETE', url: `/api/v1/admin/agents/${t.agentIds[0]}`, headers: bearer(t.admin) });
    expect(removed.json()).toEqual({ deleted: true, released: 0 });
    expect(await app.coordinator.sweep()).toEqual({ expired: 4 });
  });
});

describe.skipIf(postgresMissing() !== undefined)('removing an agent, two coordinators on one PostgreSQL', () => {
  const pg = usePostgres();
  const open = postgresCoordinators(pg);

  it('removed through one coordinator, its leases taken on the other go back to the shared queue, and the other hands them out', async () => {
    const schema = pg.freshSchema();
    const a = await open(schema, Date.now);
    const b = await open(schema, Date.now);
    const t = await tokens(a, 2);
    await a.coordinator.setPolicy('', { strategy: 'fixed', budget: 2, params: { ports: [22, 80] }, periodSeconds: null });
    await addScope(a, t.admin, [{ range: '198.18.23.0/29', tags: ['lab'] }]);
    const held = (await leaseItems(a, t.agents[0]!, undefined, 4)).map((w) => w.ip).sort();
    expect(held).toHaveLength(4);
    await b.coordinator.sweep();
    const removed = await b.inject({ method: 'DELETE', url: `/api/v1/admin/agents/${t.agentIds[0]}`, headers: bearer(t.admin) });
    expect(removed.json()).toEqual({ deleted: true, released: 4 });
    await a.coordinator.sweep();
    const next = (await leaseItems(a, t.agents[1]!, undefined, 16)).map((w) => w.ip).sort();
    expect(next).toHaveLength(8);
    expect(next).toEqual(expect.arrayContaining(held));
  });
});
