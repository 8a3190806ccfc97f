import { existsSync } from 'node:fs';
import type { Browser, BrowserContext } from 'playwright-core';
import {
  type PortResult,
  type ResultSubmission,
  type Screenshot,
  MAX_SCREENSHOTS_PER_RESULT,
  MAX_SCREENSHOT_BYTES,
  MAX_SCREENSHOT_RESULT_BYTES,
} from '../src/protocol/index.js';
import { PortbanditError, readImageInfo } from '../src/core/index.js';
import type { AllowList } from './allow-list.js';
import { ScreenshotGuard } from './screenshot-guard.js';

/** How the agent renders web services (`--screenshots`), resolved once at startup. */
export interface ScreenshotOptions {
  /** Debian's Chromium (`--chromium`); playwright-core never downloads a browser. */
  readonly executablePath: string;
  /** Longest one page may take, from navigation to the image (ms). */
  readonly timeoutMs: number;
  readonly viewport: { readonly width: number; readonly height: number };
  /** Largest image sent (bytes): a larger PNG is re-encoded as JPEG, and dropped with a note if still larger. */
  readonly maxBytes: number;
  /** Pages rendered at once, across every host the agent holds. */
  readonly concurrency: number;
  /** Web services rendered per host at most (the rest get a note). */
  readonly maxPerHost: number;
  readonly allow: AllowList;
  readonly log: (line: string) => void;
}

export const SCREENSHOT_DEFAULTS = {
  executablePath: '/usr/bin/chromium',
  timeoutMs: 15_000,
  viewport: { width: 1280, height: 800 },
  maxBytes: 512 * 1024,
  concurrency: 4,
  maxPerHost: 8,
} as const;

/** JPEG qualities tried, in order, when the PNG is over the cap. */
const JPEG_QUALITIES = [80, 60, 40] as const;

/** Longest page title kept. */
const MAX_TITLE = 256;

/** A web service to render: an open port whose nmap service name says HTTP(S). */
export interface WebTarget {
  readonly port: number;
  readonly scheme: 'http' | 'https';
}

/** nmap service names of web servers (nmap-services and -sV): plain, or TLS by name. */
const HTTP_NAMES = new Set([
  'http',
  'http-alt',
  'http-proxy',
  'http-mgmt',
  'http-wmap',
  'www',
  'www-http',
  'webcache',
  'sun-answerbook',
  'radan-http',
]);
const HTTPS_NAMES = new Set([
  'https',
  'https-alt',
  'https-wmap',
  'ssl/http',
  'ssl/https',
  'ssl/http-alt',
  'ssl/http-proxy',
  'ssl/https-alt',
  'ssl/http-mgmt',
]);

/**
 * The open ports to render, in port order: service http, https, http-proxy, ssl/http and the like,
 * or a service no nmap probe named (no name, `unknown`, or the port table's name for the number)
 * whose fingerprint answers HTTP (`answersHttp`); `tunnel: ssl`
 * (nmap -sV on a TLS port) or an https name means https.
 */
export function webTargets(ports: readonly PortResult[]): WebTarget[] {
  const out: WebTarget[] = [];
  for (const p of [...ports].sort((a, b) => a.port - b.port)) {
    if (p.state !== 'open') continue;
    const name = p.service?.toLowerCase() ?? 'unknown';
    if (HTTPS_NAMES.has(name)) out.push({ port: p.port, scheme: 'https' });
    else if (HTTP_NAMES.has(name) || p.answersHttp === true) out.push({ port: p.port, scheme: p.tunnel === 'ssl' ? 'https' : 'http' });
  }
  return out;
}

/** One request the page made, as route interception saw it. */
export interface InterceptedRequest {
  readonly url: string;
  readonly allowed: boolean;
}

/** What rendering one web service gave: an image, or a note saying why not. */
export interface CaptureResult {
  readonly target: WebTarget;
  readonly screenshot?: Screenshot;
  readonly note?: string;
  /** Every request (and WebSocket) the page tried, in order. */
  readonly requests: readonly InterceptedRequest[];
  readonly ms: number;
}

/** `ip` as URL host text (IPv6 in brackets). */
function urlHost(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

/** The origin `url` belongs to, or undefined for a URL without one (data:, blob:, about:). */
function originOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:' && u.protocol !== 'ws:' && u.protocol !== 'wss:') return undefined;
    const port = u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? '443' : '80');
    return `${u.hostname}:${port}`;
  } catch {
    return undefined;
  }
}

class Slots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}
  async use<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * Renders web services with one headless Chromium per agent (started on first use, restarted if
 * it dies), each page in a fresh browser context, bounded in time, viewport, bytes and pages at
 * once. The page may talk to its own origin only: route interception aborts every other request
 * and WebSocket, service workers are blocked, and the browser's only network path is the
 * ScreenshotGuard proxy, which dials nothing but the `ip:port` being rendered.
 */
export class Screenshotter {
  readonly guard: ScreenshotGuard;
  private browser: Promise<Browser> | undefined;
  private readonly slots: Slots;
  private closed = false;

  constructor(readonly options: ScreenshotOptions) {
    this.guard = new ScreenshotGuard(options.allow);
    this.slots = new Slots(Math.max(1, options.concurrency));
  }

  /** Start Chromium now (the agent's startup check); resolves with its version. */
  async start(): Promise<string> {
    return (await this.launch()).version();
  }

  private launch(): Promise<Browser> {
    if (this.closed) return Promise.reject(new PortbanditError('PB_ERR_SCANNER', 'the screenshotter is closed', { where: 'screenshots' }));
    this.browser ??= (async () => {
      const executablePath = this.options.executablePath;
      if (!existsSync(executablePath)) {
        throw new PortbanditError(
          'PB_ERR_SCANNER',
          `no Chromium at ${executablePath} (apt-get install chromium, or give --chromium PATH)`,
          { where: '--chromium' },
        );
      }
      const proxy = await this.guard.start();
      // Imported on first use: an agent without --screenshots never loads playwright-core.
      const { chromium } = await import('playwright-core');
      try {
        const browser = await chromium.launch({
          executablePath,
          timeout: 60_000,
          // Every destination, loopback included, goes through the guard (playwright adds <-loopback>).
          proxy: { server: proxy },
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--no-first-run',
            '--no-default-browser-check',
            // No name is ever resolved by the browser itself (the proxy is an address).
            '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
            // WebRTC may not send UDP outside the proxy.
            '--force-webrtc-ip-handling-policy=disable_non_proxied_udp',
            '--disable-features=DnsOverHttps,NetworkPrediction,InterestFeedContentSuggestions,MediaRouter,OptimizationHints',
          ],
        });
        browser.on('disconnected', () => {
          this.browser = undefined;
        });
        return browser;
      } catch (cause) {
        throw new PortbanditError(
          'PB_ERR_SCANNER',
          `Chromium at ${executablePath} did not start: ${(cause as Error).message.split('\n')[0]}`,
          { where: '--chromium', cause },
        );
      }
    })();
    this.browser.catch(() => {
      this.browser = undefined;
    });
    return this.browser;
  }

  /** Render one web service of `ip` (which must be inside --allow). Never throws for the page's sake. */
  async capture(ip: string, target: WebTarget): Promise<CaptureResult> {
    this.options.allow.assertAllowed([ip], 'screenshot target');
    return this.slots.use(() => this.captureNow(ip, target));
  }

  private async captureNow(ip: string, target: WebTarget): Promise<CaptureResult> {
    const started = performance.now();
    const requests: InterceptedRequest[] = [];
    const done = (rest: { screenshot?: Screenshot; note?: string }): CaptureResult => ({
      target,
      requests,
      ms: Math.round(performance.now() - started),
      ...rest,
    });
    const own = `${ip.toLowerCase()}:${target.port}`;
    const sameOrigin = (url: string): boolean => {
      const origin = originOf(url);
      return origin !== undefined && origin.replace(/^\[(.*)\](:\d+)$/u, '$1$2').toLowerCase() === own;
    };
    const url = `${target.scheme}://${urlHost(ip)}:${target.port}/`;
    const release = this.guard.permit(ip, target.port);
    let context: BrowserContext | undefined;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Starting the browser has its own bound (playwright's launch timeout).
      const browser = await this.launch();
      // The hard stop, from here: whatever hangs (the page, the screenshot), the context goes.
      timer = setTimeout(() => {
        timedOut = true;
        void context?.close().catch(() => {});
      }, this.options.timeoutMs + 2000);
      context = await browser.newContext({
        viewport: this.options.viewport,
        deviceScaleFactor: 1,
        ignoreHTTPSErrors: true,
        serviceWorkers: 'block',
        acceptDownloads: false,
      });
      await context.route('**/*', async (route) => {
        const requested = route.request().url();
        const allowed = sameOrigin(requested);
        requests.push({ url: requested.slice(0, 500), allowed });
        await (allowed ? route.continue() : route.abort('blockedbyclient')).catch(() => {});
      });
      await context.routeWebSocket(
        () => true,
        (ws) => {
          const allowed = sameOrigin(ws.url());
          requests.push({ url: ws.url().slice(0, 500), allowed });
          if (allowed) ws.connectToServer();
          else void ws.close({ code: 1008, reason: 'blocked' }).catch(() => {});
        },
      );
      const page = await context.newPage();
      // Whether the target's own answer became the page (a blocked redirect or an error does not).
      let answered = false;
      let landed: string | undefined;
      page.on('response', (response) => {
        if (!response.request().isNavigationRequest() || response.frame() !== page.mainFrame()) return;
        landed = response.url();
        answered = sameOrigin(landed);
      });
      // Redirects are followed inside the browser, unseen by route interception: logged here
      // (the guard refuses any that leave the target).
      page.on('request', (request) => {
        if (request.redirectedFrom()) requests.push({ url: request.url().slice(0, 500), allowed: sameOrigin(request.url()) });
      });
      const deadline = Date.now() + this.options.timeoutMs;
      let failure: string | undefined;
      try {
        await page.goto(url, { timeout: this.options.timeoutMs, waitUntil: 'load' });
      } catch (error) {
        failure = (error as Error).message.split('\n')[0]!;
      }
      // A page that answered but never finished loading is still worth an image; a failed
      // navigation (refused, reset, redirected elsewhere) is not.
      if (failure !== undefined && !(answered && /Timeout/iu.test(failure))) {
        return done({
          note: `${url}: ${/Timeout/iu.test(failure) || timedOut ? `no page within ${this.options.timeoutMs} ms` : failure.replace(/^page\.goto: /u, '')}`,
        });
      }
      if (landed !== undefined && !answered)
        return done({ note: `${url}: redirected outside the target (to ${landed.slice(0, 200)}); not rendered` });
      const left = (): number => Math.max(1000, deadline - Date.now());
      const title = (await page.title().catch(() => '')).trim().slice(0, MAX_TITLE);
      let image = await page.screenshot({ type: 'png', timeout: left(), animations: 'disabled', caret: 'hide' });
      let note: string | undefined;
      if (image.length > this.options.maxBytes) {
        const png = image.length;
        for (const quality of JPEG_QUALITIES) {
          image = await page.screenshot({ type: 'jpeg', quality, timeout: left(), animations: 'disabled', caret: 'hide' });
          if (image.length <= this.options.maxBytes) {
            note = `${url}: PNG of ${png} bytes over the ${this.options.maxBytes}-byte cap; sent as JPEG (quality ${quality})`;
            break;
          }
        }
        if (image.length > this.options.maxBytes) {
          return done({
            note: `${url}: image over the ${this.options.maxBytes}-byte cap even as JPEG (quality ${JPEG_QUALITIES.at(-1)}: ${image.length} bytes); dropped`,
          });
        }
      }
      const info = readImageInfo(image);
      if (!info) return done({ note: `${url}: Chromium returned an unreadable image; dropped` });
      const screenshot: Screenshot = {
        port: target.port,
        scheme: target.scheme,
        mime: info.mime,
        data: image.toString('base64'),
        width: info.width,
        height: info.height,
        ...(title !== '' ? { title } : {}),
      };
      return done({ screenshot, ...(note !== undefined ? { note } : {}) });
    } catch (error) {
      if (timedOut) return done({ note: `${url}: no image within ${this.options.timeoutMs} ms; the page was closed` });
      if (error instanceof PortbanditError) throw error;
      return done({ note: `${url}: ${(error as Error).message.split('\n')[0]}` });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      release();
      await context?.close().catch(() => {});
    }
  }

  /**
   * Render a host's web services (bounded by `maxPerHost` and the protocol's per-result caps) and
   * return the submission with `screenshots`, a `screenshots` timing, and notes in
   * `host.screenshotNotes` for what was not sent. Hosts without web services come back unchanged.
   */
  async attach(submission: ResultSubmission, deadline?: number): Promise<ResultSubmission> {
    if (submission.status !== 'up') return submission;
    const targets = webTargets(submission.ports);
    if (targets.length === 0) return submission;
    const started = performance.now();
    const notes: string[] = [];
    const limit = Math.min(this.options.maxPerHost, MAX_SCREENSHOTS_PER_RESULT);
    if (targets.length > limit)
      notes.push(
        `${targets.length} web services; rendered the first ${limit} (ports ${targets
          .slice(limit)
          .map((t) => t.port)
          .join(', ')} skipped)`,
      );
    // The lease's deadline comes first: no page starts that could not finish before it.
    const chosen = targets.slice(0, limit);
    if (deadline !== undefined && Date.now() + this.options.timeoutMs + 5000 > deadline) {
      this.options.log(`agent: ${submission.ip}: no time left before the lease deadline for screenshots`);
      return {
        ...submission,
        host: { ...(submission.host ?? {}), screenshotNotes: ['no time left before the lease deadline; not rendered'] },
      };
    }
    // A browser that cannot start (or died for good) costs the images, never the scan result.
    const results = await Promise.all(
      chosen.map((t) =>
        this.capture(submission.ip, t).catch((error: unknown): CaptureResult => ({
          target: t,
          requests: [],
          ms: 0,
          note: `port ${t.port}: ${(error as Error).message}`,
        })),
      ),
    );
    const screenshots: Screenshot[] = [];
    let bytes = 0;
    for (const r of results) {
      if (r.note !== undefined) notes.push(r.note);
      if (!r.screenshot) continue;
      const size = Buffer.byteLength(r.screenshot.data, 'base64');
      if (size > MAX_SCREENSHOT_BYTES || bytes + size > MAX_SCREENSHOT_RESULT_BYTES) {
        notes.push(
          `port ${r.target.port}: image of ${size} bytes would pass the coordinator's caps (${MAX_SCREENSHOT_BYTES} per image, ${MAX_SCREENSHOT_RESULT_BYTES} per result); dropped`,
        );
        continue;
      }
      bytes += size;
      screenshots.push(r.screenshot);
    }
    for (const note of notes) this.options.log(`agent: ${submission.ip}: screenshot: ${note}`);
    return {
      ...submission,
      ...(screenshots.length > 0 ? { screenshots } : {}),
      timings: { ...(submission.timings ?? {}), screenshots: Math.round(performance.now() - started) },
      ...(notes.length > 0
        ? { host: { ...(submission.host ?? {}), screenshotNotes: notes.slice(0, 32).map((n) => n.slice(0, 500)) } }
        : {}),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const browser = this.browser;
    this.browser = undefined;
    if (browser) await (await browser.catch(() => undefined))?.close().catch(() => {});
    await this.guard.close();
  }
}
