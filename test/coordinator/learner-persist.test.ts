import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { databasePath } from '../../src/coordinator/app.js';
import { type LearnedDocument, PERSIST_INTERVAL_MS } from '../../src/coordinator/learner.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

describe('learned state is written at most every PERSIST_INTERVAL_MS while batches arrive', () => {
  let data: ReturnType<typeof tempDataDir>;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  it('keeps full batches in memory until the interval passes, then the sweep writes them', async () => {
    const clock = manualClock();
    const app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.9.0/28', tags: ['web'] }]);
    const put = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/web',
      headers: bearer(t.admin),
      payload: { strategy: 'adaptive', budget: 30, params: { sweepShare: 0, followUp: false } },
    });
    expect(put.statusCode).toBe(200);
    // A second connection reads what is committed, as a restarted process would.
    const reader = await openSqliteStore({ path: databasePath(data.dir) });
    const stored = async () => (await reader.getDocument<LearnedDocument>('strategyStates', 'web/adaptive'))?.value;
    try {
      const visit = async () => {
        const w = (await getWork(app, t.agents[0]!))!;
        expect((await submit(app, t.agents[0]!, resultFor(w, [w.ports[0]!], clock.now()))).statusCode).toBe(200);
        // Learning runs after the submit is answered, on a later turn of the event loop.
        await app.coordinator.learningSettled();
      };
      for (let i = 0; i < 8; i++) await visit(); // two batches (learnBatchSize 4 in tests)
      const learned = (
        await app.inject({ method: 'GET', url: '/api/v1/admin/policies/web/learned?limit=50', headers: bearer(t.admin) })
      ).json();
      expect(learned.batches).toBe(2); // learned in memory ...
      expect((await stored())?.batches ?? 0).toBe(0); // ... not yet written

      clock.advance(PERSIST_INTERVAL_MS);
      for (let i = 0; i < 4; i++) await visit(); // a full batch once the interval has passed is written at once
      expect((await stored())?.batches).toBe(3);

      for (let i = 0; i < 4; i++) await visit();
      expect((await stored())?.batches).toBe(3);
      clock.advance(PERSIST_INTERVAL_MS);
      await app.coordinator.sweep();
      const after = await stored();
      expect(after?.batches).toBe(4);
      expect(after?.state).toBeDefined();
    } finally {
      await reader.close();
      await app.close();
    }
  });
});
