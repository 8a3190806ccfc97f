import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/coordinator/config.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

const missing = postgresMissing();
if (missing) console.warn(`agent-visits: the PostgreSQL case is skipped: ${missing}`);
const pg = missing === undefined ? usePostgres() : undefined;

/**
 * An agent's figures count what their names say: `visits` the host visits it began, `results`
 * every accepted round (a visit with follow-ups is several rounds), in both coordination stores.
 */
describe.each([
  { store: 'SQLite', flags: (): ConfigInput => ({}) },
  { store: 'PostgreSQL', flags: (): ConfigInput => ({ postgresUrl: pg!.url(), postgresSchema: pg!.freshSchema() }) },
])('agent activity counts host visits and rounds apart ($store)', ({ store, flags }) => {
  let app: FastifyInstance | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await app?.close();
    cleanup?.();
  });

  it.skipIf(store === 'PostgreSQL' && missing !== undefined)(
    'counts a visit with follow-up rounds once as a visit and once per round as a result',
    async () => {
      const data = tempDataDir();
      cleanup = data.cleanup;
      const clock = manualClock();
      app = await openApp(data.dir, clock.now, flags());
      const t = await tokens(app, 2);
      await addScope(app, t.admin, [{ range: '198.18.20.0/28', tags: ['lab'] }]);
      // Adaptive with follow-ups: a round that finds ports open asks for another round of the visit.
      await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 40, params: { sweepShare: 0, followUp: true } });

      // Each agent answers work items, whatever they are: a visit's first round (round 0) or a
      // follow-up round of a visit either agent began, in whatever order the store serves them.
      // The second drains what is left, so every visit's follow-ups are answered.
      const expected = new Map<string, { visits: number; rounds: number }>();
      for (const [agent, id, items] of [
        [t.agents[0]!, t.agentIds[0]!, 12],
        [t.agents[1]!, t.agentIds[1]!, 64],
      ] as const) {
        const seen = { visits: 0, rounds: 0 };
        for (let i = 0; i < items; i++) {
          const work = await getWork(app, agent);
          if (work === null) break;
          clock.advance(1000);
          const res = await submit(app, agent, resultFor(work, work.ports.slice(0, 2), clock.now()));
          expect(res.statusCode, res.body).toBe(200);
          if (work.round === 0) seen.visits++;
          seen.rounds++;
        }
        expected.set(id, seen);
      }
      // The scenario tells the two apart only when some visit had more than one round.
      const all = [...expected.values()];
      expect(all.reduce((n, e) => n + e.rounds, 0)).toBeGreaterThan(all.reduce((n, e) => n + e.visits, 0));

      const listed = (await app.inject({ method: 'GET', url: '/api/v1/admin/agents', headers: bearer(t.admin) })).json<{
        agents: Array<{ id: string; counters: Record<string, number>; resultsLastHour: number; visitsLastHour: number }>;
      }>().agents;
      for (const a of listed) {
        const { visits, rounds } = expected.get(a.id)!;
        expect(a, a.id).toMatchObject({ counters: { visits, results: rounds }, visitsLastHour: visits, resultsLastHour: rounds });
      }
      // Stored, not only in memory: the store's rows carry the same counters.
      for (const a of await app.coordinator.store.listAgents()) {
        const { visits, rounds } = expected.get(a.id)!;
        expect(a.counters).toMatchObject({ visits, results: rounds });
      }
    },
    60_000,
  );
});
