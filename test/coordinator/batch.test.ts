import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp, databasePath } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { MAX_WORK_BATCH_PORTS, type ResultBatchItem, type WorkItem, type WorkResponse } from '../../src/protocol/protocol.js';
import { PortbanditError } from '../../src/core/errors.js';
import { FIRST_LOOK } from '../../strategies/index.js';
import { openStore } from '../../src/store/open-store.js';
import { RESULTS_PER_TURN } from '../../src/coordinator/result-batch.js';
import type { Store } from '../../src/store/types.js';
import { addScope, bearer, getWork, manualClock, resultFor, submit, tempDataDir, tokens } from './helpers.js';

/**
 * The real SQLite store, with each hot write noted by the turn of the event loop it was issued
 * in (calls made before the same setImmediate share one group commit), and ingests of chosen
 * addresses made to fail as a disk error would.
 */
function observedStore(store: Store): { store: Store; turns: Map<string, Set<object>>; calls: string[]; failIngest: Set<string> } {
  const turns = new Map<string, Set<object>>();
  const calls: string[] = [];
  const failIngest = new Set<string>();
  let turn: object | undefined;
  const note = (method: string) => {
    calls.push(method);
    if (!turn) {
      const current = {};
      turn = current;
      setImmediate(() => {
        if (turn === current) turn = undefined;
      });
    }
    let set = turns.get(method);
    if (!set) turns.set(method, (set = new Set()));
    set.add(turn);
  };
  const observed = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = (value as (...a: unknown[]) => unknown).bind(target);
      if (prop === 'putLease') return (...args: unknown[]) => (note('putLease'), fn(...args));
      if (prop === 'ingestScan') {
        return (...args: unknown[]) => {
          note('ingestScan');
          const ip = (args[0] as { scan: { ip: string } }).scan.ip;
          if (failIngest.has(ip))
            return Promise.reject(new PortbanditError('PB_ERR_STORE', `disk I/O error writing /secret/path/portbandit.db for ${ip}`));
          return fn(...args);
        };
      }
      return fn;
    },
  });
  return { store: observed, turns, calls, failIngest };
}

// Both SQLite writers (serve --sqlite-writer): on the thread, a lease batch's writes commit while
// the batch goes on, which the cycle's "visits in flight?" check once depended on not happening.
describe.each(['inline', 'thread'] as const)(
  'batched work: many items per lease request, many results per submit (%s writer)',
  (writer) => {
    let data: ReturnType<typeof tempDataDir>;
    let app: FastifyInstance;
    let raw: Store;
    let observed: ReturnType<typeof observedStore>;
    const clock = manualClock();

    beforeEach(async () => {
      data = tempDataDir();
      raw = await openStore({ kind: 'sqlite', path: databasePath(data.dir), thread: writer === 'thread' });
      observed = observedStore(raw);
      const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent', learnBatchSize: 4 }, env: {} });
      app = await buildApp({ config, store: observed.store, now: clock.now, sweepTimer: false });
    });
    afterEach(async () => {
      await app.close();
      await raw.close();
      data.cleanup();
    });

    const lease = async (token: string, max?: number) => {
      const res = await app.inject({
        method: 'GET',
        url: `/api/v1/agent/work${max === undefined ? '' : `?max=${max}`}`,
        headers: bearer(token),
      });
      expect(res.statusCode, res.body).toBe(200);
      return { body: res.body, json: res.json() as WorkResponse };
    };

    const submitBatch = async (token: string, results: unknown[]) => {
      const res = await app.inject({ method: 'POST', url: '/api/v1/agent/results/batch', headers: bearer(token), payload: { results } });
      return res;
    };

    it('hands out N distinct in-scope addresses in one request, every lease stored in one group commit', async () => {
      // Arrange: 64 addresses, 4 of them blocklisted.
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.6.0/26', tags: ['lab'] }]);
      await addScope(app, t.admin, [{ range: '198.18.6.8/30' }], 'blocklist');
      // 100 ports each (the default rate would fund the whole port space, and a batch of such items stops at the ports cap: below).
      await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 100 });

      // Act
      const { json } = await lease(t.agents[0]!, 32);

      // Assert
      const items = json.items!;
      expect(items).toHaveLength(32);
      expect(json.work).toEqual(items[0]);
      expect(json.retryAfterMs).toBeUndefined();
      const ips = items.map((w) => w.ip);
      expect(new Set(ips).size).toBe(32);
      for (const w of items) {
        expect(app.coordinator.lookup(w.ip), w.ip).toBeDefined();
        expect(w).toMatchObject({ tags: ['lab'], reason: 'cycle', round: 0, cycle: 1 });
      }
      expect(new Set(items.map((w) => w.leaseId)).size).toBe(32);
      const stored = await raw.listLeases({ agentId: t.agentIds[0]! });
      expect(stored.map((l) => l.id).sort()).toEqual(items.map((w) => w.leaseId).sort());
      expect(observed.turns.get('putLease')?.size).toBe(1);

      // The rest of the cycle, then nothing (paced by the default 24 h period).
      const rest = (await lease(t.agents[0]!, 256)).json.items!;
      expect(rest).toHaveLength(60 - 32);
      expect(new Set([...ips, ...rest.map((w) => w.ip)]).size).toBe(60);
      expect((await lease(t.agents[0]!, 8)).json).toEqual({ work: null, items: [], retryAfterMs: 5000 });
      const metrics = await app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.body).toMatch(/portbandit_work_items_total\{reason="cycle"\} 60/);
    });

    it('stops a batch of whole-port-space items at the ports cap and says more, so the agent asks again at once', async () => {
      // Arrange: 40 addresses; the default policy's rate funds all 65,535 ports of each: a first
      // look of 1,000 each (one answer), then, once it is reported, the other 64,535 as follow-ups.
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.6.0/27' }, { range: '198.18.6.32/29' }]);
      const looks = (await lease(t.agents[0]!, 256)).json;
      expect(looks.items!.map((w) => w.ports.length)).toEqual(Array.from({ length: 40 }, () => FIRST_LOOK.ports));
      expect(looks.more).toBeUndefined();
      const reported = await submitBatch(
        t.agents[0]!,
        looks.items!.map((w) => resultFor(w, [], clock.now())),
      );
      expect((reported.json() as { results: Array<{ outcome: string }> }).results.map((r) => r.outcome)).toEqual(
        looks.items!.map(() => 'accepted'),
      );

      // Act: ask for everything until an answer holds no more.
      const answers: WorkResponse[] = [];
      for (let i = 0; i < 6 && (answers.length === 0 || answers.at(-1)!.more === true); i++)
        answers.push((await lease(t.agents[0]!, 256)).json);

      // Assert: each answer stops with the item that reaches the cap (17 x 64,535 > 2^20 > 16 x 64,535) and says more; the last holds the rest.
      expect(answers.map((a) => a.items!.length)).toEqual([17, 17, 6]);
      expect(answers.map((a) => a.more)).toEqual([true, true, undefined]);
      for (const a of answers)
        for (const w of a.items!) expect([w.reason, w.round, w.ports.length]).toEqual(['followup', 1, 65_535 - FIRST_LOOK.ports]);
      for (const a of answers.slice(0, -1)) {
        const ports = a.items!.reduce((n, w) => n + w.ports.length, 0);
        expect(ports).toBeGreaterThanOrEqual(MAX_WORK_BATCH_PORTS);
        expect(ports - a.items!.at(-1)!.ports.length).toBeLessThan(MAX_WORK_BATCH_PORTS);
      }
      const ips = answers.flatMap((a) => a.items!.map((w) => w.ip));
      expect(new Set(ips).size).toBe(40);
      // Then nothing (the default 24 h period), and no `more`.
      expect((await lease(t.agents[0]!, 256)).json).toEqual({ work: null, items: [], retryAfterMs: 5000 });
    });

    it('serves queued work first, then the cycle, and stops a batch at the end of the cycle', async () => {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.7.0/30' }]);
      const put = await app.inject({
        method: 'PUT',
        url: '/api/v1/admin/policies/_default',
        headers: bearer(t.admin),
        payload: { strategy: 'fixed', params: { ports: [22, 80] }, budget: 2, periodSeconds: null },
      });
      expect(put.statusCode, put.body).toBe(200);
      await app.inject({
        method: 'POST',
        url: '/api/v1/admin/rescan',
        headers: bearer(t.admin),
        payload: { ips: ['198.18.7.2', '198.18.7.3'] },
      });

      const first = (await lease(t.agents[0]!, 16)).json.items!;
      expect(first.slice(0, 2).map((w) => [w.ip, w.reason])).toEqual([
        ['198.18.7.2', 'manual'],
        ['198.18.7.3', 'manual'],
      ]);
      // Then the cycle, without the two addresses the rescans are scanning (their visits count for it).
      expect(first.slice(0, 2).every((w) => w.cycle === 1)).toBe(true);
      const cycled = first.slice(2);
      expect(cycled.map((w) => w.ip).sort()).toEqual(['198.18.7.0', '198.18.7.1']);
      expect(cycled.every((w) => w.reason === 'cycle' && w.cycle === 1)).toBe(true);
      // Unpaced, the next cycle begins in a later batch, once the visits in flight are done.
      expect((await lease(t.agents[0]!, 16)).json.items ?? []).toEqual([]);
      for (const w of first)
        expect((await submit(app, t.agents[0]!, resultFor(w, [], clock.now()))).json()).toMatchObject({ accepted: true });
      clock.advance(1000);
      const next = (await lease(t.agents[0]!, 16)).json.items!;
      expect(next.map((w) => w.ip).sort()).toEqual(['198.18.7.0', '198.18.7.1', '198.18.7.2', '198.18.7.3']);
      expect(next.every((w) => w.cycle === 2)).toBe(true);
    });

    it('never leases an address twice at once for a manual rescan: one being scanned drops the rescan, one scanned since gets it', async () => {
      const t = await tokens(app, 2);
      await addScope(app, t.admin, [{ range: '198.18.7.0/30' }]);
      const put = await app.inject({
        method: 'PUT',
        url: '/api/v1/admin/policies/_default',
        headers: bearer(t.admin),
        payload: { strategy: 'fixed', params: { ports: [22, 80] }, budget: 2, periodSeconds: 3600 },
      });
      expect(put.statusCode, put.body).toBe(200);
      const rescan = async (ips: string[]) => {
        const res = await app.inject({ method: 'POST', url: '/api/v1/admin/rescan', headers: bearer(t.admin), payload: { ips } });
        expect(res.statusCode, res.body).toBeLessThan(300);
      };
      const cycle = (await lease(t.agents[0]!, 16)).json.items!;
      expect(cycle.map((w) => w.ip).sort()).toEqual(['198.18.7.0', '198.18.7.1', '198.18.7.2', '198.18.7.3']);

      // Asked twice while the cycle's lease of .1 is live: neither rescan is handed out.
      await rescan(['198.18.7.1', '198.18.7.1']);
      expect((await lease(t.agents[1]!, 16)).json.items ?? []).toEqual([]);
      // Once .1 is scanned, a rescan is leased, once, even asked twice in one request.
      const at = clock.now();
      expect(
        (
          await submit(
            app,
            t.agents[0]!,
            resultFor(
              cycle.find((w) => w.ip === '198.18.7.1')!,
              [22],
              at,
            ),
          )
        ).json(),
      ).toMatchObject({
        accepted: true,
      });
      await rescan(['198.18.7.1', '198.18.7.1']);
      const again = (await lease(t.agents[1]!, 16)).json.items!;
      expect(again.map((w) => [w.ip, w.reason])).toEqual([['198.18.7.1', 'manual']]);
      expect((await raw.listLeases({ ip: '198.18.7.1' })).map((l) => l.agentId)).toHaveLength(1);
    });

    it('a batch that serves a rescan, then begins the next cycle, leases the address once', async () => {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.7.0/30' }]);
      await app.coordinator.setPolicy('', { strategy: 'fixed', params: { ports: [22, 80] }, budget: 2, periodSeconds: null });
      const at = clock.now();
      for (const w of (await lease(t.agents[0]!, 16)).json.items!) {
        expect((await submit(app, t.agents[0]!, resultFor(w, [], at))).json()).toMatchObject({ accepted: true });
      }
      // Cycle 1 is over, nothing in flight: the rescan (of cycle 1) comes first, then cycle 2 begins.
      expect((await app.coordinator.requestRescan(['198.18.7.2'])).queued).toHaveLength(1);
      clock.advance(2000);
      const batch = (await lease(t.agents[0]!, 16)).json.items!;
      expect(batch[0]).toMatchObject({ ip: '198.18.7.2', reason: 'manual', cycle: 1 });
      expect(batch.map((w) => w.ip).sort()).toEqual(['198.18.7.0', '198.18.7.1', '198.18.7.2', '198.18.7.3']);
      expect(batch.slice(1).every((w) => w.reason === 'cycle' && w.cycle === 2)).toBe(true);
    });

    it('an unpaced cycle that just began is not begun again within a second while its leases are live', async () => {
      const t = await tokens(app, 2);
      await addScope(app, t.admin, [{ range: '198.18.7.0/30' }]);
      await app.coordinator.setPolicy('', { strategy: 'fixed', params: { ports: [22, 80] }, budget: 2, periodSeconds: null });
      for (const w of (await lease(t.agents[0]!, 16)).json.items!) {
        expect((await submit(app, t.agents[0]!, resultFor(w, [], clock.now()))).json()).toMatchObject({ accepted: true });
      }
      clock.advance(5000);
      // Nothing in flight: cycle 2 begins, all four leased.
      const second = (await lease(t.agents[0]!, 16)).json.items!;
      expect(second.map((w) => w.cycle)).toEqual([2, 2, 2, 2]);
      // Half a second later another agent asks: cycle 2's leases are live, so no cycle 3 yet.
      clock.advance(500);
      expect((await lease(t.agents[1]!, 16)).json.items ?? []).toEqual([]);
      for (const ip of ['198.18.7.0', '198.18.7.1', '198.18.7.2', '198.18.7.3'])
        expect(
          (await raw.listLeases({ ip })).filter((l) => l.deadline > clock.now()),
          ip,
        ).toHaveLength(1);
    });

    it("the cycle leases no address whose manual rescan is in a later round, after the first round's lease time", async () => {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.7.0/30' }]);
      // The whole port space per visit: a first look, then the rest as the visit's next round.
      await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 65535, periodSeconds: 3600 });
      const answerAll = async () => {
        for (
          let items = (await lease(t.agents[0]!, 16)).json.items!;
          items.length > 0;
          items = (await lease(t.agents[0]!, 16)).json.items!
        ) {
          clock.advance(1000);
          for (const w of items)
            expect((await submit(app, t.agents[0]!, resultFor(w, [], clock.now()))).json()).toMatchObject({ accepted: true });
        }
      };
      await answerAll();
      expect((await app.coordinator.requestRescan(['198.18.7.1'])).queued).toHaveLength(1);
      const first = (await lease(t.agents[0]!, 16)).json.items!;
      expect(first.map((w) => [w.ip, w.reason, w.round])).toEqual([['198.18.7.1', 'manual', 0]]);
      const [firstLease] = await raw.listLeases({ ip: '198.18.7.1' });
      // The first look is answered late in its lease time; the next round is leased then, and
      // outlives the first round's deadline.
      clock.advance(firstLease!.deadline - clock.now() - 10_000);
      expect((await submit(app, t.agents[0]!, resultFor(first[0]!, [22], clock.now()))).json()).toMatchObject({ accepted: true });
      const second = (await lease(t.agents[0]!, 16)).json.items!;
      expect(second.map((w) => [w.ip, w.reason, w.round])).toEqual([['198.18.7.1', 'followup', 1]]);
      clock.advance(20_000);
      expect((await raw.listLeases({ ip: '198.18.7.1' })).filter((l) => l.deadline > clock.now())).toHaveLength(1);

      // The next cycle reaches the address while that round is scanned: no second lease.
      await app.coordinator.restartCycle();
      const cycled = (await lease(t.agents[0]!, 16)).json.items!;
      expect(cycled.map((w) => w.ip).sort()).toEqual(['198.18.7.0', '198.18.7.2', '198.18.7.3']);
      expect((await raw.listLeases({ ip: '198.18.7.1' })).filter((l) => l.deadline > clock.now())).toHaveLength(1);
    });

    it("the cycle leases no address whose manual rescan waits between rounds for an agent of the visit's group", async () => {
      const t = await tokens(app);
      const inner = (await app.coordinator.createAgent('inner', ['g1'])).token;
      const outer = (await app.coordinator.createAgent('outer', ['g2'])).token;
      await addScope(app, t.admin, [{ range: '198.18.7.0/30' }]);
      await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 65535, periodSeconds: 3600, groups: ['g1', 'g2'] });
      for (let items = (await lease(inner, 16)).json.items!; items.length > 0; items = (await lease(inner, 16)).json.items!) {
        clock.advance(1000);
        for (const w of items) expect((await submit(app, inner, resultFor(w, [], clock.now()))).json()).toMatchObject({ accepted: true });
      }
      expect((await app.coordinator.requestRescan(['198.18.7.1'])).queued).toHaveLength(1);
      const first = (await lease(inner, 16)).json.items!;
      expect(first.map((w) => [w.ip, w.reason, w.round])).toEqual([['198.18.7.1', 'manual', 0]]);
      clock.advance(1000);
      // The first look found a port: the next round is queued for the visit's group (g1).
      expect((await submit(app, inner, resultFor(first[0]!, [22], clock.now()))).json()).toMatchObject({ accepted: true, followUp: true });

      // The next cycle, leased by an agent of the other group: not the address between its rounds.
      await app.coordinator.restartCycle();
      const cycled = (await lease(outer, 16)).json.items!;
      expect(cycled.map((w) => w.ip).sort()).toEqual(['198.18.7.0', '198.18.7.2', '198.18.7.3']);
      // The visit's next round goes to its group's agent, the only live lease of the address.
      const second = (await lease(inner, 16)).json.items!;
      expect(second.map((w) => [w.ip, w.reason, w.round])).toEqual([['198.18.7.1', 'followup', 1]]);
      expect((await raw.listLeases({ ip: '198.18.7.1' })).filter((l) => l.deadline > clock.now())).toHaveLength(1);
    });

    it('counts a rescan the cycle reached after its first round as scanned for the cycle, as one it reached during it', async () => {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.7.0/29', tags: ['lab'] }]);
      await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 65535, periodSeconds: 3600 });
      const lab = async () => (await app.coordinator.cycleCoverage()).find((c) => c.tag === 'lab')!;
      const answer = async (items: readonly WorkItem[], open: readonly number[] = []) => {
        clock.advance(1000);
        for (const w of items)
          expect((await submit(app, t.agents[0]!, resultFor(w, open, clock.now()))).json()).toMatchObject({ accepted: true });
      };
      // Cycle 1 under way, then a rescan of an address it has not reached: its first round is answered.
      const begun = (await lease(t.agents[0]!, 2)).json.items!;
      expect(begun.map((w) => w.reason)).toEqual(['cycle', 'cycle']);
      const all = Array.from({ length: 8 }, (_, i) => `198.18.7.${i}`);
      const target = all.find((ip) => !begun.some((w) => w.ip === ip))!;
      expect((await app.coordinator.requestRescan([target])).queued).toHaveLength(1);
      const rescan = [(await lease(t.agents[0]!, 1)).json.work!];
      expect(rescan.map((w) => [w.ip, w.reason, w.round])).toEqual([[target, 'manual', 0]]);
      await answer(rescan, [22]);
      // Its next round first, then the cycle, which reaches the address and takes that visit for its own.
      const rest = (await lease(t.agents[0]!, 16)).json.items!;
      expect(rest[0]).toMatchObject({ ip: target, reason: 'followup', round: 1 });
      expect(
        rest
          .slice(1)
          .map((w) => w.ip)
          .sort(),
      ).toEqual(all.filter((ip) => ip !== target && !begun.some((w) => w.ip === ip)).sort());
      await answer([...begun, ...rest]);
      for (let items = (await lease(t.agents[0]!, 16)).json.items!; items.length > 0; items = (await lease(t.agents[0]!, 16)).json.items!)
        await answer(items);
      expect(await lab()).toMatchObject({ handedOut: 8, scanned: 8, finished: 8 });
    });

    it("counts a manual rescan in the cycle's coverage once per host: only when the cycle reached the host while it was rescanned", async () => {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.7.0/30', tags: ['lab'] }]);
      await app.coordinator.setPolicy('', { strategy: 'fixed', params: { ports: [22, 80] }, budget: 2, periodSeconds: 3600 });
      const lab = async () => (await app.coordinator.cycleCoverage()).find((c) => c.tag === 'lab')!;
      const answer = async (items: readonly WorkItem[]) => {
        clock.advance(1000);
        for (const w of items)
          expect((await submit(app, t.agents[0]!, resultFor(w, [], clock.now()))).json()).toMatchObject({ accepted: true });
      };
      // Cycle 1: the cycle's four visits, then a rescan of a host it scanned already.
      await answer((await lease(t.agents[0]!, 16)).json.items!);
      expect((await app.coordinator.requestRescan(['198.18.7.1'])).queued).toHaveLength(1);
      const rescan = (await lease(t.agents[0]!, 16)).json.items!;
      expect(rescan.map((w) => [w.ip, w.reason])).toEqual([['198.18.7.1', 'manual']]);
      await answer(rescan);
      expect(await lab()).toMatchObject({ handedOut: 4, scanned: 4, finished: 4 });
      // Cycle 2: a rescan leased first, then the cycle reaches its host while it is scanned: its visit counts.
      await app.coordinator.restartCycle();
      expect((await app.coordinator.requestRescan(['198.18.7.2'])).queued).toHaveLength(1);
      const first = (await lease(t.agents[0]!, 1)).json.work!;
      expect(first).toMatchObject({ ip: '198.18.7.2', reason: 'manual', cycle: 2 });
      const rest = (await lease(t.agents[0]!, 16)).json.items!;
      expect(rest.map((w) => w.ip).sort()).toEqual(['198.18.7.0', '198.18.7.1', '198.18.7.3']);
      await answer([first, ...rest]);
      expect(await lab()).toMatchObject({ handedOut: 4, scanned: 4, finished: 4 });
    });

    it('answers a request without max, or with max=1, exactly as before; refuses max outside 1..256', async () => {
      const t = await tokens(app);
      expect((await lease(t.agents[0]!)).body).toBe('{"work":null,"retryAfterMs":5000}');
      expect((await lease(t.agents[0]!, 1)).body).toBe('{"work":null,"retryAfterMs":5000}');
      await addScope(app, t.admin, [{ range: '198.18.8.0/30' }]);
      const plain = await lease(t.agents[0]!);
      expect(Object.keys(plain.json)).toEqual(['work']);
      const one = await lease(t.agents[0]!, 1);
      expect(Object.keys(one.json)).toEqual(['work']);
      expect(one.json.work!.ip).not.toBe(plain.json.work!.ip);
      for (const max of [0, 257, -1, 'x']) {
        const res = await app.inject({ method: 'GET', url: `/api/v1/agent/work?max=${max}`, headers: bearer(t.agents[0]!) });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ code: 'PB_ERR_SCHEMA', message: expect.stringContaining('max') });
      }
    });

    it('answers each result of a batch on its own: accepted, duplicate, rejected and failed, in order, ingests in one commit', async () => {
      // Arrange: nine leases for agent 0, one for agent 1.
      const t = await tokens(app, 2);
      await addScope(app, t.admin, [{ range: '198.18.9.0/28' }]);
      // A budget below the port space, so some port is not in a work item.
      await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 100 });
      const w = (await lease(t.agents[0]!, 9)).json.items!;
      const foreign = (await getWork(app, t.agents[1]!))!;
      const at = clock.now();
      const early = await submit(app, t.agents[0]!, resultFor(w[1]!, [], at));
      expect(early.json()).toMatchObject({ accepted: true });
      const notGiven = w[2]!.ports.includes(1) ? 65535 : 1;
      observed.failIngest.add(w[6]!.ip);
      const ingestsBefore = observed.turns.get('ingestScan')?.size ?? 0;

      // Act
      const res = await submitBatch(t.agents[0]!, [
        resultFor(w[0]!, [w[0]!.ports[0]!], at), // accepted
        resultFor(w[1]!, [], at), // stored earlier: duplicate
        { ...resultFor(w[2]!, [], at), ports: [{ port: notGiven, state: 'open' }] }, // port not handed out
        { ...resultFor(w[3]!, [], at), ports: [{ port: 70000, state: 'open' }] }, // schema
        resultFor(foreign, [], at), // another agent's lease
        { ...resultFor(w[4]!, [], at), leaseId: 'lease_unknown' },
        resultFor(w[6]!, [], at), // the store fails this one
        resultFor(w[7]!, [], at), // accepted, and sent twice in the same batch
        resultFor(w[7]!, [], at),
        'not even an object',
        resultFor(w[8]!, [], at),
      ]);

      // Assert
      expect(res.statusCode, res.body).toBe(200);
      const answers = (res.json() as { results: ResultBatchItem[] }).results;
      expect(answers.map((a) => a.outcome)).toEqual([
        'accepted',
        'duplicate',
        'rejected',
        'rejected',
        'rejected',
        'rejected',
        'failed',
        'accepted',
        'duplicate',
        'rejected',
        'accepted',
      ]);
      expect(answers[0]).toEqual({
        outcome: 'accepted',
        leaseId: w[0]!.leaseId,
        scanId: w[0]!.leaseId,
        followUp: expect.any(Boolean),
        events: 2,
      }); // host-new, service-new
      expect(answers[1]).toMatchObject({ leaseId: w[1]!.leaseId, scanId: w[1]!.leaseId, events: 0 });
      expect(answers[2]!.error).toEqual({
        statusCode: 400,
        code: 'PB_ERR_LEASE_PORT',
        message: `ports[0].port: port ${notGiven} was not in the work item`,
      });
      expect(answers[3]!.error).toEqual({ statusCode: 400, code: 'PB_ERR_SCHEMA', message: 'results/3/ports/0/port must be <= 65535' });
      expect(answers[4]!.error).toMatchObject({ statusCode: 403, code: 'PB_ERR_FORBIDDEN' });
      expect(answers[5]).toMatchObject({ leaseId: 'lease_unknown', error: { statusCode: 409, code: 'PB_ERR_CONFLICT' } });
      expect(answers[6]!.error).toEqual({
        statusCode: 500,
        code: 'PB_ERR_STORE',
        message: 'The store failed. (details in the server log)',
      });
      expect(answers[9]).toEqual({
        outcome: 'rejected',
        error: { statusCode: 400, code: 'PB_ERR_SCHEMA', message: 'results/9 must be object' },
      });
      // The good ones are stored; the others changed nothing and keep their leases.
      const stored = async (ip: string) =>
        (await app.inject({ method: 'GET', url: `/api/v1/hosts/${ip}`, headers: bearer(t.admin) })).statusCode;
      for (const i of [0, 1, 7, 8]) expect(await stored(w[i]!.ip), w[i]!.ip).toBe(200);
      for (const i of [2, 3, 4, 6]) expect(await stored(w[i]!.ip), w[i]!.ip).toBe(404);
      expect(await stored(foreign.ip)).toBe(404);
      const held = (await raw.listLeases({ agentId: t.agentIds[0]! })).map((l) => l.id).sort();
      expect(held).toEqual([2, 3, 4, 5, 6].map((i) => w[i]!.leaseId).sort());
      // Every ingest of the batch was issued in one turn: one group commit.
      expect(observed.turns.get('ingestScan')!.size).toBe(ingestsBefore + 1);
      // A failed result may be sent again once the store is back.
      observed.failIngest.clear();
      const retried = await submitBatch(t.agents[0]!, [resultFor(w[6]!, [], at)]);
      expect(retried.json()).toEqual({
        results: [{ outcome: 'accepted', leaseId: w[6]!.leaseId, scanId: w[6]!.leaseId, followUp: expect.any(Boolean), events: 0 }],
      });
    });

    it('starts a long batch RESULTS_PER_TURN results per turn, so a lease request that arrives meanwhile is not held behind it', async () => {
      // Arrange: 40 leases for agent 0.
      const t = await tokens(app, 2);
      await addScope(app, t.admin, [{ range: '198.18.9.0/26' }]);
      const w = (await lease(t.agents[0]!, 40)).json.items!;
      expect(w).toHaveLength(40);
      const at = clock.now();
      const ingestsBefore = observed.turns.get('ingestScan')?.size ?? 0;
      observed.calls.length = 0;
      const order: string[] = [];

      // Act: the batch, and a lease request of another agent right behind it.
      const batch = submitBatch(
        t.agents[0]!,
        w.map((item) => resultFor(item, [], at)),
      ).then((res) => (order.push('batch'), res));
      const other = app
        .inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer(t.agents[1]!) })
        .then((res) => (order.push('lease'), res));
      const [res, leased] = await Promise.all([batch, other]);

      // Assert: every result accepted, in order; their ingests issued over ceil(40 / 16) turns (three
      // group commits, each after the event loop read what had arrived); the lease answered first.
      expect(res.statusCode, res.body).toBe(200);
      const answers = (res.json() as { results: ResultBatchItem[] }).results;
      expect(answers.map((a) => a.leaseId)).toEqual(w.map((item) => item.leaseId));
      expect(answers.every((a) => a.outcome === 'accepted')).toBe(true);
      expect(RESULTS_PER_TURN).toBe(16);
      expect(observed.turns.get('ingestScan')!.size - ingestsBefore).toBe(3);
      expect(observed.calls.filter((c) => c === 'ingestScan')).toHaveLength(40);
      expect(leased.statusCode, leased.body).toBe(200);
      expect(order).toEqual(['lease', 'batch']);
    });

    it('refuses a batch envelope that is empty, too long or not a list, before touching any result', async () => {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.10.0/30' }]);
      const w = (await getWork(app, t.agents[0]!))!;
      const one = resultFor(w, [], clock.now());
      for (const body of [
        { results: [] },
        { results: Array.from({ length: 65 }, () => one) },
        { results: { 0: one } },
        { result: [one] },
      ]) {
        const res = await app.inject({ method: 'POST', url: '/api/v1/agent/results/batch', headers: bearer(t.agents[0]!), payload: body });
        expect(res.statusCode, JSON.stringify(body).slice(0, 60)).toBe(400);
        expect(res.json().code).toBe('PB_ERR_SCHEMA');
      }
      expect((await app.inject({ method: 'POST', url: '/api/v1/agent/results/batch', payload: { results: [one] } })).statusCode).toBe(401);
      expect((await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}`, headers: bearer(t.admin) })).statusCode).toBe(404);
    });

    it('a follow-up round queued by a batched result comes back in the next batch lease, and the visit folds both rounds', async () => {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.11.0/30', tags: ['web'] }]);
      const put = await app.inject({
        method: 'PUT',
        url: '/api/v1/admin/policies/web',
        headers: bearer(t.admin),
        payload: { strategy: 'adaptive', budget: 40, params: { sweepShare: 0, followUp: true } },
      });
      expect(put.statusCode, put.body).toBe(200);
      const round0 = (await lease(t.agents[0]!, 4)).json.items!;
      expect(round0).toHaveLength(4);
      const answers = (
        await submitBatch(
          t.agents[0]!,
          round0.map((w) => resultFor(w, w.ports.slice(0, 1), clock.now())),
        )
      ).json().results as ResultBatchItem[];
      expect(answers.every((a) => a.outcome === 'accepted' && a.followUp)).toBe(true);
      const round1 = (await lease(t.agents[0]!, 8)).json.items!;
      expect(round1.map((w) => w.ip).sort()).toEqual(round0.map((w) => w.ip).sort());
      expect(round1.every((w: WorkItem) => w.round === 1 && w.reason === 'followup')).toBe(true);
      const second = (
        await submitBatch(
          t.agents[0]!,
          round1.map((w) => resultFor(w, [], clock.now() + 10)),
        )
      ).json().results as ResultBatchItem[];
      expect(second.map((a) => [a.outcome, a.scanId])).toEqual(round1.map((w) => ['accepted', round0.find((r) => r.ip === w.ip)!.leaseId]));
    });
  },
);
