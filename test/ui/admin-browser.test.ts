import { createServer, type Server } from 'node:http';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertDispatcher } from '../../src/coordinator/alerts.js';
import type { AuditEntry } from '../../src/coordinator/audit.js';
import { bearer, getWork, resultFor, submit } from '../coordinator/helpers.js';
import { type HeadlessChromium, haveChromium, launchChromium, screenshotter, signIn, watchPage } from '../helpers/chromium.js';
import { freePort } from '../helpers/net.js';
import { type UiFixture, openUiFixture } from './fixture.js';

/**
 * Every admin form driven in a real headless Chromium against a coordinator listening on
 * loopback (real SQLite file), with a CSRF attack from another origin of the same site.
 * `PB_UPDATE_DOCS_IMG=1` copies the screenshots into docs/img.
 */
describe.skipIf(!haveChromium('the admin UI browser test'))('the admin UI in a real headless Chromium', () => {
  let f: UiFixture;
  let browser: HeadlessChromium;
  let page: Page;
  let base: string;
  let attacker: Server | undefined;
  let seen: ReturnType<typeof watchPage>;
  const shots = screenshotter();
  const shoot = (name: string) => shots.shoot(page, name);

  beforeAll(async () => {
    f = await openUiFixture();
    base = await f.app.listen({ port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
    page = await browser.context.newPage();
    seen = watchPage(page);
    await signIn(page, base, f.admin);
    expect(new URL(page.url()).pathname).toBe('/ui');
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => (attacker ? attacker.close(resolve) : resolve(undefined)));
    await f?.close();
    shots.cleanup();
  });

  const text = async (selector: string) => (await page.textContent(selector)) ?? '';
  const scopeOf = async (list: 'scope' | 'blocklist') =>
    (await f.app.coordinator.store.listScope(list)).entries.map((e) => [e.range, ...e.tags].join(','));
  const audit = async () =>
    (await f.app.inject({ method: 'GET', url: '/api/v1/admin/audit?limit=1000', headers: bearer(f.admin) })).json<{
      total: number;
      items: AuditEntry[];
    }>();

  it('refuses a same-site form from another origin (no CSRF token, or a forged one) and changes nothing', async () => {
    // Another port of 127.0.0.1 is the same *site*: the SameSite=Strict cookie is sent along, so
    // only the CSRF token stops this form.
    const port = await freePort();
    attacker = createServer((req, res) => {
      const forged = req.url === '/forged' ? '<input type="hidden" name="_csrf" value="AAAAforgedAAAA">' : '';
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<!doctype html><form method="post" action="${base}/ui/admin/scope/add?list=scope">${forged}<input name="range" value="198.18.66.0/24"><button id="go">win a prize</button></form>`,
      );
    }).listen(port, '127.0.0.1');
    const before = [await scopeOf('scope'), (await audit()).total];
    for (const path of ['/', '/forged']) {
      await page.goto(`http://127.0.0.1:${port}${path}`);
      const [response] = await Promise.all([page.waitForNavigation(), page.click('#go')]);
      expect(response?.status()).toBe(403);
      expect(await text('h1')).toBe('Form refused');
      expect(await text('.error')).toContain('Nothing was changed');
    }
    await shoot('csrf-refused');
    expect([await scopeOf('scope'), (await audit()).total]).toEqual(before);
  }, 60_000);

  it('manages the scope and blocklist: add, bad input, import from text and a file, export, remove', async () => {
    await page.goto(`${base}/ui/admin/scope`);
    await page.fill('form[aria-label="add to the scope"] input[name=range]', '198.18.64.0/24');
    await page.fill('form[aria-label="add to the scope"] input[name=tags]', 'lab, web');
    await page.click('form[aria-label="add to the scope"] button');
    expect(await text('.notice')).toBe('Added.');
    expect(await scopeOf('scope')).toContain('198.18.64.0/24,lab,web');

    // Bad input: the page says what is wrong, keeps the typed value, and nothing is stored.
    await page.fill('form[aria-label="add to the scope"] input[name=range]', '198.18.65.0/33');
    await page.click('form[aria-label="add to the scope"] button');
    expect(await text('.error')).toMatch(/Nothing was changed.*198\.18\.65\.0\/33/s);
    expect(await page.inputValue('form[aria-label="add to the scope"] input[name=range]')).toBe('198.18.65.0/33');
    expect((await scopeOf('scope')).some((e) => e.startsWith('198.18.65'))).toBe(false);

    await page.fill(
      'form[aria-label="import into the scope"] textarea[name=text]',
      '# lab racks\n198.18.70.0/25,rack1\n198.18.70.128/25,rack2\n',
    );
    await page.click('form[aria-label="import into the scope"] button');
    expect(await text('.notice')).toBe('Imported.');
    expect(await scopeOf('scope')).toEqual(expect.arrayContaining(['198.18.70.0/25,rack1', '198.18.70.128/25,rack2']));

    await page.goto(`${base}/ui/admin/scope?list=blocklist`);
    await page.setInputFiles('form[aria-label="import into the blocklist"] input[type=file]', {
      name: 'blocklist.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('198.18.70.5,printer\n198.18.70.200-198.18.70.210\n'),
    });
    await page.click('form[aria-label="import into the blocklist"] button');
    expect(await text('.notice')).toBe('Imported.');
    expect(await scopeOf('blocklist')).toEqual(['198.18.70.200-198.18.70.210', '198.18.70.5,printer']);
    await page.click('button[aria-label="remove 198.18.70.5"]');
    expect(await text('.notice')).toBe('Removed.');
    expect(await scopeOf('blocklist')).toEqual(['198.18.70.200-198.18.70.210']);
    await page.fill('form[aria-label="remove from the blocklist"] textarea[name=ranges]', '198.18.70.200-198.18.70.210\n');
    await page.click('form[aria-label="remove from the blocklist"] button');
    expect(await text('.notice')).toBe('Removed.');
    expect(await scopeOf('blocklist')).toEqual([]);

    const exported = await browser.context.request.get(`${base}/ui/admin/scope/export?list=scope`);
    expect(exported.headers()['content-disposition']).toContain('portbandit-scope.txt');
    expect(await exported.text()).toContain('198.18.70.0/25,rack1\n');

    // A DNS name: resolved at once by the fixture's hosts file; the page lists its addresses.
    await page.goto(`${base}/ui/admin/scope?list=scope`);
    await page.fill('form[aria-label="add to the scope"] input[name=range]', 'web.lab.example');
    await page.fill('form[aria-label="add to the scope"] input[name=tags]', 'web');
    await page.click('form[aria-label="add to the scope"] button');
    expect(await text('.notice')).toBe('Added.');
    expect(await page.$$eval('[aria-label="addresses of web.lab.example"] a', (links) => links.map((a) => a.textContent))).toEqual([
      '198.18.10.1',
      '198.18.10.9',
    ]);
    expect(f.app.coordinator.lookup('198.18.10.9')?.tags).toEqual(['web']);
    await shoot('admin-scope');
  }, 60_000);

  it('edits a policy, refuses a bad one, uploads a natlas-services file and removes a policy', async () => {
    await page.goto(`${base}/ui/admin/policies?tag=dmz`);
    const form = 'form[aria-label="policy"]';
    await page.fill(`${form} input[name=budget]`, '24');
    await page.fill(`${form} input[name=mustHave]`, '22, 80, 443');
    await page.fill(`${form} input[name=exclude]`, '9100');
    await page.check(`${form} input[name="script:ssh-hostkey"]`);
    await page.click(`${form} button`);
    expect(await text('.notice')).toContain('Policy saved');
    expect(f.app.coordinator.policy('dmz')).toMatchObject({ strategy: 'thompson', budget: 24, mustHave: [22, 80, 443], exclude: [9100] });
    expect(f.app.coordinator.policy('dmz')!.scan.scripts).toContain('ssh-hostkey');

    const saved = JSON.stringify(f.app.coordinator.policy('dmz'));
    await page.fill(`${form} input[name=mustHave]`, '22, 70000');
    await page.click(`${form} button`);
    expect(await text('.error')).toContain('mustHave');
    expect(JSON.stringify(f.app.coordinator.policy('dmz'))).toBe(saved);

    await page.goto(`${base}/ui/admin/policies?tag=web`);
    expect(await page.isChecked(`${form} input[name="script:ssl-cert"]`)).toBe(true);
    await page.fill(`${form} input[name=tag]`, 'web');
    await page.selectOption(`${form} select[name=strategy]`, 'ucb');
    await page.fill(`${form} input[name=budget]`, '50');
    await page.fill(`${form} input[name=groups]`, 'internal, external');
    await page.selectOption(`${form} select[name=retention]`, 'rule');
    await page.fill(`${form} input[name=keepLast]`, '10');
    await page.fill(`${form} input[name=keepDays]`, '365');
    await page.fill(`${form} input[name=dailyAfterDays]`, '30');
    await page.fill(`${form} input[name=weeklyAfterDays]`, '7');
    await page.click(`${form} button`);
    // Weekly thinning before daily: refused, the typed values kept, nothing saved.
    expect(await text('.error')).toContain('weekly thinning (after 7 d) cannot start before daily thinning (after 30 d)');
    expect(await page.inputValue(`${form} input[name=groups]`)).toBe('internal, external');
    expect(f.app.coordinator.policy('web')).toBeUndefined();
    await page.fill(`${form} input[name=weeklyAfterDays]`, '90');
    await page.click(`${form} button`);
    expect(await text('.notice')).toContain('Policy saved');
    expect(f.app.coordinator.policy('web')).toMatchObject({
      strategy: 'ucb',
      groups: ['external', 'internal'],
      retention: { keepLast: 10, keepDays: 365, dailyAfterDays: 30, weeklyAfterDays: 90 },
    });
    expect(await page.$eval('tr:has(td:text-is("web"))', (tr) => tr.textContent)).toMatch(
      /externalinternal\s*last 10, 365 d, daily after 30 d, weekly after 90 d/,
    );
    await page.setInputFiles('form[aria-label="services file"] input[type=file]', {
      name: 'natlas-services',
      mimeType: 'text/plain',
      buffer: Buffer.from('ssh 22/tcp\nhttp 80/tcp\nrdp 3389/tcp\nsnmp 161/udp\n'),
    });
    await page.fill('form[aria-label="services file"] input[name=tag]', 'web');
    await page.click('form[aria-label="services file"] button');
    expect(await text('.notice')).toBe('Services file applied.');
    expect(f.app.coordinator.policy('web')?.mustHave).toEqual([22, 80, 3389]);
    await shoot('policies');

    await page.click('button[aria-label="remove the policy web"]');
    expect(await text('.notice')).toContain('Policy removed');
    expect(f.app.coordinator.policy('web')).toBeUndefined();
  }, 60_000);

  it('creates an agent and an admin token, showing each token once, and revokes them', async () => {
    await page.goto(`${base}/ui/admin/agents`);
    await page.fill('form[aria-label="new agent"] input[name=name]', 'scanner-lab-1');
    await page.fill('form[aria-label="new agent"] input[name=groups]', 'internal, lab');
    await page.click('form[aria-label="new agent"] button');
    const agentToken = await page.inputValue('input[aria-label="new token"]');
    expect(agentToken).toMatch(/^pba_/);
    const made = await f.app.coordinator.authenticateAgent(agentToken);
    expect(made?.name).toBe('scanner-lab-1');
    expect(f.app.coordinator.groupsOf(made!.id)).toEqual(['internal', 'lab']);
    expect(await text('.notice.created')).toContain('In group(s) internallab');
    expect(await page.inputValue('input[aria-label="groups of agent scanner-lab-1"]')).toBe('internal, lab');
    await shoot('agents');
    await page.goto(`${base}/ui/admin/agents`);
    expect(await page.content()).not.toContain(agentToken);
    await page.click('button[aria-label="remove agent scanner-lab-1"]');
    expect(await text('.notice')).toContain('Agent removed');
    expect(await f.app.coordinator.authenticateAgent(agentToken)).toBeUndefined();

    await page.fill('form[aria-label="new admin token"] input[name=name]', 'carol');
    await page.click('form[aria-label="new admin token"] button');
    const adminToken = await page.inputValue('input[aria-label="new token"]');
    expect(await f.app.coordinator.authenticateAdmin(adminToken)).toBe(true);
    await page.goto(`${base}/ui/admin/agents`);
    await page.click('button[aria-label="revoke admin token carol"]');
    expect(await text('.notice')).toBe('Admin token revoked.');
    expect(await f.app.coordinator.authenticateAdmin(adminToken)).toBe(false);
  }, 60_000);

  it("edits an agent's groups, shows a visit's names and group, and runs a retention pass from its page", async () => {
    const agent = (await f.app.coordinator.listAgents()).find((a) => a.name === 'agent-0')!;
    await page.goto(`${base}/ui/admin/agents`);
    await page.fill('input[aria-label="groups of agent agent-0"]', 'internal, no/slash');
    await page.click('button[aria-label="save the groups of agent agent-0"]');
    expect(await text('.error')).toMatch(/Nothing was changed.*groups\[1\]: expected a group name/s);
    expect(f.app.coordinator.groupsOf(agent.id)).toEqual([]);
    await page.fill('input[aria-label="groups of agent agent-0"]', 'internal');
    await page.click('button[aria-label="save the groups of agent agent-0"]');
    expect(await text('.notice')).toContain('Agent groups saved');
    expect(f.app.coordinator.groupsOf(agent.id)).toEqual(['internal']);

    // Three more visits of 198.18.10.1 (web.lab.example since the scope test), from group internal:
    // the first changes its services, the second repeats it (no event refers to it), the third is the latest.
    for (let i = 0; i < 3; i++) {
      await f.app.coordinator.requestRescan(['198.18.10.1']);
      const w = await getWork(f.app, f.agent);
      f.clock.advance(60_000);
      expect((await submit(f.app, f.agent, resultFor(w!, [22, 80], f.clock.now()))).statusCode).toBe(200);
    }
    await page.goto(`${base}/ui/host/198.18.10.1`);
    expect(await text('main')).toContain('DNS names (scope): web.lab.example');
    expect(await text('main')).toMatch(/by agent agent_\S+ from agent group internal, cycle/);
    await shoot('host-names');
    await page.click('main p a:text-is("web.lab.example")');
    expect(new URL(page.url()).searchParams.get('q')).toBe('name:web.lab.example');
    expect(await text('tbody')).toMatch(/198\.18\.10\.1\s*web\.lab\.example/);
    expect(await text('tbody')).toContain('internal');

    // Retention: the default policy keeps each host's newest visit (and what the rules always keep).
    await page.goto(`${base}/ui/admin/policies?tag=_default`);
    await page.selectOption('form[aria-label="policy"] select[name=retention]', 'rule');
    await page.fill('form[aria-label="policy"] input[name=keepLast]', '1');
    await page.click('form[aria-label="policy"] button');
    expect(await text('.notice')).toContain('Policy saved');
    await page.click('header a:text-is("Retention")');
    const report = (await f.app.inject({ method: 'GET', url: '/api/v1/admin/retention', headers: bearer(f.admin) })).json<{
      dropped: number;
      sample: Array<{ scanId: string }>;
    }>();
    expect(report.dropped).toBeGreaterThan(0);
    expect(await text('main')).toMatch(new RegExp(`drop\\s+${report.dropped}\\s+\\(`));
    for (const d of report.sample.slice(0, 20)) expect(await text('main')).toContain(d.scanId);
    await shoot('retention');
    await page.click('form[aria-label="run retention"] button');
    expect(await text('.notice')).toContain('Retention pass done');
    for (const d of report.sample) expect(await f.app.coordinator.store.getScan(d.scanId)).toBeUndefined();
    expect(await text('main')).toContain(`Last pass run by an admin`);
    expect(await text('main')).toContain(`retention pass: ${report.dropped} visit(s) dropped`);
    expect(await text('main')).toContain('None: every visit is kept.');

    // Back as before for the tests after this one: keep every visit, the agent in no group.
    await page.goto(`${base}/ui/admin/policies?tag=_default`);
    await page.selectOption('form[aria-label="policy"] select[name=retention]', 'all');
    await page.fill('form[aria-label="policy"] input[name=keepLast]', '');
    await page.click('form[aria-label="policy"] button');
    expect(f.app.coordinator.policy('')!.retention).toEqual({});
    await page.goto(`${base}/ui/admin/agents`);
    await page.fill('input[aria-label="groups of agent agent-0"]', '');
    await page.click('button[aria-label="save the groups of agent agent-0"]');
    expect(f.app.coordinator.groupsOf(agent.id)).toEqual([]);
  }, 60_000);

  it('queues a rescan from the host page, shows the events it leads to, and dead-letters an undeliverable alert', async () => {
    // A rule whose webhook is a closed loopback port: every attempt fails.
    const closed = await freePort();
    await page.goto(`${base}/ui/alerts`);
    await page.fill('form[aria-label="new alert rule"] input[name=name]', 'new-on-dmz');
    await page.fill('form[aria-label="new alert rule"] input[name=query]', 'kind:service-new tag:dmz');
    await page.fill('form[aria-label="new alert rule"] input[name=url]', `http://127.0.0.1:${closed}/hook`);
    await page.click('form[aria-label="new alert rule"] button');
    expect(await text('.notice')).toContain('Alert rule added');
    await page.fill('form[aria-label="new alert rule"] input[name=name]', 'broken');
    await page.fill('form[aria-label="new alert rule"] input[name=query]', 'kind:service-new port:');
    await page.fill('form[aria-label="new alert rule"] input[name=url]', 'http://127.0.0.1:9/');
    await page.click('form[aria-label="new alert rule"] button');
    expect(await text('.error')).toContain('Nothing was changed');

    await page.goto(`${base}/ui/host/198.18.10.1`);
    await page.click('text=Rescan now');
    expect(await text('.notice')).toContain('Rescan queued');
    const work = await getWork(f.app, f.agent);
    expect(work).toMatchObject({ ip: '198.18.10.1', reason: 'manual' });
    const fresh = work!.ports.find((p) => p !== 22 && p !== 80)!;
    f.clock.advance(60_000);
    const res = await submit(f.app, f.agent, { ...resultFor(work!, [22, 80, fresh], f.clock.now()) });
    expect(res.statusCode).toBe(200);
    await new AlertDispatcher(f.app.coordinator.store, { maxAttempts: 2, baseDelayMs: 5, timeoutMs: 2000, now: f.clock.now }).runOnce();

    await page.goto(`${base}/ui/events`);
    await page.fill('input[aria-label="Event query"]', `kind:service-new port:${fresh}`);
    await page.click('form[role=search][action="/ui/events"] button');
    expect(await text('main')).toContain('1 event match');
    expect(await text('tbody')).toContain('198.18.10.1');
    await page.fill('input[aria-label="Event query"]', 'kind:service-new OR kind:service-changed');
    await page.click('form[role=search][action="/ui/events"] button');
    await shoot('events');
    await page.fill('input[aria-label="Event query"]', 'kind:');
    await page.click('form[role=search][action="/ui/events"] button');
    expect(await text('.error')).toContain('The query is malformed');

    await page.goto(`${base}/ui/alerts`);
    expect(await text('main')).toContain('new-on-dmz');
    expect(await text('main')).toMatch(new RegExp(`service-new\\s+198\\.18\\.10\\.1\\s+port ${fresh}`));
    await shoot('alerts');
    await page.click('button[aria-label="remove rule new-on-dmz"]');
    expect(await text('.notice')).toBe('Alert rule removed.');
    expect(await text('main')).toContain('No alert rules.');
    // Its dead letter stays.
    expect(await text('main')).toContain('Dead letters (1)');
  }, 60_000);

  it('shows every change above on the audit page, newest first, with who and how', async () => {
    await page.goto(`${base}/ui/audit`);
    const rows = await page.$$eval('tbody tr', (trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent?.trim() ?? '')),
    );
    const actions = rows.map((r) => r[3]);
    expect(actions.slice(0, 3)).toEqual(['alert.remove', 'host.rescan', 'alert.add']);
    expect(actions).toEqual(
      expect.arrayContaining([
        'scope.add',
        'scope.import',
        'scope.remove',
        'policy.set',
        'policy.services',
        'policy.delete',
        'agent.create',
        'agent.groups',
        'agent.delete',
        'token.create',
        'token.revoke',
        'retention.run',
      ]),
    );
    expect(rows.every((r) => r[1]!.startsWith('test-admin'))).toBe(true);
    // The fixture's setup went through the API; everything since, through the UI.
    const firstApi = rows.findIndex((r) => r[2] === 'API');
    expect(rows.slice(0, firstApi).every((r) => r[2] === 'UI')).toBe(true);
    expect(rows.slice(firstApi).map((r) => `${r[2]} ${r[3]}`)).toEqual([
      'API cycle.restart',
      'API policy.set',
      'API policy.set',
      'API scope.import',
    ]);
    expect(await page.content()).not.toMatch(/pb[ak]_[A-Za-z0-9_-]{20}/);
    await shoot('audit');
    // No page of the walk ran a script or broke the CSP (hostile banners are on the events page).
    expect(seen.dialogs).toEqual([]);
    expect(seen.cspViolations).toEqual([]);
  }, 60_000);
});
