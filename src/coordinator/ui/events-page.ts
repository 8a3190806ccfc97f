import { isPortbanditError } from '../../core/index.js';
import { matchEvent, parseEventQuery, type QueryNode, type Store, type StoreEvent } from '../../store/index.js';
import type { Coordinator } from '../coordinator.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { pager } from './forms.js';
import { type SafeHtml, html } from './html.js';
import { queryErrorColumn, renderQueryError } from './search-page.js';

/** Events per page of the events page. */
export const EVENTS_PAGE_SIZE = 50;
/** Events read per store call while looking for the newest matches (forward, backward). */
const READ_BATCH = 5000;
/** Backward reads start small (a first page needs ~50 events) and double up to the forward size. */
const BACKWARD_FIRST_BATCH = 500;

const EXAMPLES = [
  'kind:service-new',
  'kind:service-new port:22',
  'kind:service-changed service:ssh',
  'kind:host-new tag:dmz',
  'ip:198.18.0.0/16 -kind:host-gone',
  'ctime:>2026-11-01',
];

/** What the events page was asked for. */
export interface EventsRequest {
  readonly q: string;
  readonly page: number;
}

/** A page of the newest matching events; `total` is exact, or a lower bound when `exact` is false. */
export interface RecentEvents {
  readonly items: StoreEvent[];
  readonly total: number;
  readonly exact: boolean;
}

/**
 * The events ranked `skip` to `skip + take` among the newest matching a filter. With a store that
 * reads backward, from the newest until one match past the page (a page costs what it skips and
 * shows, the whole log only for a filter that matches little); otherwise by one forward pass over
 * the whole log that keeps the newest matches. `total` is exact when the walk reached the start.
 */
export async function newestEvents(store: Store, filter: QueryNode | undefined, skip: number, take: number): Promise<RecentEvents> {
  return store.readEventsBackward ? newestBackward(store, filter, skip, take) : newestForward(store, filter, skip, take);
}

async function newestBackward(store: Store, filter: QueryNode | undefined, skip: number, take: number): Promise<RecentEvents> {
  const items: StoreEvent[] = [];
  let total = 0;
  let before: string | undefined;
  for (let batch = BACKWARD_FIRST_BATCH; ; batch = Math.min(READ_BATCH * 2, batch * 2)) {
    const page = await store.readEventsBackward!({ ...(before !== undefined ? { before } : {}), limit: batch });
    if (page.events.length === 0) return { items, total, exact: true };
    for (const e of page.events) {
      if (!matchEvent(e, filter)) continue;
      total++;
      if (total > skip + take) return { items, total, exact: false };
      if (total > skip) items.push(e);
    }
    before = page.cursor;
  }
}

async function newestForward(store: Store, filter: QueryNode | undefined, skip: number, take: number): Promise<RecentEvents> {
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
  return { items: newestFirst.slice(skip, skip + take), total, exact: true };
}

type Service = { service?: unknown; product?: unknown; version?: unknown };

function describe(s: unknown): string {
  if (s === null || typeof s !== 'object') return '';
  const d = s as Service;
  return [d.service, d.product, d.version].filter((x) => typeof x === 'string' && x !== '').join(' ');
}

function renderDetail(e: StoreEvent): SafeHtml {
  const d = e.detail as { before?: unknown; after?: unknown } | undefined;
  if (e.kind === 'service-changed' && d !== undefined)
    return html`${describe(d.before) || '(unknown)'} <span class="muted">→</span> ${describe(d.after) || '(unknown)'}`;
  return html`${describe(d)}`;
}

function eventsForm(request: EventsRequest): SafeHtml {
  return html`<form class="inline" method="get" action="/ui/events" role="search">
<input type="search" name="q" value="${request.q}" size="60" aria-label="Event query" placeholder="kind:service-new port:22">
<button type="submit">Filter</button></form>
<p class="muted">Fields: kind (service-new, service-closed, service-changed, host-new, host-gone), port (or * for any), tag, ip (address or CIDR), service, product, version, ctime; <span class="mono">-</span>/NOT, OR, bare words as in search. Examples:
${EXAMPLES.map((e, i) => html`${i > 0 ? ' · ' : ''}<a class="mono" href="/ui/events?q=${encodeURIComponent(e)}">${e}</a>`)}</p>`;
}

const KIND_CLASS: Record<string, string> = {
  'service-new': 'opened',
  'host-new': 'opened',
  'service-closed': 'closed',
  'host-gone': 'closed',
};

/** The events page: recent changes, newest first, filtered by an event query, paged. */
export async function renderEvents(coordinator: Coordinator, request: EventsRequest): Promise<{ status: number; body: SafeHtml }> {
  let filter: QueryNode | undefined;
  try {
    filter = parseEventQuery(request.q);
  } catch (error) {
    if (!isPortbanditError(error, 'PB_ERR_QUERY')) throw error;
    return {
      status: 400,
      body: html`<h1>Events</h1>${eventsForm(request)}${renderQueryError(request.q, error.message, queryErrorColumn(error.where))}`,
    };
  }
  const skip = (request.page - 1) * EVENTS_PAGE_SIZE;
  const { items, total, exact } = await newestEvents(coordinator.store, filter, skip, EVENTS_PAGE_SIZE);
  const pages = exact ? Math.max(1, Math.ceil(total / EVENTS_PAGE_SIZE)) : 'more';
  const count = exact
    ? html`<strong>${formatCount(total)}</strong> event${total === 1 ? '' : 's'} match`
    : html`More than <strong>${formatCount(total - 1)}</strong> events match`;
  const href = (page: number) => `/ui/events?${new URLSearchParams({ q: request.q, page: String(page) }).toString()}`;
  const api = new URLSearchParams({ q: request.q }).toString();
  return {
    status: 200,
    body: html`<h1>Events</h1>${eventsForm(request)}
<p>${count}${items.length > 0 ? html`; newest first, ${formatCount(skip + 1)}–${formatCount(skip + items.length)} shown` : ''}.
<span class="muted">(Stream them: <span class="mono">GET /api/v1/events?${api}&amp;follow=true</span> or <span class="mono">portbandit events --follow</span>.)</span></p>
<table><thead><tr><th>when</th><th>kind</th><th>host</th><th class="num">port</th><th>service</th><th>tags</th></tr></thead><tbody>
${
  items.length > 0
    ? items.map(
        (
          e,
        ) => html`<tr><td class="mono">${formatTime(e.at)}</td><td class="${KIND_CLASS[e.kind] ?? ''}">${e.kind}</td><td class="mono"><a href="${hostHref(e.ip)}?scan=${encodeURIComponent(e.scanId)}">${e.ip}</a></td>
<td class="num mono">${e.port ?? ''}</td><td>${renderDetail(e)}</td><td>${e.tags.map((t) => html`<span class="tag">${t}</span>`)}</td></tr>`,
      )
    : html`<tr><td colspan="6" class="muted">No matching events.</td></tr>`
}
</tbody></table>
${pager(pages === 'more' ? request.page : Math.min(request.page, pages), pages, href)}`,
  };
}
