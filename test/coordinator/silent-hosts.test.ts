import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { WORK_FEATURES_HEADER, WORK_FEATURE_PORT_RANGES, WORK_FEATURE_SILENT_ROUNDS, type WorkItem } from '../../src/protocol/protocol.js';
import { addScope, bearer, getWork, manualClock, openApp, resultAsHost, resultFor, submit, tempDataDir, tokens } from './helpers.js';

/**
 * The lab's defect, through the real coordinator (SQLite, HTTP via inject): behind a firewall that
 * drops closed ports, a live host whose only service sits outside its first look answers nothing
 * and is classified silent. Under a policy budget that funds every port on every host, the budget
 * must reach it (strategies/discovery/discovery.ts, budget conservation).
 */
describe('silent hosts under a budget that covers the port space', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  const clock = manualClock();
  const hidden = 47613;
  // A /28: .1-.8 answer on 22, .9 runs only a port no list holds, the rest are dead addresses.
  const openOf = (ip: string): number[] => {
    const last = Number(ip.split('.')[3]);
    return last >= 1 && last <= 8 ? [22] : last === 9 ? [hidden] : [];
  };

  beforeEach(async () => {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now);
    t = await tokens(app);
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  /**
   * Serve the work items of cycle `cycle` (its rounds and follow-ups) until it is walked to the end
   * and nothing is queued; returns them. The next cycle is not begun, so a policy set afterwards
   * applies to all of it.
   */
  async function runCycle(cycle: number): Promise<WorkItem[]> {
    const items: WorkItem[] = [];
    for (let i = 0; i < 200; i++) {
      const w = await getWork(app, t.agents[0]!);
      if (w === null) break;
      expect(w.cycle).toBe(cycle);
      items.push(w);
      clock.advance(1000);
      const res = await submit(app, t.agents[0]!, resultAsHost(w, openOf, clock.now()));
      expect(res.statusCode, res.body).toBe(200);
      await app.coordinator.learningSettled();
      if (app.coordinator.progress().fraction === 1 && (await app.coordinator.store.countQueuedWork()) === 0) break;
    }
    return items;
  }

  /** The /28 under a budget that covers the port space, its 16 first looks leased (1,000 ports each: a split decision). */
  async function firstLooks(): Promise<WorkItem[]> {
    await addScope(app, t.admin, [{ range: '198.18.20.0/28', tags: ['lab'] }]);
    await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 65535, periodSeconds: null });
    const looks: WorkItem[] = [];
    for (let i = 0; i < 16; i++) looks.push((await getWork(app, t.agents[0]!))!);
    expect(looks.every((w) => w.ports.length === 1000)).toBe(true);
    return looks;
  }

  it('a host silent on a capped first look gets every port in the next cycle once the policy funds them, and its service is found', async () => {
    await addScope(app, t.admin, [{ range: '198.18.20.0/28', tags: ['lab'] }]);
    // Back-to-back cycles (the default policy sets the cycle period).
    await app.coordinator.setPolicy('', { strategy: 'top-k', budget: 10, periodSeconds: null });
    // The first cycle ran under a smaller budget: a first look of 500 probes.
    const small = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/lab',
      headers: bearer(t.admin),
      payload: { strategy: 'adaptive', budget: 2000, params: { firstVisitCap: 500 }, periodSeconds: null },
    });
    expect(small.statusCode, small.body).toBe(200);
    const first = await runCycle(1);
    const looks = first.filter((w) => w.ip === '198.18.20.9');
    // adaptive's two rounds (seed, then follow-up) of a first look capped at 500 probes, none on the hidden port.
    expect(looks.flatMap((w) => w.ports).length).toBe(500);
    expect(looks.flatMap((w) => w.ports)).not.toContain(hidden);
    // The policy now funds every port on every host (a derived budget of 65,535 on this scope).
    const full = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/lab',
      headers: bearer(t.admin),
      payload: { strategy: 'adaptive', budget: 65535, params: { firstVisitCap: 500 }, periodSeconds: null },
    });
    expect(full.statusCode, full.body).toBe(200);
    const second = await runCycle(2);
    const visit = second.filter((w) => w.ip === '198.18.20.9');
    expect(visit.flatMap((w) => w.ports)).toContain(hidden);
    const history = (await app.inject({ method: 'GET', url: '/api/v1/hosts/198.18.20.9/history', headers: bearer(t.admin) })).json();
    expect(history.items[0].ports.map((p: { port: number }) => p.port)).toEqual([hidden]);
    // The dead addresses get every port too: the budget funds them, and they cannot be told apart.
    const dead = second.filter((w) => w.ip === '198.18.20.12');
    expect(dead.flatMap((w) => w.ports).length).toBe(65535);
  });

  it('queues the rest of the port space for the hosts whose first look answered ahead of the silent ones', async () => {
    const looks = await firstLooks();
    // The silent first looks come back first (nothing for nmap to wait on), as in the lab.
    const answers = (w: WorkItem) => openOf(w.ip).some((p) => w.ports.includes(p));
    for (const w of [...looks.filter((x) => !answers(x)), ...looks.filter(answers)]) {
      const res = await submit(app, t.agents[0]!, resultAsHost(w, openOf, clock.now()));
      expect(res.statusCode, res.body).toBe(200);
    }
    const queued = await app.coordinator.store.listQueuedWork(20);
    expect(queued).toHaveLength(16);
    expect(queued.every((q) => q.reason === 'followup' && q.portRanges !== undefined)).toBe(true);
    // .1-.8 answered on 22: their sweeps first, then the addresses that answered nothing (.9's only port is outside its first look).
    const live = looks.filter(answers).map((w) => w.ip);
    expect(live).toHaveLength(8);
    expect(queued.slice(0, 8).map((q) => q.ip)).toEqual(live);
    expect(queued.slice(8).every((q) => q.silent === true && !live.includes(q.ip))).toBe(true);
    expect(queued.slice(8).map((q) => q.ip)).toContain('198.18.20.9');

    // Leased by an agent that reads `silent` (header feature silent-rounds), the silent rounds
    // say so; an older agent (no header) never sees the field, which its schema would refuse.
    const lease = async (features?: string): Promise<WorkItem[]> => {
      const res = await app.inject({
        method: 'GET',
        url: '/api/v1/agent/work?max=4',
        headers: { ...bearer(t.agents[0]!), ...(features !== undefined ? { [WORK_FEATURES_HEADER]: features } : {}) },
      });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { items: WorkItem[] }).items;
    };
    const reading = `${WORK_FEATURE_PORT_RANGES}, ${WORK_FEATURE_SILENT_ROUNDS}`;
    const liveRounds = [...(await lease(reading)), ...(await lease(reading))];
    expect(liveRounds.map((w) => w.ip)).toEqual(live);
    expect(liveRounds.every((w) => w.round === 1 && w.silent === undefined)).toBe(true);
    const silentRounds = await lease(reading);
    expect(silentRounds).toHaveLength(4);
    expect(silentRounds.every((w) => w.round === 1 && w.silent === true)).toBe(true);
    const older = await lease();
    expect(older).toHaveLength(4);
    expect(older.every((w) => w.round === 1 && !('silent' in w) && w.ports.length > 0)).toBe(true);
  });

  it('goes on to the rest of a first look a connect sweep reports down (no answer at all), as after a masscan run that found nothing, and learns nothing from it', async () => {
    const looks = await firstLooks();
    const answers = (w: WorkItem) => openOf(w.ip).some((p) => w.ports.includes(p));
    const status = (w: WorkItem) => (answers(w) ? 'up' : 'down');
    for (const w of looks) {
      const res = await submit(app, t.agents[0]!, {
        ...resultAsHost(w, openOf, clock.now()),
        status: status(w),
      });
      expect(res.statusCode, res.body).toBe(200);
      // Every visit, down or not, has the rest of the port space to come.
      expect((res.json() as { followUp: boolean }).followUp, w.ip).toBe(true);
    }
    const queued = await app.coordinator.store.listQueuedWork(20);
    expect(queued).toHaveLength(16);
    expect(queued.filter((q) => q.silent === true).map((q) => q.ip)).toEqual(looks.filter((w) => !answers(w)).map((w) => w.ip));
    // The rests: the hidden port answers on .9; the dead addresses are down again, and their visits end.
    const rests: WorkItem[] = [];
    for (let i = 0; i < 16; i++) rests.push((await getWork(app, t.agents[0]!))!);
    expect(rests).toHaveLength(16);
    expect(rests.every((w) => w.round === 1 && w.ports.length === 64535)).toBe(true);
    for (const w of rests) {
      const open = w.ports.filter((p) => openOf(w.ip).includes(p));
      const res = await submit(app, t.agents[0]!, {
        ...resultFor(w, open, clock.now()),
        // As a connect sweep reports it: a rest with no answer at all is down, also for the hosts
        // whose first look answered on 22 (a firewall that drops every other port).
        status: open.length > 0 ? 'up' : 'down',
      });
      expect(res.statusCode, res.body).toBe(200);
      expect((res.json() as { followUp: boolean }).followUp, w.ip).toBe(false);
    }
    expect(await app.coordinator.store.countQueuedWork()).toBe(0);
    const hidden9 = (await app.inject({ method: 'GET', url: '/api/v1/hosts/198.18.20.9', headers: bearer(t.admin) })).json();
    expect(hidden9.ports.map((p: { port: number }) => p.port)).toEqual([hidden]);
    // Down at its first look, up at its rest: the visit is up (a down visit is no event baseline).
    expect(hidden9.host?.status).not.toBe('down');
    const dead12 = (await app.inject({ method: 'GET', url: '/api/v1/hosts/198.18.20.12', headers: bearer(t.admin) })).json();
    expect(dead12.host?.status).toBe('down');
    // A host that answered in its first look is not made down by a silent rest: its visit keeps 22
    // open, and is learned.
    const host1 = (await app.inject({ method: 'GET', url: '/api/v1/hosts/198.18.20.1', headers: bearer(t.admin) })).json();
    expect(host1.host?.status).not.toBe('down');
    expect(host1.ports.map((p: { port: number; state: string }) => `${p.port}/${p.state}`)).toEqual(['22/open']);
    expect(host1.probedPorts).toBe('1-65535');
    // Learned: the 8 hosts that answered on 22 and .9 (its rest answered); not the 7 dead addresses.
    await app.coordinator.learningSettled();
    const { learned, pending } = app.coordinator.explain('', 0);
    expect(learned + pending).toBe(9);
  });
});
