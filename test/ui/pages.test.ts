import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY } from '../../src/coordinator/ui/layout.js';
import { bearer } from '../coordinator/helpers.js';
import { type UiFixture, HOSTILE_PRODUCT, openUiFixture } from './fixture.js';

describe('the operator UI over a real SQLite-backed coordinator', () => {
  let f: UiFixture;
  beforeAll(async () => {
    f = await openUiFixture({ authFailuresPerMinute: 1000 });
  });
  afterAll(async () => {
    await f?.close();
  });
  const get = (url: string, headers: Record<string, string> = bearer(f.admin)) => f.app.inject({ method: 'GET', url, headers });

  describe('authentication', () => {
    it('redirects an anonymous browser to the sign-in form and shows it no data', async () => {
      for (const url of ['/ui', '/ui/search?q=port:22', '/ui/host/198.18.10.2', '/ui/export?format=hosts']) {
        const res = await get(url, {});
        expect(res.statusCode, url).toBe(303);
        expect(res.headers.location).toBe(`/ui/login?next=${encodeURIComponent(url)}`);
        expect(res.body).not.toContain('198.18.10');
      }
      expect((await get('/', {})).headers.location).toBe('/ui');
    });

    it('answers 401 to a bad token and 403 to an agent token, without data', async () => {
      const bad = await get('/ui', bearer('pbk_wrong'));
      expect(bad.statusCode).toBe(401);
      expect(bad.body).toContain('Sign in');
      expect(bad.body).not.toContain('198.18.10');
      const cookie = await get('/ui/search?q=', { cookie: 'pb_ui=pbk_wrong' });
      expect(cookie.statusCode).toBe(401);
      expect(cookie.headers['set-cookie']).toContain('Max-Age=0');
      const agent = await get('/ui', bearer(f.agent));
      expect(agent.statusCode).toBe(403);
      expect(agent.body).not.toContain('198.18.10');
    });

    it('signs in with an admin token into an HttpOnly SameSite=Strict cookie that then opens the pages', async () => {
      const refused = await f.app.inject({
        method: 'POST',
        url: '/ui/login',
        payload: `token=${f.agent}&next=/ui`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(refused.statusCode).toBe(401);
      expect(refused.body).toContain('agent token');
      expect(refused.headers['set-cookie']).toBeUndefined();

      const res = await f.app.inject({
        method: 'POST',
        url: '/ui/login',
        payload: new URLSearchParams({ token: f.admin, next: '/ui/search?q=port:22' }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe('/ui/search?q=port:22');
      const setCookie = String(res.headers['set-cookie']);
      expect(setCookie).toMatch(/^pb_ui=pbk_[^;]+; Path=\/ui; HttpOnly; SameSite=Strict$/);
      const page = await get('/ui/search?q=port:22', { cookie: setCookie.split(';')[0]! });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('198.18.10.0');
      // Exports go through the API with the cookie's token (a link cannot carry a header).
      const exported = await get('/ui/export?q=tag:db&format=hosts', { cookie: setCookie.split(';')[0]! });
      expect(exported.body).toBe('198.18.10.2\n');
    });

    it('never redirects outside the UI after sign-in', async () => {
      for (const next of ['https://evil.example/', '//evil.example/ui', '/api/v1/search', '/uix', '/ui\r\nset-cookie: x=1', '/ui\\evil']) {
        const res = await f.app.inject({
          method: 'POST',
          url: '/ui/login',
          payload: new URLSearchParams({ token: f.admin, next }).toString(),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        expect(res.headers.location, next).toBe('/ui');
      }
    });

    it('signs out by clearing the cookie', async () => {
      const res = await f.app.inject({ method: 'POST', url: '/ui/logout' });
      expect(res.statusCode).toBe(303);
      expect(res.headers['set-cookie']).toContain('pb_ui=;');
    });
  });

  describe('pages', () => {
    it('sends a strict Content-Security-Policy without scripts and no inline script anywhere', async () => {
      for (const url of ['/ui', '/ui/search?q=port:80', '/ui/host/198.18.10.0', '/ui/login']) {
        const res = await get(url);
        expect(res.statusCode, url).toBe(200);
        expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
        expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
        expect(res.body).not.toMatch(/<script/i);
      }
      expect(CONTENT_SECURITY_POLICY).toContain("script-src 'none'");
      expect(CONTENT_SECURITY_POLICY).not.toMatch(/script-src[^;]*unsafe-inline/);
    });

    it('prints a hostile service banner and script output as text', async () => {
      for (const url of ['/ui/search?q=port:80', '/ui/host/198.18.10.0', `/ui/search?q=${encodeURIComponent(HOSTILE_PRODUCT)}`]) {
        const res = await get(url);
        expect(res.body).not.toContain(HOSTILE_PRODUCT);
        expect(res.body).not.toContain('<img src=x');
      }
      const host = await get('/ui/host/198.18.10.0');
      expect(host.body).toContain('&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;');
      expect(host.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    });

    it('renders the dashboard: scope, cycle, throughput, agents, policies, learned ports and SVG charts', async () => {
      const res = await get('/ui');
      const body = res.body;
      expect(body).toMatch(/Scope addresses<\/div><div class="value">3</);
      expect(body).toMatch(/Scans last hour<\/div><div class="value">6</);
      expect(body).toContain('agent-0');
      expect(body).toMatch(/<td class="mono">fixed<\/td><td class="num">10<\/td>/);
      expect(body).toContain('What was learned');
      expect((body.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(3);
      expect(body).toContain('href="/ui/search?q=port%3A22"');
    });

    it('searches with the query language, paginates and links the exports', async () => {
      const res = await get(`/ui/search?q=${encodeURIComponent('port:22 -tag:db')}`);
      expect(res.body).toContain('<strong>2</strong> hosts match');
      expect(res.body).toContain('href="/ui/host/198.18.10.0"');
      expect(res.body).not.toContain('href="/ui/host/198.18.10.2"');
      expect(res.body).toContain('/ui/export?q=port%3A22+-tag%3Adb&amp;view=latest&amp;format=ndjson');
      const history = await get('/ui/search?q=&view=history');
      expect(history.body).toContain('<strong>6</strong> scans match');
      const beyond = await get('/ui/search?q=&page=2');
      expect(beyond.body).toContain('No matches.');
      expect(beyond.body).toContain('page 2 of 1');
    });

    it('explains a malformed query with its column and answers 400', async () => {
      const res = await get(`/ui/search?q=${encodeURIComponent('port:22 AND (service:ssh')}`);
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain('The query is malformed.');
      expect(res.body).toMatch(/query column \d+/);
      expect(res.body).toMatch(/<pre class="mono">port:22 AND \(service:ssh\n *\^<\/pre>/);
    });

    it('exports the matches through the API as NDJSON, JSON and a host list', async () => {
      const hosts = await get('/ui/export?q=port:22&format=hosts');
      expect(hosts.statusCode).toBe(200);
      expect(hosts.body.trim().split('\n').sort()).toEqual(['198.18.10.0', '198.18.10.1', '198.18.10.2']);
      expect(hosts.headers['content-disposition']).toBe('attachment; filename="portbandit-search.txt"');
      const ndjson = await get('/ui/export?q=port:80&format=ndjson');
      expect(
        ndjson.body
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { ip: string }).ip)
          .sort(),
      ).toEqual(['198.18.10.0', '198.18.10.1']);
      const json = await get('/ui/export?q=tag:db&format=json');
      expect((JSON.parse(json.body) as { total: number }).total).toBe(1);
      const bad = await get('/ui/export?q=port:(&format=json');
      expect(bad.statusCode).toBe(400);
    });

    it('shows a host: ports with CPEs and ssl-cert fields, the diff against the previous scan, the history', async () => {
      const res = await get('/ui/host/198.18.10.2');
      const body = res.body;
      expect(body).toContain('cpe:/a:eclipse:jetty:12.0');
      expect(body).toContain('<dt>subject.commonName</dt><dd>web.lab.example</dd>');
      expect(body).toContain('<dd>Lab &lt;Org&gt;</dd>');
      expect(body).toContain('<dt>validity.notAfter</dt><dd>2027-01-01T00:00:00</dd>');
      expect(body).toMatch(/<td class="opened">opened<\/td><td class="num mono">8080<\/td>/);
      expect(body).toMatch(/<td class="closed">closed<\/td><td class="num mono">443<\/td><td>https nginx 1.25<\/td>/);
      expect(body).toMatch(/<td>changed<\/td><td class="num mono">22<\/td><td>ssh OpenSSH 9.6<\/td><td>ssh OpenSSH 9.7<\/td>/);
      expect(body).toContain('History <span class="muted">(2 scans)');
    });

    it('diffs any two scans the operator picks, in time order whichever way round', async () => {
      const history = (await get('/api/v1/hosts/198.18.10.2/history')).json() as { items: Array<{ scanId: string }> };
      const [newer, older] = history.items.map((s) => s.scanId);
      const swapped = await get(`/ui/host/198.18.10.2?from=${newer}&to=${older}`);
      expect(swapped.body).toMatch(/<td class="opened">opened<\/td><td class="num mono">8080/);
      const same = await get(`/ui/host/198.18.10.2?from=${older}&to=${older}`);
      expect(same.body).toContain('No changes');
      const old = await get(`/ui/host/198.18.10.2?scan=${older}`);
      expect(old.body).toContain('<h2>Visit <span class="mono muted">');
      expect(old.body).toContain('https nginx');
    });

    it('answers unknown hosts, foreign scans and bad addresses with an HTML error page', async () => {
      const unknown = await get('/ui/host/198.18.99.1');
      expect(unknown.statusCode).toBe(404);
      expect(unknown.body).toContain('198.18.99.1 has never been scanned');
      const history = (await get('/api/v1/hosts/198.18.10.0/history')).json() as { items: Array<{ scanId: string }> };
      const foreign = await get(`/ui/host/198.18.10.2?from=${history.items[0]!.scanId}`);
      expect(foreign.statusCode).toBe(404);
      const bad = await get(`/ui/host/${encodeURIComponent('<b>x</b>')}`);
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toContain('&lt;b&gt;x&lt;/b&gt;');
      expect(bad.headers['content-type']).toBe('text/html; charset=utf-8');
    });
  });
});
