import type { StoredScreenshotInfo, ScanDocument, ScreenshotMeta } from '../../store/index.js';
import type { Coordinator } from '../coordinator.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { type SafeHtml, html } from './html.js';

/** Screenshots on one gallery page. */
export const GALLERY_PAGE_SIZE = 24;

/** The UI's URL of an image (cookie-authenticated, same origin: allowed by `img-src 'self'`). */
export function screenshotHref(ip: string, scanId: string, port: number): string {
  return `${hostHref(ip)}/screenshots/${encodeURIComponent(scanId)}/${port}`;
}

function serviceUrl(ip: string, shot: Pick<ScreenshotMeta, 'scheme' | 'port'>): string {
  return `${shot.scheme}://${ip.includes(':') ? `[${ip}]` : ip}:${shot.port}/`;
}

/** 0 B, 14 KiB, 3.2 MiB, 1 GiB. */
function kib(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const [unit, size] = bytes >= 2 ** 30 ? ['GiB', 2 ** 30] : bytes >= 2 ** 20 ? ['MiB', 2 ** 20] : ['KiB', 1024];
  const n = bytes / (size as number);
  return `${formatCount(n >= 100 || Number.isInteger(n) ? Math.round(n) : Number(n.toFixed(1)))} ${unit as string}`;
}

/** A thumbnail linking to the full image, with the service, its title and the size. */
function figure(ip: string, scanId: string, shot: ScreenshotMeta, extra: SafeHtml | string = ''): SafeHtml {
  const href = screenshotHref(ip, scanId, shot.port);
  const url = serviceUrl(ip, shot);
  return html`<figure class="shot"><a href="${href}"><img src="${href}" alt="screenshot of ${url}" width="320" height="${Math.round((320 * shot.height) / shot.width)}" loading="lazy"></a>
<figcaption><span class="mono">${url}</span>${shot.title !== undefined ? html`<br><strong>${shot.title}</strong>` : ''}<br><span class="muted">${shot.width}×${shot.height} ${shot.mime === 'image/png' ? 'PNG' : 'JPEG'}, ${kib(shot.bytes)}</span>${extra}</figcaption></figure>`;
}

/**
 * The host page's screenshot section for one visit: a figure per rendered web service, or a
 * note where the screenshot budget has since dropped the image.
 */
export function renderScanScreenshots(coordinator: Coordinator, scan: ScanDocument): SafeHtml | string {
  const shots = scan.screenshots ?? [];
  if (shots.length === 0) return '';
  const kept = new Set((coordinator.screenshots.existing()?.ofScan(scan.scanId) ?? []).map((s) => s.port));
  return html`<h3>Screenshots</h3><div class="shots">
${shots.map((s) =>
  kept.has(s.port)
    ? figure(scan.ip, scan.scanId, s)
    : html`<figure class="shot gone"><div class="muted">image dropped by the screenshot budget</div><figcaption><span class="mono">${serviceUrl(scan.ip, s)}</span>${s.title !== undefined ? html`<br><strong>${s.title}</strong>` : ''}</figcaption></figure>`,
)}
</div>`;
}

/** The gallery: every stored screenshot, newest first, a page at a time. */
export function renderGallery(coordinator: Coordinator, page: number): SafeHtml {
  const store = coordinator.screenshots.existing();
  const total = store?.count() ?? 0;
  const pages = Math.max(1, Math.ceil(total / GALLERY_PAGE_SIZE));
  const items: StoredScreenshotInfo[] = store?.newest(GALLERY_PAGE_SIZE, (page - 1) * GALLERY_PAGE_SIZE) ?? [];
  const pager = html`<div class="pager">${page > 1 ? html`<a href="/ui/screenshots?page=${page - 1}" rel="prev">← Newer</a>` : ''}<span class="muted">page ${page} of ${pages}</span>${page < pages ? html`<a href="/ui/screenshots?page=${page + 1}" rel="next">Older →</a>` : ''}</div>`;
  return html`<h1>Screenshots</h1>
<p>${formatCount(total)} web screenshot${total === 1 ? '' : 's'} (${kib(store?.totalBytes() ?? 0)} of a ${kib(coordinator.screenshots.budget)} budget; the oldest go first), newest first.
Agents take them with <span class="mono">portbandit agent --screenshots</span>; <a href="/ui/search?q=${encodeURIComponent('screenshot:true')}">hosts whose latest visit has one</a>.</p>
${items.length === 0 ? html`<p class="muted">${total === 0 ? 'No screenshots yet.' : 'No screenshots on this page.'}</p>` : html`<div class="shots">${items.map((s) => figure(s.ip, s.scanId, s, html`<br><a href="${hostHref(s.ip)}?scan=${encodeURIComponent(s.scanId)}">${s.ip}</a> <span class="muted">${formatTime(s.storedAt)}</span>`))}</div>`}
${total > GALLERY_PAGE_SIZE ? pager : ''}`;
}
