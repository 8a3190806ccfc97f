import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HeadlessChromium, haveChromium, launchChromium, screenshotter, watchPage } from '../helpers/chromium.js';
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
});
