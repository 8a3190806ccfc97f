import { chromium } from 'playwright-core';
import { readFileSync, mkdtempSync } from 'node:fs';
const [base, tokenFile, outDir, ...paths] = process.argv.slice(2);
const ctx = await chromium.launchPersistentContext(mkdtempSync('/tmp/pbc-'), { executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'], viewport: { width: 1280, height: 1000 } });
const page = await ctx.newPage();
await page.goto(`${base}/ui`);
await page.fill('#token', readFileSync(tokenFile, 'utf8').trim());
await page.click('form[action="/ui/login"] button');
for (const [i, p] of paths.entries()) { await page.goto(`${base}${p}`); await page.screenshot({ path: `${outDir}/shot-${i}.png`, fullPage: false }); console.log(p, await page.title()); }
await ctx.close();
