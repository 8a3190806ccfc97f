import { describe, expect, it } from 'vitest';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { addScope, bearer, getWork, manualClock, postgresCoordinators, resultFor, submit, tokens } from './helpers.js';

const missing = postgresMissing();
if (missing) console.warn(`shared-finished: skipped: ${missing}`);

/**
 * Two coordinators on one real PostgreSQL (a throwaway cluster), an agent submitting to both: each
 * process sees only the rounds submitted to it, so the cycle's finished visits (the dashboard's
 * "Cycle N done") are counted in the store, and both coordinators give the same figure.
 */
describe.skipIf(missing !== undefined)("a cycle's finished visits with two coordinators on one PostgreSQL", () => {
  const pg = usePostgres();
  const openOn = postgresCoordinators(pg);

  it('both count every finished visit, whichever coordinator stored its last round', async () => {
    const schema = pg.freshSchema();
    const clock = manualClock();
    const open = () => openOn(schema, clock.now);
    const a = await open();
    const t = await tokens(a);
    await addScope(a, t.admin, [{ range: '198.18.31.0/30', tags: ['lab'] }]);
    // A capped first look: a host that answers gets a follow-up round.
    await a.coordinator.setPolicy('', { strategy: 'adaptive', budget: 3000, periodSeconds: 3600 });
    const b = await open();
    const agent = t.agents[0]!;

    const items = [];
    for (let i = 0; i < 4; i++) items.push((await getWork(a, agent))!);
    expect(items.map((w) => w.round)).toEqual([0, 0, 0, 0]);
    clock.advance(1000);
    // Two first looks go to each coordinator; the two that answer are followed up (the silent
    // ones may be too: a budget of 3,000 sweeps on after a silent first look).
    const followUps: boolean[] = [];
    for (const [i, w] of items.entries()) {
      const res = await submit(i < 2 ? a : b, agent, resultFor(w, i % 2 === 0 ? [w.ports[0]!] : [], clock.now()));
      expect(res.statusCode).toBe(200);
      followUps.push((res.json() as { followUp: boolean }).followUp);
    }
    expect([followUps[0], followUps[2]]).toEqual([true, true]);
    const pending = followUps.filter(Boolean).length;
    for (const app of [a, b]) expect(await app.coordinator.cycleVisitsFinished()).toBe(4 - pending);

    // The follow-ups, leased from one and submitted to the other (B's count is fresh: taken now).
    clock.advance(10_000);
    expect(await b.coordinator.cycleVisitsFinished()).toBe(4 - pending);
    const later = [];
    for (let w = await getWork(b, agent); w !== null && later.length < pending; w = await getWork(b, agent)) later.push(w);
    expect(later.map((w) => w.round)).toEqual(Array(pending).fill(1));
    for (const w of later) {
      const res = await submit(a, agent, resultFor(w, [], clock.now()));
      expect((res.json() as { followUp: boolean }).followUp).toBe(false);
    }
    // Within 5 s a coordinator answers from its last count; after that, from the store again: B
    // counts the visits whose last rounds went to A (its own process stored none of them).
    expect(await b.coordinator.cycleVisitsFinished()).toBe(4 - pending);
    clock.advance(5_000);
    for (const app of [a, b]) expect(await app.coordinator.cycleVisitsFinished()).toBe(4);
    const page = await b.inject({ method: 'GET', url: '/ui', headers: bearer(t.admin) });
    expect(page.body).toContain('Cycle 1 done</div><div class="value">100.0%');
  });
});
