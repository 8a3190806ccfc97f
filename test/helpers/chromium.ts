import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { expect } from 'vitest';

/** Debian's Chromium: the only browser the tests use (playwright-core never downloads one). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Whether Debian's Chromium is installed; when it is not, says which test is skipped (on stderr),
 * so a skipped browser test is never silent. Use as `describe.skipIf(!haveChromium('the X test'))`.
 */
export function haveChromium(what: string): boolean {
  const present = existsSync(CHROMIUM);
  if (!present) console.warn(`skipping ${what}: ${CHROMIUM} does not exist`);
  return present;
}

/** A headless Chromium with a fresh profile directory, and the one call that closes it and removes the profile. */
export interface HeadlessChromium {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Launches Debian's Chromium headless with a throwaway profile (playwright passes it as
 * --user-data-dir): no sandbox (tests may run as root), no GPU, nothing fetched in the background.
 * `options` are playwright's context options (viewport 1280x900 unless given, `offline`, ...).
 */
export async function launchChromium(options: BrowserContextOptions = {}): Promise<HeadlessChromium> {
  const profile = mkdtempSync(join(tmpdir(), 'pb-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
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
      ...options,
    });
    return {
      context,
      async close() {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}

/** Signs in to the UI with a token through the login form (optionally to `next`), as a person would. */
export async function signIn(page: Page, base: string, token: string, next?: string): Promise<void> {
  await page.goto(`${base}/ui/login${next === undefined ? '' : `?next=${encodeURIComponent(next)}`}`);
  await page.fill('#token', token);
  await page.click('form[action="/ui/login"] button');
}

/**
 * What a page did that the UI must never make it do: open a dialog (a script ran) or break the
 * Content Security Policy. Both lists are expected to stay empty.
 */
export function watchPage(page: Page): { dialogs: string[]; cspViolations: string[] } {
  const seen = { dialogs: [] as string[], cspViolations: [] as string[] };
  page.on('dialog', (d) => {
    seen.dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) seen.cspViolations.push(m.text());
  });
  return seen;
}

/**
 * Full-page PNG screenshots `ui-<name>.png` into a temp directory (made at the first shot, removed
 * by `cleanup`), each checked to be a real image; `shoot` returns the file. Tests do not write into
 * the work tree unless asked: `PB_UPDATE_DOCS_IMG=1 npx vitest run test/ui` also copies them to
 * docs/img for the documentation.
 */
export function screenshotter(): { shoot(page: Page, name: string): Promise<string>; cleanup(): void } {
  let dir: string | undefined;
  return {
    async shoot(page, name) {
      dir ??= mkdtempSync(join(tmpdir(), 'pb-ui-shots-'));
      const file = join(dir, `ui-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      expect(statSync(file).size).toBeGreaterThan(10_000);
      if (process.env.PB_UPDATE_DOCS_IMG === '1') copyFileSync(file, join('docs', 'img', `ui-${name}.png`));
      return file;
    },
    cleanup: () => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}
