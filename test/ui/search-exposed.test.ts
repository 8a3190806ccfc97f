import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from '../coordinator/helpers.js';

// A sparse scope as the README's lab gives: most addresses answer on nothing, so the search's
// first pages are hosts with no open port. The page says how many of the matches expose
// something and links to just those.
describe('the search page points at the hosts that expose something', () => {
  const data = tempDataDir();
  const clock = manualClock();
  let app: FastifyInstance;
  let admin = '';
  const page = async (q: string, view = 'latest'): Promise<string> => {
    const res = await app.inject({
      method: 'GET',
      url: `/ui/search?${new URLSearchParams({ q, view }).toString()}`,
      headers: bearer(admin),
    });
    expect(res.statusCode).toBe(200);
    return res.body;
  };

  beforeAll(async () => {
    app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    admin = t.admin;
    await addScope(app, admin, [
      { range: '198.18.20.0/30', tags: ['lab'] },
      { range: '198.18.21.0', tags: ['office'] },
    ]);
    const policy = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: { strategy: 'fixed', budget: 10, params: { ports: [22, 80, 443, 8080] } },
    });
    expect(policy.statusCode).toBe(200);
    // 198.18.20.1 and 198.18.21.0 serve port 80; the other three addresses answer on nothing.
    for (let i = 0; i < 5; i++) {
      const w = await getWork(app, t.agents[0]!);
      if (w === null) throw new Error('no work');
      clock.advance(60_000);
      const open = w.ip === '198.18.20.1' || w.ip === '198.18.21.0' ? [80] : [];
      const res = await submit(app, t.agents[0]!, resultFor(w, open, clock.now()));
      expect(res.statusCode).toBe(200);
    }
  });
  afterAll(async () => {
    await app?.close();
    data.cleanup();
  });

  it('the empty search: 2 of 5 hosts, linked to port:*', async () => {
    const body = await page('');
    expect(body).toContain('<strong>5</strong> hosts match');
    expect(body).toContain(
      '<a href="/ui/search?q=port%3A*&amp;view=latest"><strong>2</strong> of these hosts have open ports</a>; the other 3 have none open in their latest scan.',
    );
    const linked = await page('port:*');
    expect(linked).toContain('<strong>2</strong> hosts match');
    expect(linked).not.toContain('have open ports');
  });

  it('a query keeps its terms in the link (parenthesised), and history counts scans', async () => {
    const body = await page('tag:lab');
    expect(body).toContain('<strong>4</strong> hosts match');
    expect(body).toContain('href="/ui/search?q=%28tag%3Alab%29+port%3A*&amp;view=latest"><strong>1</strong> of these hosts');
    expect(await page('(tag:lab) port:*')).toContain('<strong>1</strong> hosts match');
    const history = await page('tag:office OR ip:198.18.20.0', 'history');
    expect(history).toContain('<strong>1</strong> of these scans have open ports</a>; the other 1 found none open.');
  });

  it('says nothing when every match exposes something, none matches, or the query is about ports', async () => {
    expect(await page('tag:office')).not.toContain('have open ports');
    expect(await page('tag:nowhere')).not.toContain('have open ports');
    expect(await page('-port:80')).not.toContain('have open ports');
    expect(await page('tag:lab -port:*')).not.toContain('have open ports');
  });
});
