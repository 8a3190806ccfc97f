import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/coordinator/audit.js';
import { csrfTokenFor, checkCsrfToken } from '../../src/coordinator/ui/csrf.js';
import { writeFileSync } from 'node:fs';
import type { RetentionReport } from '../../src/coordinator/retention-runner.js';
import { bearer, getWork, resultFor, submit } from '../coordinator/helpers.js';
import { type UiFixture, openUiFixture } from './fixture.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** A multipart body as a browser sends a form with a file input. */
function multipartBody(
  fields: Record<string, string>,
  file?: { name: string; filename: string; content: string },
): { payload: string; headers: Record<string, string> } {
  const boundary = '----pbtest7MA4YWxkTrZu0gW';
  let out = '';
  for (const [k, v] of Object.entries(fields)) out += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  if (file)
    out += `--${boundary}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\nContent-Type: text/plain\r\n\r\n${file.content}\r\n`;
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
  const scope = async (list = 'scope') =>
    (await f.app.coordinator.store.listScope(list as 'scope')).entries.map(
      (e) => `${e.range}${e.tags.length ? `,${e.tags.join(',')}` : ''}`,
    );
  const auditLog = async () =>
    (await f.app.inject({ method: 'GET', url: '/api/v1/admin/audit?limit=1000', headers: bearer(f.admin) })).json<{
      total: number;
      items: AuditEntry[];
    }>();

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

    it("refuses a POST without the token, with a wrong one, with another session's, or marked cross-site, and changes nothing", async () => {
      const agentId = (await f.app.coordinator.listAgents())[0]!.id;
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
        post('/ui/admin/agents/groups', { id: agentId, groups: 'evil' }),
        post('/ui/admin/agents/groups', { id: agentId, groups: 'evil', _csrf: otherCsrf }),
        post('/ui/admin/policies', {
          tag: 'dmz',
          strategy: 'thompson',
          budget: '8',
          groups: 'evil',
          retention: 'rule',
          keepLast: '1',
          _csrf: 'forged',
        }),
        post('/ui/admin/retention/run', {}),
        post('/ui/admin/retention/run', { _csrf: csrf }, { 'sec-fetch-site': 'cross-site' }),
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
      expect(f.app.coordinator.groupsOf(agentId)).toEqual([]);
      expect(f.app.coordinator.policy('dmz')!.groups).toBeUndefined();
      expect((await auditLog()).total).toBe(auditBefore);
    });

    it('puts the token in every form of every admin page', async () => {
      for (const url of [
        '/ui/admin/scope',
        '/ui/admin/scope?list=blocklist',
        '/ui/admin/policies',
        '/ui/admin/retention',
        '/ui/admin/agents',
        '/ui/alerts',
        '/ui/host/198.18.10.1',
      ]) {
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

      const file = multipartBody(
        { _csrf: csrf },
        { name: 'file', filename: 'block.txt', content: '# lab printers\n198.18.30.9,printer\n198.18.30.10-198.18.30.12\n' },
      );
      const imported = await f.app.inject({
        method: 'POST',
        url: '/ui/admin/scope/import?list=blocklist',
        headers: { ...cookie, ...file.headers },
        payload: file.payload,
      });
      expect(imported.statusCode).toBe(303);
      expect(await scope('blocklist')).toEqual(['198.18.30.10-198.18.30.12', '198.18.30.9,printer']);

      const replaced = multipartBody({ _csrf: csrf, text: '198.18.30.9\n', replace: '1' });
      expect(
        (
          await f.app.inject({
            method: 'POST',
            url: '/ui/admin/scope/import?list=blocklist',
            headers: { ...cookie, ...replaced.headers },
            payload: replaced.payload,
          })
        ).statusCode,
      ).toBe(303);
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
      expect((await post('/ui/admin/scope/add?list=scope', { range: '198.18.0.0/24', tags: 'bad tag!', _csrf: csrf })).statusCode).toBe(
        400,
      );
      expect((await post('/ui/admin/scope/add?list=scope', { range: '', _csrf: csrf })).body).toContain('enter an address');
      // One bad line refuses the whole import and names its line.
      const file = multipartBody({ _csrf: csrf, text: '198.18.40.0/24,a\n198.18.40.300\n' });
      const imported = await f.app.inject({
        method: 'POST',
        url: '/ui/admin/scope/import?list=scope',
        headers: { ...cookie, ...file.headers },
        payload: file.payload,
      });
      expect(imported.statusCode).toBe(400);
      expect(imported.body).toContain('text:2');
      const none = await post('/ui/admin/scope/remove?list=scope', { ranges: '198.18.99.0/24', _csrf: csrf });
      expect(none.statusCode).toBe(404);
      expect(none.body).toContain('is an entry of the scope');
      expect((await post('/ui/admin/scope/add?list=nope', { range: '198.18.0.1', _csrf: csrf })).statusCode).toBe(400);
      // An upload over the limit is refused with a page, not a 500, before anything is read into the store.
      const huge = multipartBody({ _csrf: csrf }, { name: 'file', filename: 'big.txt', content: '198.18.41.0/24\n'.repeat(1_200_000) });
      const tooBig = await f.app.inject({
        method: 'POST',
        url: '/ui/admin/scope/import?list=scope',
        headers: { ...cookie, ...huge.headers },
        payload: huge.payload,
      });
      expect(tooBig.statusCode).toBe(413);
      expect(tooBig.headers['content-type']).toContain('text/html');
      expect([await scope(), await scope('blocklist'), (await auditLog()).total]).toEqual(before);
    });
  });

  describe('policies', () => {
    it('saves a policy from the form, keeping what the form does not show, and applies a services file', async () => {
      const saved = await post('/ui/admin/policies', {
        tag: 'web',
        strategy: 'thompson',
        budget: '40',
        mustHave: '22, 80,443',
        exclude: '9100-9102',
        'script:ssl-cert': '1',
        _csrf: csrf,
      });
      expect(saved.statusCode).toBe(303);
      const p = f.app.coordinator.policy('web')!;
      expect(p).toMatchObject({
        strategy: 'thompson',
        budget: 40,
        mustHave: [22, 80, 443],
        exclude: [9100, 9101, 9102],
        scan: { scripts: ['ssl-cert'] },
      });
      expect(p.rate).toBeUndefined();

      const services = multipartBody(
        { _csrf: csrf, tag: 'web' },
        { name: 'file', filename: 'natlas-services', content: 'ssh 22/tcp\nhttp 80/tcp\nhttps-alt 8443/tcp\ndns 53/udp\n' },
      );
      const up = await f.app.inject({
        method: 'POST',
        url: '/ui/admin/policies/services',
        headers: { ...cookie, ...services.headers },
        payload: services.payload,
      });
      expect(up.statusCode).toBe(303);
      expect(f.app.coordinator.policy('web')!.mustHave).toEqual([22, 80, 8443]);
      expect(f.app.coordinator.policy('web')!.exclude).toEqual([9100, 9101, 9102]);

      const page = await f.app.inject({ method: 'GET', url: '/ui/admin/policies?tag=web&done=services-uploaded', headers: cookie });
      expect(page.body).toContain('Services file applied.');
      expect(page.body).toContain('value="22,80,8443"');

      const rate = await post('/ui/admin/policies', {
        tag: '_default',
        strategy: 'top-k',
        rate: '500',
        periodSeconds: '43200',
        _csrf: csrf,
      });
      expect(rate.statusCode).toBe(303);
      expect(f.app.coordinator.policy('')).toMatchObject({ strategy: 'top-k', rate: 500, periodSeconds: 43200 });

      const del = await post('/ui/admin/policies/delete', { tag: 'web', _csrf: csrf });
      expect(del.statusCode).toBe(303);
      expect(f.app.coordinator.policy('web')).toBeUndefined();
      expect((await auditLog()).items.slice(0, 4).map((e) => e.action)).toEqual([
        'policy.delete',
        'policy.set',
        'policy.services',
        'policy.set',
      ]);
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
      const up = await f.app.inject({
        method: 'POST',
        url: '/ui/admin/policies/services',
        headers: { ...cookie, ...badFile.headers },
        payload: badFile.payload,
      });
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

  describe('agent groups', () => {
    it("creates an agent in groups, shows each agent's groups, edits and clears them, each audited", async () => {
      const made = await post('/ui/admin/agents', { name: 'scanner-int', groups: 'internal, dmz-edge  lab', _csrf: csrf });
      expect(made.statusCode).toBe(200);
      expect(made.body).toMatch(
        /In group\(s\) <span class="tag">dmz-edge<\/span><span class="tag">internal<\/span><span class="tag">lab<\/span>/,
      );
      const agent = (await f.app.coordinator.listAgents()).find((a) => a.name === 'scanner-int')!;
      expect(agent.groups).toEqual(['dmz-edge', 'internal', 'lab']);
      expect((await auditLog()).items[0]).toMatchObject({ action: 'agent.create', target: agent.id, actor: { via: 'ui' } });
      expect((await auditLog()).items[0]!.summary).toContain('in group(s) dmz-edge,internal,lab');

      const page = await f.app.inject({ method: 'GET', url: '/ui/admin/agents', headers: cookie });
      expect(page.body).toContain(`aria-label="groups of agent scanner-int"`);
      expect(page.body).toMatch(/name="groups" value="dmz-edge, internal, lab"[^>]*aria-label="groups of agent scanner-int"/);

      const edited = await post('/ui/admin/agents/groups', { id: agent.id, groups: 'external', _csrf: csrf });
      expect(edited.statusCode).toBe(303);
      expect(edited.headers.location).toBe('/ui/admin/agents?done=agent-groups-saved');
      expect(f.app.coordinator.groupsOf(agent.id)).toEqual(['external']);
      expect((await f.app.inject({ method: 'GET', url: edited.headers.location as string, headers: cookie })).body).toContain(
        'Agent groups saved',
      );
      const cleared = await post('/ui/admin/agents/groups', { id: agent.id, groups: '  ', _csrf: csrf });
      expect(cleared.statusCode).toBe(303);
      expect(f.app.coordinator.groupsOf(agent.id)).toEqual([]);
      expect((await auditLog()).items.slice(0, 2).map((e) => [e.action, e.target, e.summary])).toEqual([
        ['agent.groups', agent.id, 'agent groups removed'],
        ['agent.groups', agent.id, 'agent groups set to external'],
      ]);
    });

    it('refuses a bad group name or an unknown agent on the page and changes nothing', async () => {
      const agent = (await f.app.coordinator.listAgents())[0]!;
      await f.app.coordinator.setAgentGroups(agent.id, ['internal']);
      const agentsBefore = (await f.app.coordinator.listAgents()).length;
      const total = (await auditLog()).total;
      const bad = await post('/ui/admin/agents/groups', { id: agent.id, groups: 'internal, no/slash', _csrf: csrf });
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toContain('Nothing was changed');
      expect(bad.body.replace(/&quot;/g, '"')).toMatch(/groups\[1\]: expected a group name.*"no\/slash"/);
      const unknown = await post('/ui/admin/agents/groups', { id: 'agent_nope', groups: 'x', _csrf: csrf });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.body).toContain('no agent with id agent_nope');
      // Creating an agent with a bad group makes no agent (and no token); the typed values come back.
      const badCreate = await post('/ui/admin/agents', { name: 'scanner-bad', groups: 'ok, not ok!', _csrf: csrf });
      expect(badCreate.statusCode).toBe(400);
      expect(badCreate.body).not.toMatch(/pba_/);
      expect(badCreate.body).toContain('value="scanner-bad"');
      expect(badCreate.body).toContain('value="ok, not ok!"');
      expect((await f.app.coordinator.listAgents()).length).toBe(agentsBefore);
      expect(f.app.coordinator.groupsOf(agent.id)).toEqual(['internal']);
      expect((await auditLog()).total).toBe(total);
      await f.app.coordinator.setAgentGroups(agent.id, []);
    });
  });

  describe('policy groups and retention', () => {
    const base = { strategy: 'thompson', budget: '8', mustHave: '22,80,443,8080' };

    it('sets and clears the groups of a tag and its retention rule from the form, shown in the table and audited', async () => {
      const saved = await post('/ui/admin/policies', {
        tag: 'dmz',
        ...base,
        groups: 'internal external',
        retention: 'rule',
        keepLast: '5',
        keepDays: '90',
        dailyAfterDays: '7',
        weeklyAfterDays: '30',
        _csrf: csrf,
      });
      expect(saved.statusCode).toBe(303);
      expect(f.app.coordinator.policy('dmz')).toMatchObject({
        groups: ['external', 'internal'],
        retention: { keepLast: 5, keepDays: 90, dailyAfterDays: 7, weeklyAfterDays: 30 },
      });
      const summary = (await auditLog()).items[0]!.summary;
      expect(summary).toContain('groups external internal');
      expect(summary).toContain('retention last 5, 90 d, daily after 7 d, weekly after 30 d');

      const table = await f.app.inject({ method: 'GET', url: '/ui/admin/policies', headers: cookie });
      const row = /<tr><td>dmz<\/td>[\s\S]*?<\/tr>/.exec(table.body)![0];
      expect(row).toContain('<span class="tag">external</span><span class="tag">internal</span>');
      expect(row).toContain('last 5, 90 d, daily after 7 d, weekly after 30 d');
      const edit = await f.app.inject({ method: 'GET', url: '/ui/admin/policies?tag=dmz', headers: cookie });
      expect(edit.body).toContain('name="groups" size="40" value="external, internal"');
      expect(edit.body).toContain('<option value="rule" selected>');
      expect(edit.body).toContain('name="weeklyAfterDays" inputmode="numeric" size="7" value="30"');

      // A form without the new fields (an older page) keeps them.
      expect((await post('/ui/admin/policies', { tag: 'dmz', ...base, budget: '9', _csrf: csrf })).statusCode).toBe(303);
      expect(f.app.coordinator.policy('dmz')).toMatchObject({ budget: 9, groups: ['external', 'internal'], retention: { keepLast: 5 } });

      // Blank groups: any agent; "keep every visit": {} (overrides the default's rule).
      expect((await post('/ui/admin/policies', { tag: 'dmz', ...base, groups: '', retention: 'all', _csrf: csrf })).statusCode).toBe(303);
      expect(f.app.coordinator.policy('dmz')!.groups).toBeUndefined();
      expect(f.app.coordinator.policy('dmz')!.retention).toEqual({});
      // The default policy's rule: no rule of its own.
      expect((await post('/ui/admin/policies', { tag: 'dmz', ...base, groups: '', retention: 'inherit', _csrf: csrf })).statusCode).toBe(
        303,
      );
      expect(f.app.coordinator.policy('dmz')!.retention).toBeUndefined();
      const after = await f.app.inject({ method: 'GET', url: '/ui/admin/policies', headers: cookie });
      const row2 = /<tr><td>dmz<\/td>[\s\S]*?<\/tr>/.exec(after.body)![0];
      expect(row2).toContain('any agent');
      expect(row2).toContain("default's");
      // The default policy offers no "the default policy's rule".
      const def = await f.app.inject({ method: 'GET', url: '/ui/admin/policies?tag=_default', headers: cookie });
      expect(def.body).not.toContain('value="inherit"');
      expect(def.body).toContain('<option value="all" selected>');
    });

    it('refuses bad groups and retention fields naming the field, keeps the typed values, and changes nothing', async () => {
      await post('/ui/admin/policies', { tag: 'dmz', ...base, groups: 'internal', retention: 'rule', keepLast: '3', _csrf: csrf });
      const before = JSON.stringify(f.app.coordinator.policy('dmz'));
      const total = (await auditLog()).total;
      const cases: Array<[Record<string, string>, RegExp]> = [
        // Commas or spaces separate names: "bad group!" is two, the second one wrong.
        [{ groups: 'internal, bad group!', retention: 'rule', keepLast: '3' }, /groups\[2\]: expected a group name.*got "group!"/],
        [{ groups: 'internal', retention: 'rule', keepLast: '0' }, /keepLast: expected an integer from 1 up to 1000000/],
        [{ groups: 'internal', retention: 'rule', keepDays: 'ten' }, /keepDays: expected an integer/],
        [{ groups: 'internal', retention: 'rule' }, /keepLast: state at least one number/],
        [{ groups: 'internal', retention: 'inherit', keepLast: '3' }, /retention: choose "keep by these numbers" to apply keepLast/],
        [{ groups: 'internal', retention: 'forever' }, /retention: expected one of inherit, all, rule/],
        [
          { groups: 'internal', retention: 'rule', dailyAfterDays: '30', weeklyAfterDays: '7' },
          /policy\(dmz\)\.retention\.weeklyAfterDays: weekly thinning \(after 7 d\) cannot start before daily thinning/,
        ],
        [
          { groups: 'internal', retention: 'rule', keepDays: '10', dailyAfterDays: '20' },
          /retention\.dailyAfterDays: daily thinning after 20 d never applies/,
        ],
      ];
      for (const [fields, message] of cases) {
        const res = await post('/ui/admin/policies', { tag: 'dmz', ...base, ...fields, _csrf: csrf });
        expect(res.statusCode, JSON.stringify(fields)).toBe(400);
        expect(res.body).toContain('Nothing was changed');
        expect(res.body.replace(/&quot;/g, '"'), JSON.stringify(fields)).toMatch(message);
      }
      const kept = await post('/ui/admin/policies', {
        tag: 'dmz',
        ...base,
        groups: 'internal, bad group!',
        retention: 'rule',
        keepDays: '10',
        dailyAfterDays: '20',
        _csrf: csrf,
      });
      expect(kept.body).toContain('value="internal, bad group!"');
      expect(kept.body).toContain('name="dailyAfterDays" inputmode="numeric" size="7" value="20"');
      expect(kept.body).toContain('<option value="rule" selected>');
      expect(JSON.stringify(f.app.coordinator.policy('dmz'))).toBe(before);
      expect((await auditLog()).total).toBe(total);
      // Leave dmz as the fixture made it for the tests after this one.
      await post('/ui/admin/policies', { tag: 'dmz', ...base, groups: '', retention: 'inherit', _csrf: csrf });
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
      // While an agent scans the host, the button queues nothing and says so.
      const w = (await getWork(f.app, f.agent))!;
      expect(w).toMatchObject({ ip: '198.18.10.1', reason: 'manual' });
      const during = await post('/ui/host/198.18.10.1/rescan', { _csrf: csrf });
      expect(during.headers.location).toBe('/ui/host/198.18.10.1?done=rescan-scanning');
      expect((await f.app.inject({ method: 'GET', url: during.headers.location as string, headers: cookie })).body).toContain(
        'This host is being scanned now',
      );
      expect(await f.app.coordinator.store.listQueuedWork(10)).toEqual([]);
      // The lease ended unanswered, the rescan is queued again, as the tests after this one expect.
      await f.app.coordinator.store.completeLease(w.leaseId);
      expect((await f.app.coordinator.requestRescan(['198.18.10.1'])).queued).toHaveLength(1);
    });

    it('lists events newest first, filtered by the event query, and explains a bad query', async () => {
      const all = await f.app.inject({ method: 'GET', url: '/ui/events', headers: cookie });
      expect(all.statusCode).toBe(200);
      const rows = all.body.match(/<tr><td class="mono">\d{4}-[^<]+<\/td>/g) ?? [];
      expect(rows.length).toBeGreaterThan(3);
      const times = rows.map((r) => /(\d{4}-[^<]+)</.exec(r)![1]!);
      expect([...times].sort().reverse()).toEqual(times);
      const ssh = await f.app.inject({
        method: 'GET',
        url: `/ui/events?q=${encodeURIComponent('kind:service-new port:8080')}`,
        headers: cookie,
      });
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
      const ok = await post('/ui/alerts', {
        name: 'rdp',
        query: 'kind:service-new port:3389',
        url: 'http://127.0.0.1:9/hook',
        _csrf: csrf,
      });
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

describe('the retention page and DNS-name targets in the UI (own coordinator, app.inject)', () => {
  let f: UiFixture;
  let cookie: Record<string, string>;
  let csrf: string;
  beforeAll(async () => {
    f = await openUiFixture({ authFailuresPerMinute: 1000 });
    cookie = { cookie: `pb_ui=${f.admin}` };
    const page = await f.app.inject({ method: 'GET', url: '/ui/admin/agents', headers: cookie });
    csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  });
  afterAll(async () => {
    await f?.close();
  });

  const post = (url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
    f.app.inject({ method: 'POST', url, headers: { ...cookie, ...FORM, ...headers }, payload: new URLSearchParams(fields).toString() });
  const get = (url: string) => f.app.inject({ method: 'GET', url, headers: cookie });
  const auditLog = async () =>
    (await f.app.inject({ method: 'GET', url: '/api/v1/admin/audit?limit=1000', headers: bearer(f.admin) })).json<{
      total: number;
      items: AuditEntry[];
    }>();
  const dryRun = async () =>
    (await f.app.inject({ method: 'GET', url: '/api/v1/admin/retention', headers: bearer(f.admin) })).json<RetentionReport>();

  /** One more visit of every host (a new cycle), port 22 open: the first round changes the services, the next ones repeat it (no event). */
  async function visitAll(): Promise<void> {
    expect((await f.app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(f.admin) })).statusCode).toBe(200);
    for (let i = 0; i < 3; i++) {
      const w = await getWork(f.app, f.agent);
      f.clock.advance(60_000);
      expect((await submit(f.app, f.agent, resultFor(w!, [22], f.clock.now()))).statusCode).toBe(200);
    }
  }

  it('shows the dry run of the rules (nothing deleted), refuses a forged run, and runs a pass from the button, audited', async () => {
    for (let i = 0; i < 3; i++) await visitAll();
    const saved = await post('/ui/admin/policies', {
      tag: '_default',
      strategy: 'fixed',
      budget: '10',
      params: '{"ports": [22, 80, 443, 8080]}',
      retention: 'rule',
      keepLast: '1',
      _csrf: csrf,
    });
    expect(saved.statusCode).toBe(303);
    const expected = await dryRun();
    expect(expected.dropped).toBeGreaterThanOrEqual(3);

    const page = await get('/ui/admin/retention');
    expect(page.statusCode).toBe(200);
    expect(page.body).toMatch(/<tr><td>\(default\)<\/td><td>last 1<\/td>/);
    expect(page.body).toContain(`drop <strong class="closed">${expected.dropped}</strong>`);
    expect(page.body).toContain(`keep <strong>${expected.kept}</strong>`);
    for (const d of expected.sample.slice(0, 20)) expect(page.body).toContain(d.scanId);
    expect(page.body).toContain('No pass has been run');
    expect(page.body).not.toMatch(/<script/i);
    // The page's dry run deleted nothing.
    for (const d of expected.sample) expect(await f.app.coordinator.store.getScan(d.scanId)).toBeDefined();

    const total = (await auditLog()).total;
    for (const res of [await post('/ui/admin/retention/run', {}), await post('/ui/admin/retention/run', { _csrf: 'forged' })]) {
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('Nothing was changed');
    }
    expect((await dryRun()).dropped).toBe(expected.dropped);
    expect((await auditLog()).total).toBe(total);

    const run = await post('/ui/admin/retention/run', { _csrf: csrf });
    expect(run.statusCode).toBe(303);
    expect(run.headers.location).toBe('/ui/admin/retention?done=retention-run');
    for (const d of expected.sample) expect(await f.app.coordinator.store.getScan(d.scanId)).toBeUndefined();
    const entry = (await auditLog()).items[0]!;
    expect(entry).toMatchObject({ action: 'retention.run', target: 'history', actor: { name: 'test-admin', via: 'ui' } });
    expect(entry.summary).toBe(`retention pass: ${expected.dropped} visit(s) dropped, ${expected.kept} kept over 3 host(s)`);
    const after = await get(run.headers.location as string);
    expect(after.body).toContain('Retention pass done');
    expect(after.body).toContain(`Last pass run by an admin`);
    expect(after.body).toContain(entry.summary);
    expect(after.body).toContain('None: every visit is kept.');
    expect(after.body).toContain('drop <strong class="">0</strong>');
  });

  it('adds a DNS name to the scope and shows what it resolves to, blocklisted addresses marked; refuses a name in the blocklist', async () => {
    await post('/ui/admin/scope/add?list=blocklist', { range: '198.18.10.9', _csrf: csrf });
    const bad = await post('/ui/admin/scope/add?list=blocklist', { range: 'db.lab.example', _csrf: csrf });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('the blocklist takes addresses, CIDRs and ranges, not DNS names');
    expect((await f.app.coordinator.store.listScope('blocklist')).entries.map((e) => e.range)).toEqual(['198.18.10.9']);

    const added = await post('/ui/admin/scope/add?list=scope', { range: 'Web.Lab.Example.', tags: 'web', _csrf: csrf });
    expect(added.statusCode).toBe(303);
    expect((await f.app.coordinator.store.listScope('scope')).entries.map((e) => e.range)).toContain('web.lab.example');
    const page = await get('/ui/admin/scope?list=scope');
    const cell = /<td><span class="mono">web\.lab\.example<\/span> <span class="tag">DNS name<\/span>[\s\S]*?<\/td>/.exec(page.body)?.[0];
    expect(cell).toBeDefined();
    expect(cell).toContain(
      'resolves to <span aria-label="addresses of web.lab.example"><a class="mono" href="/ui/host/198.18.10.1">198.18.10.1</a>, ',
    );
    expect(cell).toContain('<a class="mono" href="/ui/host/198.18.10.9">198.18.10.9</a> <span class="tag partial">blocklisted</span>');
    expect(cell).toContain(`hosts file ${f.hostsFile}`);

    // Resolved again at the next cycle: the page shows the new answer.
    writeFileSync(f.hostsFile, '198.18.10.3 web.lab.example\n');
    await f.app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(f.admin) });
    const again = await get('/ui/admin/scope?list=scope');
    expect(again.body).toContain('href="/ui/host/198.18.10.3">198.18.10.3</a>');
    expect(again.body).not.toContain('href="/ui/host/198.18.10.9">');
  });

  it("shows a visit's names and agent group on the host page and in search results", async () => {
    writeFileSync(f.hostsFile, '198.18.10.1 web.lab.example\n198.18.10.1 www.lab.example\n');
    await post('/ui/admin/scope/add?list=scope', { range: 'www.lab.example', _csrf: csrf });
    expect(f.app.coordinator.namesOf('198.18.10.1')).toEqual(['web.lab.example', 'www.lab.example']);
    const agentId = (await f.app.coordinator.listAgents())[0]!.id;
    expect((await post('/ui/admin/agents/groups', { id: agentId, groups: 'internal', _csrf: csrf })).statusCode).toBe(303);
    expect((await post('/ui/host/198.18.10.1/rescan', { _csrf: csrf })).statusCode).toBe(303);
    const w = await getWork(f.app, f.agent);
    expect(w?.ip).toBe('198.18.10.1');
    f.clock.advance(60_000);
    expect((await submit(f.app, f.agent, resultFor(w!, [22, 80], f.clock.now()))).statusCode).toBe(200);
    const latest = await f.app.coordinator.store.getLatestScan('198.18.10.1');
    expect(latest).toMatchObject({ names: ['web.lab.example', 'www.lab.example'], group: 'internal' });

    const host = await get('/ui/host/198.18.10.1');
    expect(host.body).toContain(
      'DNS names (scope): <a class="mono" href="/ui/search?q=name%3Aweb.lab.example">web.lab.example</a>, <a class="mono" href="/ui/search?q=name%3Awww.lab.example">www.lab.example</a>',
    );
    expect(host.body).toMatch(/scanned as <a class="mono" href="\/ui\/search\?q=name%3Aweb\.lab\.example">/);
    expect(host.body).toContain(
      `by agent <span class="mono">${agentId}</span> from agent group <a class="tag" href="/ui/search?q=group%3Ainternal&amp;view=history"`,
    );

    const byName = await get(`/ui/search?q=${encodeURIComponent('name:www.lab.example')}`);
    expect(byName.body).toContain('<strong>1</strong> hosts match');
    expect(byName.body).toContain('198.18.10.1</a><div class="muted">web.lab.example, www.lab.example</div>');
    expect(byName.body).toMatch(/title="agent group \(vantage point\)">internal<\/a>/);
    const byGroup = await get(`/ui/search?q=${encodeURIComponent('group:internal')}&view=history`);
    expect(byGroup.body).toContain('<strong>1</strong> scans match');
    const other = await get(`/ui/search?q=${encodeURIComponent('ip:198.18.10.2')}`);
    expect(other.body).toContain('<strong>1</strong> hosts match');
    expect(other.body).not.toContain('agent group (vantage point)');
  });
});
