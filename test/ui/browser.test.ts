import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type UiFixture, HOSTILE_PRODUCT, openUiFixture } from './fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`skipping the headless browser test: ${CHROMIUM} does not exist`);

describe.skipIf(!haveChromium)('the UI in a real headless Chromium', () => {
  let fixture: UiFixture;
  let context: BrowserContext;
  let base: string;
  let shots: string;
  let profile: string;

  beforeAll(async () => {
    fixture = await openUiFixture();
    base = await fixture.app.listen({ port: 0, host: '127.0.0.1' });
    shots = mkdtempSync(join(tmpdir(), 'pb-ui-shots-'));
    profile = mkdtempSync(join(tmpdir(), 'pb-ui-chromium-'));
    // A fresh profile directory per run (playwright passes it as --user-data-dir).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
      viewport: { width: 1280, height: 900 },
    });
  });
  afterAll(async () => {
    await context?.close();
    await fixture?.close();
    if (shots) rmSync(shots, { recursive: true, force: true });
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  /** A screenshot into the temp dir; with PB_UPDATE_DOCS_IMG=1 also copied to docs/img for the documentation. */
  async function shoot(page: Page, name: string): Promise<void> {
    const file = join(shots, `ui-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    expect(statSync(file).size).toBeGreaterThan(10_000);
    // Tests do not write into the work tree unless asked: `PB_UPDATE_DOCS_IMG=1 npx vitest run test/ui`.
    if (process.env.PB_UPDATE_DOCS_IMG === '1') copyFileSync(file, join('docs', 'img', `ui-${name}.png`));
  }

  it('signs in with the admin token, then shows the dashboard, search results and a host page without running any script', async () => {
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const cspViolations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });

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
