import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExperiment } from '../../experiments/runner.js';
import { haveChromium, launchChromium } from '../helpers/chromium.js';
import { tinySpec, writeTinyRecording } from './helpers.js';

describe.skipIf(!haveChromium('the headless-Chromium report test'))('report.html in headless Chromium', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pb-chrome-'));
    const file = join(dir, 'tiny.ndjson');
    writeTinyRecording(file, { hosts: 24, epochs: 4, seed: 'c' });
    await runExperiment(tinySpec(file), { out: join(dir, 'out'), workers: 0 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads offline, renders every chart with visible size, and screenshots', async () => {
    const browser = await launchChromium({ offline: true });
    try {
      const page = await browser.context.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(`file://${join(dir, 'out', 'report.html')}`);
      const sizes = await page
        .locator('figure.chart svg')
        .evaluateAll((svgs) => svgs.map((s) => s.getBoundingClientRect()).map((r) => [r.width, r.height]));
      expect(sizes.length).toBe(6);
      for (const [w, h] of sizes) {
        expect(w).toBeGreaterThan(300);
        expect(h).toBeGreaterThan(150);
      }
      // Nothing but the page itself is fetched.
      expect(requests.filter((u) => !u.startsWith('file://'))).toEqual([]);
      // Tables fit the page width (no horizontal scrolling of the whole page).
      const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(scrollWidth).toBeLessThanOrEqual(1280);
      const png = join(dir, 'report.png');
      await page.screenshot({ path: png, fullPage: true });
      expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      await browser.close();
    }
  });
});
