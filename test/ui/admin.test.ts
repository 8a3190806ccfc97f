import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/coordinator/audit.js';
import { csrfTokenFor, checkCsrfToken } from '../../src/coordinator/ui/csrf.js';
import { bearer } from '../coordinator/helpers.js';
import { type UiFixture, openUiFixture } from './fixture.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** A multipart body as a browser sends a form with a file input. */
function multipartBody(fields: Record<string, string>, file?: { name: string; filename: string; content: string }): { payload: string; headers: Record<string, string> } {
  const boundary = '----pbtest7MA4YWxkTrZu0gW';
  let out = '';
  for (const [k, v] of Object.entries(fields)) out += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  if (file) out += `--${boundary}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\nContent-Type: text/plain\r\n\r\n${file.content}\r\n`;
  out += `--${boundary}--\r\n`;
  return { payload: out, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

describe('the admin pages of the UI (real SQLite-backed coordinator, app.inject)', () => {
  let f: UiFixture;
  let cookie: Record<string, string>;
  let csrf: string;
  beforeAll(async () => {
    f = await openUiFixture({ authFailuresPerMinute: 1000 });
    cookie = { cookie: `pb_ui=${f.admin}` };
    csrf = await csrfOf('/ui/admin/scope');
  });
  afterAll(async () => {
    await f?.close();
  });

  async function csrfOf(url: string, headers = cookie): Promise<string> {
    const res = await f.app.inject({ method: 'GET', url, headers });
    expect(res.statusCode, url).toBe(200);
    const m = /name="_csrf" value="([^"]+)"/.exec(res.body);
    expect(m, url).not.toBeNull();
    return m![1]!;
  }
  const post = (url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
    f.app.inject({ method: 'POST', url, headers: { ...cookie, ...FORM, ...headers }, payload: new URLSearchParams(fields).toString() });
  const scope = async (list = 'scope') => (await f.app.coordinator.store.listScope(list as 'scope')).entries.map((e) => `${e.range}${e.tags.length ? `,${e.tags.join(',')}` : ''}`);
  const auditLog = async () => (await f.app.inject({ method: 'GET', url: '/api/v1/admin/audit?limit=1000', headers: bearer(f.admin) })).json<{ total: number; items: AuditEntry[] }>();

  describe('CSRF protection', () => {
    it('derives a per-session token that another session or a tampered value does not match', () => {
      const key = Buffer.alloc(32, 7);
      const t = csrfTokenFor(key, 'pbk_a');
      expect(checkCsrfToken(key, 'pbk_a', t)).toBe(true);
      expect(checkCsrfToken(key, 'pbk_b', t)).toBe(false);
      expect(checkCsrfToken(Buffer.alloc(32, 8), 'pbk_a', t)).toBe(false);
      expect(checkCsrfToken(key, 'pbk_a', `${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`)).toBe(false);
      for (const bad of [undefined, '', 42, [t], 'x'.repeat(500)]) expect(checkCsrfToken(key, 'pbk_a', bad)).toBe(false);
    });

    it('refuses a POST without the token, with a wrong one, with another session\'s, or marked cross-site, and changes nothing', async () => {
      const before = await scope();
      const auditBefore = (await auditLog()).total;
      const other = (await f.app.coordinator.createAdminToken('other')).token;
      const otherCsrf = await csrfOf('/ui/admin/scope', { cookie: `pb_ui=${other}` });
      expect(otherCsrf).not.toBe(csrf);
      const attempts = [
        post('/ui/admin/scope/add', { range: '198.18.20.0/24' }),
        post('/ui/admin/scope/add', { range: '198.18.20.0/24', _csrf: 'forged' }),
        post('/ui/admin/scope/add', { range: '198.18.20.0/24', _csrf: otherCsrf }),
        post('/ui/admin/scope/add', { range: '198.18.20.0/24', _csrf: csrf }, { 'sec-fetch-site': 'cross-site' }),
        post('/ui/admin/agents', { name: 'evil' }),
        post('/ui/admin/tokens', { name: 'evil', _csrf: otherCsrf }),
        post('/ui/alerts', { name: 'x', query: 'port:22', url: 'http://127.0.0.1:9/' }),
        post('/ui/host/198.18.10.1/rescan', {}),
      ];
      for (const res of await Promise.all(attempts)) {
        expect(res.statusCode).toBe(403);
        expect(res.body).toContain('Nothing was changed');
        expect(res.body).not.toContain('pba_');
        expect(res.body).not.toContain('pbk_');
      }
      expect(await scope()).toEqual(before);
      expect((await f.app.coordinator.listAgents()).map((a) => a.name)).not.toContain('evil');
      expect((await f.app.coordinator.store.listQueuedWork(10)).length).toBe(0);
      expect((await auditLog()).total).toBe(auditBefore);
    });

    it('puts the token in every form of every admin page', async () => {
      for (const url of ['/ui/admin/scope', '/ui/admin/scope?list=blocklist', '/ui/admin/policies', '/ui/admin/agents', '/ui/alerts', '/ui/host/198.18.10.1']) {
        const res = await f.app.inject({ method: 'GET', url, headers: cookie });
        expect(res.statusCode, url).toBe(200);
        const forms = res.body.match(/<form method="post"[\s\S]*?<\/form>/g) ?? [];
        const posts = forms.filter((form) => !form.includes('action="/ui/logout"'));
        expect(posts.length, url).toBeGreaterThan(0);
        for (const form of posts) expect(form, url).toContain(`name="_csrf" value="${csrf}"`);
        expect(res.body).not.toMatch(/<script/i);
      }
    });
  });

  describe('scope and blocklist', () => {
    it('adds, removes, imports (text or file, add or replace) and exports, each audited as a UI change', async () => {
      const add = await post('/ui/admin/scope/add?list=scope', { range: '198.18.30.7/24', tags: 'lab, web', _csrf: csrf });
      expect(add.statusCode).toBe(303);
      expect(add.headers.location).toBe('/ui/admin/scope?list=scope&done=scope-added');
      expect(await scope()).toContain('198.18.30.0/24,lab,web');

      const file = multipartBody({ _csrf: csrf }, { name: 'file', filename: 'block.txt', content: '# lab printers\n198.18.30.9,printer\n198.18.30.10-198.18.30.12\n' });
      const imported = await f.app.inject({ method: 'POST', url: '/ui/admin/scope/import?list=blocklist', headers: { ...cookie, ...file.headers }, payload: file.payload });
      expect(imported.statusCode).toBe(303);
      expect(await scope('blocklist')).toEqual(['198.18.30.10-198.18.30.12', '198.18.30.9,printer']);

      const replaced = multipartBody({ _csrf: csrf, text: '198.18.30.9\n', replace: '1' });
      expect((await f.app.inject({ method: 'POST', url: '/ui/admin/scope/import?list=blocklist', headers: { ...cookie, ...replaced.headers }, payload: replaced.payload })).statusCode).toBe(303);
      expect(await scope('blocklist')).toEqual(['198.18.30.9']);

      const exported = await f.app.inject({ method: 'GET', url: '/ui/admin/scope/export?list=scope', headers: cookie });
      expect(exported.headers['content-disposition']).toContain('portbandit-scope.txt');
      expect(exported.body).toContain('198.18.30.0/24,lab,web\n');

      const removed = await post('/ui/admin/scope/remove?list=blocklist', { ranges: '198.18.30.9', _csrf: csrf });
      expect(removed.statusCode).toBe(303);
      expect(await scope('blocklist')).toEqual([]);

      const log = (await auditLog()).items;
      expect(log.slice(0, 4).map((e) => [e.action, e.target, e.actor.via, e.actor.name])).toEqual([
        ['scope.remove', 'blocklist', 'ui', 'test-admin'],
        ['scope.replace', 'blocklist', 'ui', 'test-admin'],
        ['scope.import', 'blocklist', 'ui', 'test-admin'],
        ['scope.add', 'scope', 'ui', 'test-admin'],
      ]);
    });

    it('shows bad input on the page (400, not 500) and changes nothing', async () => {
      const before = [await scope(), await scope('blocklist'), (await auditLog()).total];
      const bad = await post('/ui/admin/scope/add?list=scope', { range: '198.18.0.0/33', tags: 'ok', _csrf: csrf });
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toContain('Nothing was changed');
      expect(bad.body).toMatch(/198\.18\.0\.0\/33/);
      expect(bad.body).toContain('value="198.18.0.0/33"');
      expect((await post('/ui/admin/scope/add?list=scope', { range: '198.18.0.0/24', tags: 'bad tag!', _csrf: csrf })).statusCode).toBe(400);
      expect((await post('/ui/admin/scope/add?list=scope', { range: '', _csrf: csrf })).body).toContain('enter an address');
      // One bad line refuses the whole import and names its line.
      const file = multipartBody({ _csrf: csrf, text: '198.18.40.0/24,a\n198.18.40.300\n' });
      const imported = await f.app.inject({ method: 'POST', url: '/ui/admin/scope/import?list=scope', headers: { ...cookie, ...file.headers }, payload: file.payload });
      expect(imported.statusCode).toBe(400);
      expect(imported.body).toContain('text:2');
      const none = await post('/ui/admin/scope/remove?list=scope', { ranges: '198.18.99.0/24', _csrf: csrf });
      expect(none.statusCode).toBe(404);
      expect(none.body).toContain('is an entry of the scope');
      expect((await post('/ui/admin/scope/add?list=nope', { range: '198.18.0.1', _csrf: csrf })).statusCode).toBe(400);
      // An upload over the limit is refused with a page, not a 500, before anything is read into the store.
      const huge = multipartBody({ _csrf: csrf }, { name: 'file', filename: 'big.txt', content: '198.18.41.0/24\n'.repeat(1_200_000) });
      const tooBig = await f.app.inject({ method: 'POST', url: '/ui/admin/scope/import?list=scope', headers: { ...cookie, ...huge.headers }, payload: huge.payload });
      expect(tooBig.statusCode).toBe(413);
      expect(tooBig.headers['content-type']).toContain('text/html');
      expect([await scope(), await scope('blocklist'), (await auditLog()).total]).toEqual(before);
    });
  });

  describe('policies', () => {
    it('saves a policy from the form, keeping what the form does not show, and applies a services file', async () => {
      const saved = await post('/ui/admin/policies', { tag: 'web', strategy: 'thompson', budget: '40', mustHave: '22, 80,443', exclude: '9100-9102', 'script:ssl-cert': '1', _csrf: csrf });
      expect(saved.statusCode).toBe(303);
      const p = f.app.coordinator.policy('web')!;
      expect(p).toMatchObject({ strategy: 'thompson', budget: 40, mustHave: [22, 80, 443], exclude: [9100, 9101, 9102], scan: { scripts: ['ssl-cert'] } });
      expect(p.rate).toBeUndefined();

      const services = multipartBody({ _csrf: csrf, tag: 'web' }, { name: 'file', filename: 'natlas-services', content: 'ssh 22/tcp\nhttp 80/tcp\nhttps-alt 8443/tcp\ndns 53/udp\n' });
      const up = await f.app.inject({ method: 'POST', url: '/ui/admin/policies/services', headers: { ...cookie, ...services.headers }, payload: services.payload });
      expect(up.statusCode).toBe(303);
      expect(f.app.coordinator.policy('web')!.mustHave).toEqual([22, 80, 8443]);
      expect(f.app.coordinator.policy('web')!.exclude).toEqual([9100, 9101, 9102]);

      const page = await f.app.inject({ method: 'GET', url: '/ui/admin/policies?tag=web&done=services-uploaded', headers: cookie });
      expect(page.body).toContain('Services file applied.');
      expect(page.body).toContain('value="22,80,8443"');

      const rate = await post('/ui/admin/policies', { tag: '_default', strategy: 'top-k', rate: '500', periodSeconds: '43200', _csrf: csrf });
      expect(rate.statusCode).toBe(303);
      expect(f.app.coordinator.policy('')).toMatchObject({ strategy: 'top-k', rate: 500, periodSeconds: 43200 });

      const del = await post('/ui/admin/policies/delete', { tag: 'web', _csrf: csrf });
      expect(del.statusCode).toBe(303);
      expect(f.app.coordinator.policy('web')).toBeUndefined();
      expect((await auditLog()).items.slice(0, 4).map((e) => e.action)).toEqual(['policy.delete', 'policy.set', 'policy.services', 'policy.set']);
    });

    it('refuses bad fields with a message naming the field, keeps the typed values, and changes nothing', async () => {
      const before = JSON.stringify(f.app.coordinator.policy('dmz'));
      const total = (await auditLog()).total;
      const cases: Array<[Record<string, string>, RegExp]> = [
        [{ tag: 'dmz', strategy: 'thompson', budget: 'many' }, /budget: expected an integer/],
        [{ tag: 'dmz', strategy: 'thompson', budget: '70000' }, /budget: expected an integer from 0 up to 65535/],
        [{ tag: 'dmz', strategy: 'thompson', budget: '10', mustHave: '22,99999' }, /mustHave/],
        [{ tag: 'dmz', strategy: 'no-such', budget: '10' }, /no-such/],
        [{ tag: 'dmz', strategy: 'thompson', budget: '10', params: '{not json' }, /params: expected a JSON object/],
        [{ tag: 'dmz', strategy: 'thompson' }, /state a budget/],
        [{ tag: 'bad tag', strategy: 'thompson', budget: '10' }, /tag: expected a tag/],
        [{ tag: 'dmz', strategy: 'thompson', rate: '-1' }, /rate: expected a number above 0/],
      ];
      for (const [fields, message] of cases) {
        const res = await post('/ui/admin/policies', { ...fields, _csrf: csrf });
        expect(res.statusCode, JSON.stringify(fields)).toBe(400);
        expect(res.body).toContain('Nothing was changed');
        expect(res.body.replace(/&quot;/g, '"')).toMatch(message);
      }
      const kept = await post('/ui/admin/policies', { tag: 'dmz', strategy: 'thompson', budget: '10', mustHave: '22,99999', _csrf: csrf });
      expect(kept.body).toContain('value="22,99999"');
      const badFile = multipartBody({ _csrf: csrf, tag: 'dmz' }, { name: 'file', filename: 'x', content: 'ssh twenty-two/tcp\n' });
      const up = await f.app.inject({ method: 'POST', url: '/ui/admin/policies/services', headers: { ...cookie, ...badFile.headers }, payload: badFile.payload });
      expect(up.statusCode).toBe(400);
      expect(up.body).toContain('services file:1');
      expect(JSON.stringify(f.app.coordinator.policy('dmz'))).toBe(before);
      expect((await auditLog()).total).toBe(total);
    });
  });

  describe('agents and admin tokens', () => {
    it('shows a created token once (never in a URL or a later page), and revokes', async () => {
      const made = await post('/ui/admin/agents', { name: 'scanner-7', _csrf: csrf });
      expect(made.statusCode).toBe(200);
      const token = /value="(pba_[^"]+)"/.exec(made.body)![1]!;
      const agent = await f.app.coordinator.authenticateAgent(token);
      expect(agent?.name).toBe('scanner-7');
      const again = await f.app.inject({ method: 'GET', url: '/ui/admin/agents', headers: cookie });
      expect(again.body).toContain('scanner-7');
      expect(again.body).not.toContain(token);
      const audit = JSON.stringify(await auditLog());
      expect(audit).toContain('scanner-7');
      expect(audit).not.toContain(token);

      const removed = await post('/ui/admin/agents/delete', { id: agent!.id, _csrf: csrf });
      expect(removed.headers.location).toBe('/ui/admin/agents?done=agent-removed');
      expect(await f.app.coordinator.authenticateAgent(token)).toBeUndefined();

      const admin = await post('/ui/admin/tokens', { name: 'bob', _csrf: csrf });
      const adminToken = /value="(pbk_[^"]+)"/.exec(admin.body)![1]!;
      expect(await f.app.coordinator.authenticateAdmin(adminToken)).toBe(true);
      const bobId = (await f.app.coordinator.store.listAdminTokens()).find((t) => t.name === 'bob')!.id;
      expect((await post('/ui/admin/tokens/delete', { id: bobId, _csrf: csrf })).statusCode).toBe(303);
      expect(await f.app.coordinator.authenticateAdmin(adminToken)).toBe(false);
      expect((await post('/ui/admin/agents', { name: '  ', _csrf: csrf })).body).toContain('enter a name');
      expect((await post('/ui/admin/agents/delete', { id: 'agent_nope', _csrf: csrf })).statusCode).toBe(404);
    });

    it('signs the browser out when it revokes its own token', async () => {
      const own = await f.app.coordinator.createAdminToken('self');
      const headers = { cookie: `pb_ui=${own.token}` };
      const ownCsrf = await csrfOf('/ui/admin/agents', headers);
      const res = await post('/ui/admin/tokens/delete', { id: own.id, _csrf: ownCsrf }, headers);
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe('/ui/login');
      expect(String(res.headers['set-cookie'])).toContain('Max-Age=0');
      const entry = (await auditLog()).items[0]!;
      expect(entry).toMatchObject({ action: 'token.revoke', target: own.id, actor: { id: own.id, name: 'self', via: 'ui' } });
    });
  });

  describe('rescan, events, alerts, audit', () => {
    it('queues a rescan from the host page and refuses an address outside the scope', async () => {
      const res = await post('/ui/host/198.18.10.1/rescan', { _csrf: csrf });
      expect(res.headers.location).toBe('/ui/host/198.18.10.1?done=rescan-queued');
      const queued = await f.app.coordinator.store.listQueuedWork(10);
      expect(queued.map((q) => [q.ip, q.reason])).toEqual([['198.18.10.1', 'manual']]);
      expect((await f.app.inject({ method: 'GET', url: res.headers.location as string, headers: cookie })).body).toContain('Rescan queued');
      const outside = await post('/ui/host/198.18.99.1/rescan', { _csrf: csrf });
      expect(outside.statusCode).toBe(403);
      expect(outside.body).toContain('is not in the scope');
      expect((await f.app.coordinator.store.listQueuedWork(10)).length).toBe(1);
    });

    it('lists events newest first, filtered by the event query, and explains a bad query', async () => {
      const all = await f.app.inject({ method: 'GET', url: '/ui/events', headers: cookie });
      expect(all.statusCode).toBe(200);
      const rows = all.body.match(/<tr><td class="mono">\d{4}-[^<]+<\/td>/g) ?? [];
      expect(rows.length).toBeGreaterThan(3);
      const times = rows.map((r) => /(\d{4}-[^<]+)</.exec(r)![1]!);
      expect([...times].sort().reverse()).toEqual(times);
      const ssh = await f.app.inject({ method: 'GET', url: `/ui/events?q=${encodeURIComponent('kind:service-new port:8080')}`, headers: cookie });
      expect(ssh.body).toContain('1</strong> event match');
      expect(ssh.body).toContain('198.18.10.2');
      expect(ssh.body).toContain('Jetty');
      const bad = await f.app.inject({ method: 'GET', url: `/ui/events?q=${encodeURIComponent('kind:nope')}`, headers: cookie });
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toContain('The query is malformed');
    });

    it('adds and removes alert rules, refusing a bad query or URL on the page', async () => {
      const before = (await auditLog()).total;
      const bad = await post('/ui/alerts', { name: 'rdp', query: 'kind:service-new port:', url: 'http://127.0.0.1:9/hook', _csrf: csrf });
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toContain('value="rdp"');
      const badUrl = await post('/ui/alerts', { name: 'rdp', query: 'port:3389', url: 'ftp://127.0.0.1/', _csrf: csrf });
      expect(badUrl.body).toContain('url: expected an http or https webhook URL');
      expect((await auditLog()).total).toBe(before);
      const ok = await post('/ui/alerts', { name: 'rdp', query: 'kind:service-new port:3389', url: 'http://127.0.0.1:9/hook', _csrf: csrf });
      expect(ok.headers.location).toBe('/ui/alerts?done=alert-added');
      const page = await f.app.inject({ method: 'GET', url: '/ui/alerts', headers: cookie });
      expect(page.body).toContain('kind:service-new port:3389');
      expect((await post('/ui/alerts', { name: 'rdp', query: 'port:1', url: 'http://127.0.0.1:9/', _csrf: csrf })).statusCode).toBe(409);
      expect((await post('/ui/alerts/delete', { name: 'rdp', _csrf: csrf })).statusCode).toBe(303);
      expect((await post('/ui/alerts/delete', { name: 'rdp', _csrf: csrf })).statusCode).toBe(404);
      expect((await auditLog()).items.slice(0, 2).map((e) => e.action)).toEqual(['alert.remove', 'alert.add']);
    });

    it('shows the audit log newest first, 50 to a page', async () => {
      const total = (await auditLog()).total;
      for (let i = 0; i < 55 - total; i++) await post('/ui/admin/scope/add?list=scope', { range: `198.18.50.${i}`, _csrf: csrf });
      const { total: now, items } = await auditLog();
      expect(now).toBeGreaterThanOrEqual(55);
      const first = await f.app.inject({ method: 'GET', url: '/ui/audit', headers: cookie });
      expect(first.body).toContain(`page 1 of 2`);
      expect(first.body.indexOf(items[0]!.summary)).toBeLessThan(first.body.indexOf(items[1]!.summary));
      const second = await f.app.inject({ method: 'GET', url: '/ui/audit?page=2', headers: cookie });
      expect(second.body).toContain(items[50]!.summary.replace(/"/g, '&quot;'));
      expect(second.body).not.toContain(`>${items[0]!.summary}<`);
    });
  });
});
