import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { addScope, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

/**
 * A coordinator restarted in the middle of a cycle resumes its cycle coverage from the store. Seen
 * on the README's flow: after a restart the dashboard said 0 of 256 scanned (0.0%) for a cycle
 * whose every address had been handed out and scanned.
 */
describe("cycle coverage and the agents' last hour across a restart", () => {
  const data = tempDataDir();
  const clock = manualClock();
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    data.cleanup();
  });

  it('counts the hosts scanned so far this cycle per tag, the untagged ones apart, and goes on counting', async () => {
    app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [
      { range: '198.18.40.0/30', tags: ['web'] },
      { range: '198.18.41.0/31', tags: [] },
    ]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 10, periodSeconds: 3600 });
    const items = [];
    for (let i = 0; i < 6; i++) items.push((await getWork(app, t.agents[0]!))!);
    clock.advance(1000);
    const web = items.filter((w) => w.ip.startsWith('198.18.40.'));
    const untagged = items.filter((w) => w.ip.startsWith('198.18.41.'));
    // Two web hosts and one untagged one are scanned before the restart; the rest stays in flight.
    for (const w of [web[0]!, web[1]!, untagged[0]!]) await submit(app, t.agents[0]!, resultFor(w, [], clock.now()));
    const before = await app.coordinator.cycleCoverage();
    const visits = async (): Promise<number | undefined> =>
      (await app!.coordinator.listAgents()).find((a) => a.id === t.agentIds[0])?.visitsLastHour;
    expect(await visits()).toBe(3);
    await app.close();
    clock.advance(1000);

    app = await openApp(data.dir, clock.now);
    // The agents' "host visits last hour" too: the part of the hour before the restart from the store.
    expect(await visits()).toBe(3);
    const after = await app.coordinator.cycleCoverage();
    expect(after).toEqual(before.map((row) => ({ ...row, handedOut: row.scanned })));
    expect(Object.fromEntries(after.map((r) => [r.tag, r.scanned]))).toEqual({ web: 2, '': 1 });
    // A visit the previous process handed out, finished after the restart, counts too.
    await submit(app, t.agents[0]!, resultFor(web[2]!, [], clock.now()));
    const web3 = (await app.coordinator.cycleCoverage()).find((r) => r.tag === 'web')!;
    expect(web3).toMatchObject({ scanned: 3, handedOut: 3, fraction: 0.75 });
  });
});

describe('finished visits of a cycle (no round left), across a restart', () => {
  const data = tempDataDir();
  const clock = manualClock();
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    data.cleanup();
  });

  it('counts a visit finished at its last round, not at its first; a restart keeps the count', async () => {
    app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.42.0/30', tags: ['web'] }]);
    // A capped first look: a host that answers gets a follow-up round for the rest of its budget.
    await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 3000, periodSeconds: 3600 });
    const items = [];
    for (let i = 0; i < 4; i++) items.push((await getWork(app, t.agents[0]!))!);
    clock.advance(1000);
    const followUps: boolean[] = [];
    for (const [i, w] of items.entries()) {
      const open = i < 2 ? [w.ports[0]!] : [];
      const res = await submit(app, t.agents[0]!, resultFor(w, open, clock.now()));
      expect(res.statusCode).toBe(200);
      followUps.push((res.json() as { followUp: boolean }).followUp);
    }
    const pending = followUps.filter(Boolean).length;
    // The hosts that answered were followed up (the test is about them).
    expect(followUps.slice(0, 2)).toEqual([true, true]);
    const row = async () => (await app!.coordinator.cycleCoverage()).find((r) => r.tag === 'web')!;
    expect(await row()).toMatchObject({ scanned: 4, finished: 4 - pending });
    expect(await app.coordinator.cycleVisitsFinished()).toBe(4 - pending);

    // One follow-up leased (in flight at the restart), the other left queued.
    const later = (await getWork(app, t.agents[0]!))!;
    expect(later.round).toBe(1);
    const visits = async (): Promise<number | undefined> =>
      (await app!.coordinator.listAgents()).find((a) => a.id === t.agentIds[0])?.visitsLastHour;
    expect(await visits()).toBe(4);
    await app.close();
    clock.advance(1000);

    app = await openApp(data.dir, clock.now);
    expect(await visits()).toBe(4);
    expect(await row()).toMatchObject({ scanned: 4, finished: 4 - pending });
    expect(await app.coordinator.cycleVisitsFinished()).toBe(4 - pending);
    const res = await submit(app, t.agents[0]!, resultFor(later, [], clock.now()));
    expect((res.json() as { followUp: boolean }).followUp).toBe(false);
    expect(await row()).toMatchObject({ scanned: 4, finished: 5 - pending });
    expect(await app.coordinator.cycleVisitsFinished()).toBe(5 - pending);
    // A visit begun before the restart and finished after it is still one of the hour's visits
    // (its stored document now carries the later finish time).
    expect(await visits()).toBe(4);
    // The hour before the restart is counted in 5-minute slices: gone once it is over.
    clock.advance(3_600_000);
    expect(await visits()).toBe(0);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toContain(`portbandit_cycle_visits_finished ${5 - pending}\n`);
    expect(metrics.body).toContain(`portbandit_tag_cycle_visits_finished{tag="web"} ${5 - pending}\n`);
    // The dashboard's cycle card counts finished visits, not positions walked.
    const page = await app.inject({ method: 'GET', url: '/ui', headers: { authorization: `Bearer ${t.admin}` } });
    expect(page.body).toContain(`Cycle 1 done</div><div class="value">${((100 * (5 - pending)) / 4).toFixed(1)}%`);
  });
});
