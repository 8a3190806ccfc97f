import { afterEach, beforeEach, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';
import type { WorkItem } from '../../src/protocol/protocol.js';

let data: ReturnType<typeof tempDataDir>;
let app: FastifyInstance;
const clock = manualClock();

beforeEach(async () => {
  data = tempDataDir();
  app = await openApp(data.dir, clock.now);
});
afterEach(async () => {
  await app.close();
  data.cleanup();
});

it('a cycle past its period waits for the visits still in flight, says so on the dashboard, then starts the next', async () => {
  const t = await tokens(app);
  await addScope(app, t.admin, [{ range: '198.18.40.0/30', tags: ['lab'] }]);
  // Fixed ports, no follow-ups: one round per visit; a 60 s period, shorter than the scanning.
  await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 443] }, periodSeconds: 60 });
  const items: WorkItem[] = [];
  for (let w = await getWork(app, t.agents[0]!); w; w = await getWork(app, t.agents[0]!)) items.push(w);
  expect(items.map((i) => i.cycle)).toEqual([1, 1, 1, 1]);

  // The period is over but all four visits are being scanned: no second visit of any of them.
  clock.advance(61_000);
  expect(await getWork(app, t.agents[0]!)).toBeNull();
  const dashboard = await app.inject({ method: 'GET', url: '/ui', headers: bearer(t.admin) });
  expect(dashboard.body.replace(/\s+/g, ' ')).toContain(
    'its period is over, and the next cycle starts once the 4 visits in flight are done.',
  );

  // Three results in: one visit still in flight holds the cycle.
  for (const item of items.slice(0, 3)) expect((await submit(app, t.agents[0]!, resultFor(item, [], clock.now()))).statusCode).toBe(200);
  clock.advance(1_000);
  expect(await getWork(app, t.agents[0]!)).toBeNull();
  // The last one in: cycle 2 begins.
  expect((await submit(app, t.agents[0]!, resultFor(items[3]!, [], clock.now()))).statusCode).toBe(200);
  clock.advance(1_000);
  expect((await getWork(app, t.agents[0]!))?.cycle).toBe(2);
});
