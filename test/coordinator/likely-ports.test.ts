import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { loadNmapServices } from '../../src/catalog/index.js';
import { MAX_LIKELY_PORTS, WORK_FEATURE_LIKELY_PORTS, type WorkItem } from '../../src/protocol/index.js';
import { addScope, bearer, leaseItems, manualClock, openApp, resultAsHost, submit, tempDataDir, tokens } from './helpers.js';

/**
 * `likely` on work items (header feature likely-ports): the head of the strategy's own order for
 * the first round of a host with nothing known open, which the agent's masscan sight check tries
 * first (agent/masscan-blind.ts). Real coordinator over SQLite, requests through inject.
 */
describe('work items name the likely ports of a host with nothing known open', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  const clock = manualClock();
  // A port no nmap list ranks: only what the strategy learned can put it in a host's head.
  const custom = 47613;
  // A /29 under one tag: .1-.4 run `custom` and 22, .5-.7 are dead addresses.
  const openOf = (ip: string): number[] => (Number(ip.split('.')[3]) <= 4 ? [22, custom] : []);

  beforeEach(async () => {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now);
    t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.21.1-198.18.21.7', tags: ['office'] }]);
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  const lease = (features?: string, max = 16): Promise<WorkItem[]> => leaseItems(app, t.agents[0]!, features, max);

  /** Answer every round of the cycle (its follow-ups included) as the hosts are. */
  async function finishCycle(first: WorkItem[]): Promise<void> {
    let items = first;
    for (let i = 0; i < 20 && items.length > 0; i++) {
      for (const w of items) {
        clock.advance(100);
        const res = await submit(app, t.agents[0]!, resultAsHost(w, openOf, clock.now()));
        expect(res.statusCode, res.body).toBe(200);
      }
      await app.coordinator.learningSettled();
      items = await lease(WORK_FEATURE_LIKELY_PORTS);
    }
    expect(items).toEqual([]);
  }

  it("carries the strategy's head on first rounds, only for an agent that asks, only ports of the item, and learns", async () => {
    // An agent that does not list the feature never sees the field (its schema would refuse it).
    const older = await lease(undefined, 1);
    expect(older).toHaveLength(1);
    expect('likely' in older[0]!).toBe(false);

    // First cycle: nothing known anywhere, so every host's head is nmap's order.
    const first = await lease(WORK_FEATURE_LIKELY_PORTS);
    expect(first).toHaveLength(6);
    const nmapHead = loadNmapServices().top(MAX_LIKELY_PORTS);
    for (const w of first) {
      expect(w.round).toBe(0);
      expect(w.verify).toBeUndefined();
      expect(w.likely, w.ip).toEqual(nmapHead);
      expect(w.likely!.every((p) => w.ports.includes(p))).toBe(true);
    }
    await finishCycle([...older, ...first]);

    // Next cycle: hosts with ports known open get `verify`, not `likely`; the dead addresses get
    // the tag's learned port at the head of their likely ports.
    await app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(t.admin) });
    const second = await lease(WORK_FEATURE_LIKELY_PORTS);
    expect(second).toHaveLength(7);
    for (const w of second) {
      if (openOf(w.ip).length > 0) {
        expect(w.verify, w.ip).toEqual([22, custom]);
        expect(w.likely, w.ip).toBeUndefined();
      } else {
        expect(w.likely, w.ip).toHaveLength(MAX_LIKELY_PORTS);
        expect(w.likely!.slice(0, 2), w.ip).toEqual(expect.arrayContaining([22, custom]));
      }
    }
  });

  it('keeps them when a first round comes back from the queue: given back, leased again, the same likely ports', async () => {
    // Arrange: a first cycle learned, then the next cycle's first rounds (dead addresses: likely ports).
    await finishCycle(await lease(WORK_FEATURE_LIKELY_PORTS));
    await app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(t.admin) });
    const second = await lease(WORK_FEATURE_LIKELY_PORTS);
    const dead = second.filter((w) => openOf(w.ip).length === 0);
    expect(dead).toHaveLength(3);
    const likelyOf = new Map(dead.map((w) => [w.ip, w.likely]));
    expect([...likelyOf.values()].every((l) => l !== undefined && l.slice(0, 2).includes(custom))).toBe(true);

    // Act: the agent gives them back (a graceful stop); they are leased again from the queue.
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/agent/release',
      headers: bearer(t.agents[0]!),
      payload: { leaseIds: dead.map((w) => w.leaseId) },
    });
    expect(res.json()).toEqual({ released: 3 });
    const again = await lease(WORK_FEATURE_LIKELY_PORTS);

    // Assert: the same rounds, the same likely ports in the same order; follow-up rounds carry none.
    const back = again.filter((w) => likelyOf.has(w.ip));
    expect(back.map((w) => w.ip).sort()).toEqual([...likelyOf.keys()].sort());
    for (const w of back) {
      expect(w.reason, w.ip).toBe('expired');
      expect(w.round, w.ip).toBe(0);
      expect(w.likely, w.ip).toEqual(likelyOf.get(w.ip));
    }
    const live = second.filter((w) => openOf(w.ip).length > 0);
    for (const w of live) {
      clock.advance(100);
      const res = await submit(app, t.agents[0]!, resultAsHost(w, openOf, clock.now()));
      expect(res.statusCode, res.body).toBe(200);
    }
    const followUps = (await lease(WORK_FEATURE_LIKELY_PORTS)).filter((w) => w.round > 0);
    expect(followUps.length).toBeGreaterThan(0);
    expect(followUps.every((w) => !('likely' in w))).toBe(true);
  });

  it("names none under a strategy that learns nothing: a fixed list's order is not what is likely open", async () => {
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(t.admin),
      payload: { strategy: 'fixed', params: { ports: [1, 2, 3, 22, 80, 443] }, budget: 6 },
    });
    expect(res.statusCode, res.body).toBe(200);
    const items = await lease(WORK_FEATURE_LIKELY_PORTS);
    expect(items).toHaveLength(7);
    expect(items.every((w) => w.round === 0 && !('likely' in w))).toBe(true);
  });
});
