import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from '../coordinator/helpers.js';

/**
 * The dashboard's cycle line once every address is handed out: under a budget that covers the
 * port space a visit's next round (the rest of the ports) is still out long after the walk ends
 * (minutes on the README's /24), and the line said "Finished" meanwhile.
 */
describe('the dashboard cycle line', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  const clock = manualClock();

  beforeEach(async () => {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now);
    t = await tokens(app);
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  const cycleLine = async (): Promise<string> => {
    const res = await app.inject({ method: 'GET', url: '/ui', headers: bearer(t.admin) });
    expect(res.statusCode).toBe(200);
    return /<p[^>]*>(Cycle 1 started[^<]*)<\/p>/.exec(res.body)?.[1] ?? `no cycle line in ${res.body.slice(0, 200)}`;
  };

  it('says what is still out after the walk, and "Finished" only when nothing is', async () => {
    await addScope(app, t.admin, [{ range: '198.18.30.0/31', tags: ['lab'] }]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 10, periodSeconds: 3600 });
    const items = [(await getWork(app, t.agents[0]!))!, (await getWork(app, t.agents[0]!))!];
    expect(await cycleLine()).toMatch(
      /2 of 2 positions walked.* Every address handed out; 2 visits in flight and 0 rounds queued before it is finished\. The next cycle starts /,
    );
    expect(await cycleLine()).not.toContain('Finished');
    clock.advance(1000);
    await submit(app, t.agents[0]!, resultFor(items[0]!, [], clock.now()));
    expect(await cycleLine()).toContain('1 visit in flight and 0 rounds queued');
    await submit(app, t.agents[0]!, resultFor(items[1]!, [], clock.now()));
    expect(await cycleLine()).toMatch(/ Finished; the next cycle starts .* \(the period of 3,600 s is paced\)\.$/);
  });

  it('counts the scans of the last 60 minutes as "Scans last hour", not those of the current clock hour', async () => {
    await addScope(app, t.admin, [{ range: '198.18.30.0/31', tags: ['lab'] }]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 10, periodSeconds: 3600 });
    const lastHour = async (): Promise<string | undefined> => {
      const res = await app.inject({ method: 'GET', url: '/ui', headers: bearer(t.admin) });
      return /Scans last hour<\/div><div class="value">([^<]*)</.exec(res.body)?.[1];
    };
    clock.advance(50 * 60_000); // 02:50
    for (const item of [(await getWork(app, t.agents[0]!))!, (await getWork(app, t.agents[0]!))!])
      await submit(app, t.agents[0]!, resultFor(item, [], clock.now()));
    expect(await lastHour()).toBe('2');
    clock.advance(20 * 60_000); // 03:10: both within the last hour, in the previous clock hour
    expect(await lastHour()).toBe('2');
    clock.advance(45 * 60_000); // 03:55
    expect(await lastHour()).toBe('0');
  });

  it('counts the hosts whose latest visit found a port open, linked to the search port:*', async () => {
    await addScope(app, t.admin, [{ range: '198.18.30.0/30', tags: ['lab'] }]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 10, periodSeconds: 3600 });
    const card = async (): Promise<string | undefined> => {
      const res = await app.inject({ method: 'GET', url: '/ui', headers: bearer(t.admin) });
      return /Hosts with open ports<\/div><div class="value">(.*?)<\/div>/.exec(res.body)?.[1];
    };
    expect(await card()).toBe('<a href="/ui/search?q=port%3A*">0</a>');
    const items = [];
    for (let i = 0; i < 4; i++) items.push((await getWork(app, t.agents[0]!))!);
    clock.advance(1000);
    // Two of four hosts answer on a port of their list; the others have nothing open.
    for (const [i, item] of items.entries()) await submit(app, t.agents[0]!, resultFor(item, i < 2 ? [item.ports[0]!] : [], clock.now()));
    expect(await card()).toBe('<a href="/ui/search?q=port%3A*">2</a>');
    const search = await app.inject({ method: 'GET', url: '/ui/search?q=port%3A*', headers: bearer(t.admin) });
    expect(search.statusCode).toBe(200);
    expect(search.body).toMatch(/<strong>2<\/strong> hosts? match/);
  });
});
