import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HeadlessChromium, haveChromium, launchChromium, screenshotter, signIn, watchPage } from '../helpers/chromium.js';
import { addScope, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from '../coordinator/helpers.js';
import { type UiFixture, HOSTILE_PRODUCT, openUiFixture } from './fixture.js';

describe.skipIf(!haveChromium('the headless browser test'))('the UI in a real headless Chromium', () => {
  let fixture: UiFixture;
  let browser: HeadlessChromium;
  let context: BrowserContext;
  let base: string;
  const shots = screenshotter();
  const shoot = shots.shoot;

  beforeAll(async () => {
    fixture = await openUiFixture();
    base = await fixture.app.listen({ port: 0, host: '127.0.0.1' });
    browser = await launchChromium();
    context = browser.context;
  });
  afterAll(async () => {
    await browser?.close();
    await fixture?.close();
    shots.cleanup();
  });

  it('signs in with the admin token, then shows the dashboard, search results and a host page without running any script', async () => {
    const page = await context.newPage();
    const { dialogs, cspViolations } = watchPage(page);

    await page.goto(`${base}/ui`);
    expect(new URL(page.url()).pathname).toBe('/ui/login');
    await shoot(page, 'login');
    await page.fill('#token', 'pbk_not-a-real-token');
    await page.click('form[action="/ui/login"] button');
    expect(await page.textContent('.error')).toContain('not a valid admin token');
    await page.fill('#token', fixture.admin);
    await page.click('form[action="/ui/login"] button');
    expect(new URL(page.url()).pathname).toBe('/ui');
    const cookies = await context.cookies();
    expect(cookies.find((c) => c.name === 'pb_ui')).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/ui' });

    expect(await page.textContent('h1')).toBe('Dashboard');
    expect(await page.locator('svg').count()).toBeGreaterThanOrEqual(2);
    await shoot(page, 'dashboard');

    await page.fill('header input[name=q]', 'port:22 tag:dmz');
    await page.click('header form[role=search] button');
    expect(await page.textContent('main')).toContain('2 hosts match');
    await shoot(page, 'search');

    await page.goto(`${base}/ui/search?q=${encodeURIComponent('port:22 AND (')}`);
    expect(await page.textContent('.error')).toMatch(/column \d+/);
    await shoot(page, 'search-error');

    await page.goto(`${base}/ui/host/198.18.10.1`);
    expect(await page.textContent('main')).toContain(HOSTILE_PRODUCT);
    await page.goto(`${base}/ui/host/198.18.10.2`);
    expect(await page.textContent('main')).toContain('Changes from');
    await shoot(page, 'host');

    expect(dialogs).toEqual([]);
    expect(cspViolations).toEqual([]);
    await page.close();
  }, 120_000);

  it("says a new installation's cycle has not started (with the scope's size), and counts host visits apart from rounds", async () => {
    const data = tempDataDir();
    const clock = manualClock();
    const app = await openApp(data.dir, clock.now);
    const page = await context.newPage();
    try {
      const t = await tokens(app);
      await addScope(app, t.admin, [{ range: '198.18.20.0/28', tags: ['lab'] }]);
      await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 40, params: { sweepShare: 0, followUp: true } });
      // A policy stated as a rate has the longest budget text of the policy table.
      await app.coordinator.setPolicy('dmz', { strategy: 'adaptive', rate: 1000 });
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      const { dialogs, cspViolations } = watchPage(page);
      await signIn(page, url, t.admin);
      expect(new URL(page.url()).pathname).toBe('/ui');

      // Before the first work request: the walk has not begun, and its size is the scope's.
      const cycleLine = async () => ((await page.textContent('main p.cycle')) ?? '').replace(/\s+/g, ' ');
      expect(await cycleLine()).toBe(
        'Cycle 1 has not started: the first work request starts its walk over 16 addresses (the scope minus the blocklist).',
      );
      expect(await page.textContent('main')).not.toContain('0 of 0 positions');
      expect(await page.locator('.card', { hasText: 'Cycle 1' }).locator('.value').textContent()).toBe('not started');
      await shoot(page, 'dashboard-not-started');

      // Three host visits of two rounds each (adaptive asks for a follow-up when ports answer).
      let rounds = 0;
      let visits = 0;
      while (visits < 3 || rounds < 6) {
        const work = (await getWork(app, t.agents[0]!))!;
        if (work.round === 0) visits++;
        clock.advance(1000);
        const res = await submit(app, t.agents[0]!, resultFor(work, work.ports.slice(0, 2), clock.now()));
        expect(res.statusCode, res.body).toBe(200);
        rounds++;
        if (rounds > 12) throw new Error('no follow-up rounds: the scenario cannot tell visits from rounds');
      }
      expect(rounds).toBeGreaterThan(visits);

      await page.goto(`${url}/ui`);
      expect(await cycleLine()).toMatch(
        /^Cycle 1 started .*: \d+ of 16 positions walked, \d+ handed out, \d+ skipped; 0 earlier cycles completed\.$/,
      );
      // The policy table's long numeric headers wrap: the page fits the 1,280 px window.
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);
      const agents = page.locator('table', { has: page.locator('th', { hasText: 'host visits total' }) });
      expect(await agents.locator('thead th').allTextContents()).toEqual([
        'name',
        'id',
        'version',
        'last seen',
        'in flight',
        'host visits last hour',
        'host visits total',
        'rounds total',
      ]);
      expect((await agents.locator('tbody tr').first().locator('td').allTextContents()).slice(4)).toEqual([
        '0',
        String(visits),
        String(visits),
        String(rounds),
      ]);
      await shoot(page, 'dashboard-visits');

      await page.goto(`${url}/ui/admin/agents`);
      const listed = page.locator('table', { has: page.locator('th', { hasText: 'host visits, last hour' }) });
      const header = await listed.locator('thead th').allTextContents();
      const column = header.indexOf('host visits, last hour');
      expect(column).toBeGreaterThan(0);
      expect(await listed.locator('tbody tr').first().locator('td').nth(column).textContent()).toBe(String(visits));
      await shoot(page, 'agents-visits');
      expect(dialogs).toEqual([]);
      expect(cspViolations).toEqual([]);
    } finally {
      await page.close();
      // The browser outlives this app: drop its kept-alive connections, or close waits for them.
      app.server.closeAllConnections();
      await app.close();
      data.cleanup();
    }
  }, 120_000);
});
