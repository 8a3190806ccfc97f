import { mkdtempSync, rmSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, AllowList, Screenshotter, detectScannerTools } from '../../agent/index.js';
import { addScope, bearer, openApp, tempDataDir, tokens } from '../coordinator/helpers.js';
import { CHROMIUM, type HeadlessChromium, haveChromium, launchChromium, screenshotter, signIn, watchPage } from '../helpers/chromium.js';
import { decodePng, pixelAt } from '../helpers/png.js';
import { selfSignedCert } from '../helpers/self-signed.js';

const tools = await detectScannerTools();
if (tools.nmap === null) console.warn('skipping the screenshot pipeline test: needs nmap');
const ready = haveChromium('the screenshot pipeline test') && tools.nmap !== null;

/**
 * Web services on loopback addresses, each a page easy to tell apart. `server` is the Server
 * header nmap -sV names the service by; without one, nmap calls it unknown and the agent goes
 * by the HTTP answer in nmap's fingerprint.
 */
function page(
  title: string,
  colour: string,
  body: string,
  server: string | undefined,
): (req: IncomingMessage, res: ServerResponse) => void {
  const doc = `<!doctype html><html><head><title>${title}</title></head>
<body style="margin:0;font:16px sans-serif;background:#f4f4f4">
<div style="background:${colour};color:#fff;padding:28px 40px;font:bold 40px sans-serif">${title}</div>
<div style="padding:30px 40px">${body}</div></body></html>`;
  return (_req, res) =>
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', ...(server !== undefined ? { Server: server } : {}) }).end(doc);
}

const LOGIN =
  '<form style="background:#fff;padding:24px;width:340px;border:1px solid #ccc"><p>User<br><input style="width:100%"></p><p>Password<br><input type="password" style="width:100%"></p><p><button>Sign in</button></p></form>';

describe.skipIf(!ready)(
  'web screenshots end to end: a real agent (connect + nmap -sV + Chromium) to the coordinator, seen in the UI by Chromium',
  () => {
    const data = tempDataDir();
    const tls = mkdtempSync(join(tmpdir(), 'pb-ui-tls-'));
    let credentials: { key: Buffer; cert: Buffer };
    const servers: Server[] = [];
    const services: Array<{ ip: string; port: number; scheme: 'http' | 'https'; title: string }> = [];
    let app: FastifyInstance;
    let base: string;
    let admin: string;
    let browser: HeadlessChromium;
    /** The agent's log lines (a missing screenshot says why there). */
    const logs: string[] = [];
    const shots = screenshotter();

    async function listen(
      ip: string,
      scheme: 'http' | 'https',
      title: string,
      colour: string,
      body: string,
      serverHeader?: string,
    ): Promise<void> {
      const handler = page(title, colour, body, serverHeader);
      const server = scheme === 'http' ? createServer(handler) : createHttpsServer(credentials, handler);
      await new Promise<void>((resolve) => server.listen(0, ip, resolve));
      servers.push(server);
      services.push({ ip, port: (server.address() as { port: number }).port, scheme, title });
    }

    beforeAll(async () => {
      credentials = selfSignedCert(tls, 'storage.lab.example');
      await listen('127.0.0.1', 'http', 'Edge router', '#1f5fa8', `<p>Firmware 4.2.1</p>${LOGIN}`, 'lighttpd/1.4.69');
      await listen('127.0.0.1', 'https', 'Edge router · secure admin', '#0b3d6e', LOGIN, 'nginx/1.25.3');
      await listen(
        '127.0.0.2',
        'http',
        'Build server',
        '#1d7a3a',
        '<h2>Queue</h2><ul><li>#4121 main ✓</li><li>#4122 release ✗</li><li>#4123 main …</li></ul>',
      );
      await listen(
        '127.0.0.3',
        'https',
        'Storage array',
        '#a8261f',
        '<p>3 of 12 disks degraded</p><progress value="70" max="100" style="width:400px"></progress>',
        'Apache/2.4.57 (Debian)',
      );

      app = await openApp(data.dir, Date.now);
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      const t = await tokens(app);
      admin = t.admin;
      await addScope(app, admin, [{ range: '127.0.0.1-127.0.0.3', tags: ['lab-web'] }]);
      const ports = [...new Set(services.map((s) => s.port))];
      const res = await app.inject({
        method: 'PUT',
        url: '/api/v1/admin/policies/_default',
        headers: bearer(admin),
        payload: {
          strategy: 'fixed',
          params: { ports },
          budget: ports.length,
          scan: { preflight: 'connect', versionDetection: true, scripts: [], hostTimeoutSeconds: 60 },
        },
      });
      expect(res.statusCode, res.body).toBe(200);

      // The agent as `portbandit agent --screenshots` runs it (connect preflight, nmap -sV, Chromium).
      const allow = AllowList.parse(['127.0.0.0/8']);
      const screenshots = new Screenshotter({
        executablePath: CHROMIUM,
        // The default per page is 15 s; CI runs this beside lint, the type-check and the lab on 2
        // cores, where a render can take longer (a time-out here catches a hang, not slowness).
        timeoutMs: 45_000,
        viewport: { width: 1280, height: 800 },
        maxBytes: 512 * 1024,
        concurrency: 4,
        maxPerHost: 8,
        allow,
        log: (l) => logs.push(l),
      });
      try {
        const agent = new Agent({
          server: base,
          token: t.agents[0]!,
          concurrency: 4,
          once: true,
          scan: {
            allow,
            scriptsAllow: new Set(),
            preflight: 'connect',
            tools,
            masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
            connect: { concurrency: 16, timeoutMs: 1000, retries: 0 },
            pseudoServiceThreshold: 100,
            log: (l) => logs.push(l),
            screenshots,
          },
        });
        const stats = await agent.run();
        expect(stats, logs.join('\n')).toMatchObject({ submitted: 3, rejected: 0, errors: 0 });
      } finally {
        await screenshots.close();
      }

      browser = await launchChromium();
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      await app?.close();
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      data.cleanup();
      rmSync(tls, { recursive: true, force: true });
      shots.cleanup();
    });

    const shoot = shots.shoot;

    it('stores one rendered page per web service, each showing its own page', async () => {
      const list = (await app.inject({ method: 'GET', url: '/api/v1/screenshots', headers: bearer(admin) })).json() as {
        total: number;
        items: Array<{ ip: string; port: number; scheme: string; title?: string; url: string; width: number; height: number }>;
      };
      expect(list.items.map((s) => `${s.scheme}://${s.ip}:${s.port} ${s.title}`).sort(), logs.join('\n')).toEqual(
        services.map((s) => `${s.scheme}://${s.ip}:${s.port} ${s.title}`).sort(),
      );
      // Each image is the page's own: its banner colour at the top.
      const colours: Record<string, [number, number, number]> = { 'Edge router': [31, 95, 168], 'Build server': [29, 122, 58] };
      for (const item of list.items.filter((s) => colours[s.title ?? ''] !== undefined)) {
        const img = await app.inject({ method: 'GET', url: item.url, headers: bearer(admin) });
        expect(pixelAt(decodePng(img.rawPayload), 1000, 30)).toEqual(colours[item.title!]);
      }
      const search = (
        await app.inject({
          method: 'GET',
          url: `/api/v1/search?q=${encodeURIComponent('screenshot:true tag:lab-web')}`,
          headers: bearer(admin),
        })
      ).json() as { total: number };
      expect(search.total).toBe(3);
    });

    it('shows the gallery, newest first, and the host page figures, with every image loaded and no script', async () => {
      const p = await browser.context.newPage();
      const seen = watchPage(p);
      const failed: string[] = [];
      p.on('requestfailed', (r) => failed.push(r.url()));
      await signIn(p, base, admin, '/ui/screenshots');
      expect(new URL(p.url()).pathname).toBe('/ui/screenshots');
      expect(await p.textContent('h1')).toBe('Screenshots');
      expect(await p.textContent('main')).toContain('4 web screenshots');
      await expect
        .poll(() => p.locator('figure.shot img').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth)))
        .toEqual([1280, 1280, 1280, 1280]);
      const captions = await p.locator('figure.shot figcaption strong').allTextContents();
      expect(captions.sort()).toEqual(services.map((s) => s.title).sort());
      await shoot(p, 'screenshots');

      // A host with two web services: both figures on its page, linked to the full image.
      await p.click('figure.shot a:text("127.0.0.1")');
      expect(new URL(p.url()).pathname).toBe('/ui/host/127.0.0.1');
      await expect
        .poll(() => p.locator('figure.shot img').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth)))
        .toEqual([1280, 1280]);
      expect(await p.locator('figure.shot figcaption strong').allTextContents()).toEqual(
        services
          .filter((s) => s.ip === '127.0.0.1')
          .sort((a, b) => a.port - b.port)
          .map((s) => s.title),
      );
      await shoot(p, 'host-screenshot');

      // The search link of the gallery.
      await p.goto(`${base}/ui/search?q=${encodeURIComponent('screenshot:true')}`);
      expect(await p.textContent('main')).toContain('3 hosts match');

      expect(seen).toEqual({ dialogs: [], cspViolations: [] });
      expect(failed).toEqual([]);
      await p.close();
    }, 120_000);
  },
);
