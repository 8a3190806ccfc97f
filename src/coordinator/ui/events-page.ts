import { isPortbanditError } from '../../core/errors.js';
import { matchEvent, parseEventQuery } from '../../store/index.js';
import type { QueryNode } from '../../store/query-ast.js';
import type { Store, StoreEvent } from '../../store/types.js';
import type { Coordinator } from '../coordinator.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { pager } from './forms.js';
import { type SafeHtml, html } from './html.js';
import { queryErrorColumn, renderQueryError } from './search-page.js';

/** Events per page of the events page. */
export const EVENTS_PAGE_SIZE = 50;
/** Events read per store call while looking for the newest matches. */
const READ_BATCH = 5000;

const EXAMPLES = ['kind:service-new', 'kind:service-new port:22', 'kind:service-changed service:ssh', 'kind:host-new tag:dmz', 'ip:198.18.0.0/16 -kind:host-gone', 'ctime:>2026-11-01'];

/** What the events page was asked for. */
export interface EventsRequest {
  readonly q: string;
  readonly page: number;
}

/**
 * The `skip + take` newest events matching a filter and how many match in all. The store reads
 * events forward only, so this walks the whole log once and keeps the newest matches: a page
 * costs a pass over every event.
 */
export async function newestEvents(store: Store, filter: QueryNode | undefined, skip: number, take: number): Promise<{ items: StoreEvent[]; total: number }> {
  const keep = skip + take;
  let kept: StoreEvent[] = [];
  let total = 0;
  let cursor: string | undefined;
  for (;;) {
    const page = await store.readEvents({ ...(cursor !== undefined ? { cursor } : {}), limit: READ_BATCH });
    if (page.events.length === 0) break;
    for (const e of page.events) {
      if (!matchEvent(e, filter)) continue;
      total++;
      kept.push(e);
    }
    if (kept.length > 2 * keep) kept = kept.slice(-keep);
    cursor = page.cursor;
  }
  const newestFirst = kept.slice(-keep).reverse();
  return { items: newestFirst.slice(skip, skip + take), total };
}

type Service = { service?: unknown; product?: unknown; version?: unknown };

function describe(s: unknown): string {
  if (s === null || typeof s !== 'object') return '';
  const d = s as Service;
  return [d.service, d.product, d.version].filter((x) => typeof x === 'string' && x !== '').join(' ');
}

function renderDetail(e: StoreEvent): SafeHtml {
  const d = e.detail as { before?: unknown; after?: unknown } | undefined;
  if (e.kind === 'service-changed' && d !== undefined) return html`${describe(d.before) || '(unknown)'} <span class="muted">→</span> ${describe(d.after) || '(unknown)'}`;
  return html`${describe(d)}`;
}

function eventsForm(request: EventsRequest): SafeHtml {
  return html`<form class="inline" method="get" action="/ui/events" role="search">
<input type="search" name="q" value="${request.q}" size="60" aria-label="Event query" placeholder="kind:service-new port:22">
<button type="submit">Filter</button></form>
<p class="muted">Fields: kind (service-new, service-closed, service-changed, host-new, host-gone), port, tag, ip (address or CIDR), service, product, version, ctime; <span class="mono">-</span>/NOT, OR, bare words as in search. Examples:
${EXAMPLES.map((e, i) => html`${i > 0 ? ' · ' : ''}<a class="mono" href="/ui/events?q=${encodeURIComponent(e)}">${e}</a>`)}</p>`;
}

const KIND_CLASS: Record<string, string> = { 'service-new': 'opened', 'host-new': 'opened', 'service-closed': 'closed', 'host-gone': 'closed' };

/** The events page: recent changes, newest first, filtered by an event query, paged. */
export async function renderEvents(coordinator: Coordinator, request: EventsRequest): Promise<{ status: number; body: SafeHtml }> {
  let filter: QueryNode | undefined;
  try {
    filter = parseEventQuery(request.q);
  } catch (error) {
    if (!isPortbanditError(error, 'PB_ERR_QUERY')) throw error;
    return { status: 400, body: html`<h1>Events</h1>${eventsForm(request)}${renderQueryError(request.q, error.message, queryErrorColumn(error.where))}` };
  }
  const skip = (request.page - 1) * EVENTS_PAGE_SIZE;
  const { items, total } = await newestEvents(coordinator.store, filter, skip, EVENTS_PAGE_SIZE);
  const pages = Math.max(1, Math.ceil(total / EVENTS_PAGE_SIZE));
  const href = (page: number) => `/ui/events?${new URLSearchParams({ q: request.q, page: String(page) }).toString()}`;
  const api = new URLSearchParams({ q: request.q }).toString();
  return {
    status: 200,
    body: html`<h1>Events</h1>${eventsForm(request)}
<p><strong>${formatCount(total)}</strong> event${total === 1 ? '' : 's'} match${total > 0 ? html`; newest first, ${formatCount(Math.min(total, skip + 1))}–${formatCount(skip + items.length)} shown` : ''}.
<span class="muted">(Stream them: <span class="mono">GET /api/v1/events?${api}&amp;follow=true</span> or <span class="mono">portbandit events --follow</span>.)</span></p>
<table><thead><tr><th>when</th><th>kind</th><th>host</th><th class="num">port</th><th>service</th><th>tags</th></tr></thead><tbody>
${items.length > 0
  ? items.map(
      (e) => html`<tr><td class="mono">${formatTime(e.at)}</td><td class="${KIND_CLASS[e.kind] ?? ''}">${e.kind}</td><td class="mono"><a href="${hostHref(e.ip)}?scan=${encodeURIComponent(e.scanId)}">${e.ip}</a></td>
<td class="num mono">${e.port ?? ''}</td><td>${renderDetail(e)}</td><td>${e.tags.map((t) => html`<span class="tag">${t}</span>`)}</td></tr>`,
    )
  : html`<tr><td colspan="6" class="muted">No matching events.</td></tr>`}
</tbody></table>
${pager(Math.min(request.page, pages), pages, href)}`,
  };
}
