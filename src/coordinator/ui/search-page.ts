import { isPortbanditError } from '../../core/index.js';
import { type QueryNode, parseQuery, type ScanDocument, type SearchView } from '../../store/index.js';
import type { Coordinator } from '../coordinator.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { type SafeHtml, html } from './html.js';

/** Results per page of the search page. */
export const SEARCH_PAGE_SIZE = 25;

/** What the search page was asked for (validated by the route schema). */
export interface SearchRequest {
  readonly q: string;
  readonly page: number;
  readonly view: SearchView;
}

/** A search page and the HTTP status to send it with (400 for a malformed query). */
export interface RenderedSearch {
  readonly status: number;
  readonly body: SafeHtml;
}

const EXAMPLES = [
  'port:*',
  'port:22',
  'service:ssh',
  'product:nginx',
  'tag:dmz',
  'ip:198.18.0.0/24',
  'name:web.lab.example',
  'group:internal',
  'ctime:>2026-11-01',
  '-port:80',
  '"OpenSSH 9"',
  'screenshot:true',
];

function openPortsCell(scan: ScanDocument): SafeHtml {
  const open = scan.ports.filter((p) => p.state === 'open');
  if (open.length === 0) return html`<span class="muted">none</span>`;
  return html`${open.map(
    (p) =>
      html`<div><span class="mono">${p.port}/${p.protocol ?? 'tcp'}</span> ${p.service ?? ''}${p.product !== undefined ? html` <span class="muted">${p.product}${p.version !== undefined ? ` ${p.version}` : ''}</span>` : ''}</div>`,
  )}`;
}

/** The column a PB_ERR_QUERY names in its `where` ("query column 7"), if any. */
export function queryErrorColumn(where: string | undefined): number | undefined {
  const m = where === undefined ? null : /column (\d+)/.exec(where);
  return m ? Number(m[1]) : undefined;
}

export function renderQueryError(q: string, message: string, column: number | undefined): SafeHtml {
  // A caret under the offending column; the query is shown as text in a <pre>, so it lines up.
  const caret = column !== undefined && column >= 1 && column <= q.length + 1 ? `${' '.repeat(column - 1)}^` : undefined;
  return html`<div class="error" role="alert"><strong>The query is malformed.</strong> ${message}
${caret !== undefined ? html`<pre class="mono">${q}\n${caret}</pre>` : ''}</div>`;
}

function searchForm(request: SearchRequest): SafeHtml {
  return html`<form class="inline" method="get" action="/ui/search">
<input type="search" name="q" value="${request.q}" size="60" aria-label="Search query" placeholder="port:22 service:ssh tag:dmz" autofocus>
<label>view <select name="view"><option value="latest"${request.view === 'latest' ? html` selected` : ''}>latest scan per host</option><option value="history"${request.view === 'history' ? html` selected` : ''}>all scans (history)</option></select></label>
<button type="submit">Search</button></form>
<p class="muted">Fields: port (a number, or * for any open port), service, product, version, cpe, script, tag, agent, group (the agent group a visit was scanned from), name (a scope DNS name that resolved to the host), ip (address or CIDR), ctime (&gt;, &gt;=, &lt;, &lt;=, DATE..DATE), screenshot (true: a web screenshot). Prefix <span class="mono">-</span> or NOT to negate, OR between terms, bare words search banners. Examples:
${EXAMPLES.map((e, i) => html`${i > 0 ? ' · ' : ''}<a class="mono" href="/ui/search?q=${encodeURIComponent(e)}">${e}</a>`)}</p>`;
}

function pageHref(request: SearchRequest, page: number): string {
  const params = new URLSearchParams({ q: request.q, view: request.view, page: String(page) });
  return `/ui/search?${params.toString()}`;
}

function exportHref(request: SearchRequest, format: 'json' | 'ndjson' | 'hosts'): string {
  const params = new URLSearchParams({ q: request.q, view: request.view, format });
  return `/ui/export?${params.toString()}`;
}

/**
 * When a search that says nothing about ports matches hosts with nothing open (on a sparse scope,
 * most of them: the empty search's first pages are the addresses that answered nothing), a line
 * with how many of them expose something and a link to just those (the query AND `port:*`).
 */
async function exposedShare(
  coordinator: Coordinator,
  request: SearchRequest,
  query: QueryNode | undefined,
  total: number,
): Promise<SafeHtml | ''> {
  if (total === 0 || /(^|[\s(-])port:/i.test(request.q)) return '';
  const anyPort: QueryNode = { type: 'anyPort' };
  const both: QueryNode = query === undefined ? anyPort : { type: 'and', children: [query, anyPort] };
  const exposed = (await coordinator.store.search(both, { limit: 1, offset: 0, view: request.view })).total;
  if (exposed === total) return '';
  const q = request.q.trim() === '' ? 'port:*' : `(${request.q.trim()}) port:*`;
  const href = `/ui/search?${new URLSearchParams({ q, view: request.view }).toString()}`;
  const latest = request.view === 'latest';
  return html`<p><a href="${href}"><strong>${formatCount(exposed)}</strong> of these ${latest ? 'hosts' : 'scans'} have open ports</a>; the other ${formatCount(total - exposed)} ${latest ? 'have none open in their latest scan' : 'found none open'}.</p>`;
}

/** The search page: the box, then a page of results or the parser's message with its column. */
export async function renderSearch(coordinator: Coordinator, request: SearchRequest): Promise<RenderedSearch> {
  let query: QueryNode | undefined;
  try {
    query = parseQuery(request.q);
  } catch (error) {
    if (!isPortbanditError(error, 'PB_ERR_QUERY')) throw error;
    return {
      status: 400,
      body: html`<h1>Search</h1>${searchForm(request)}${renderQueryError(request.q, error.message, queryErrorColumn(error.where))}`,
    };
  }
  const offset = (request.page - 1) * SEARCH_PAGE_SIZE;
  const result = await coordinator.store.search(query, { limit: SEARCH_PAGE_SIZE, offset, view: request.view });
  const pages = Math.max(1, Math.ceil(result.total / SEARCH_PAGE_SIZE));
  const first = result.total === 0 ? 0 : offset + 1;
  const last = offset + result.items.length;
  const apiQuery = new URLSearchParams({ q: request.q, view: request.view, format: 'ndjson' }).toString();
  const exposed = await exposedShare(coordinator, request, query, result.total);
  return {
    status: 200,
    body: html`<h1>Search</h1>${searchForm(request)}
<p><strong>${formatCount(result.total)}</strong> ${request.view === 'latest' ? 'hosts' : 'scans'} match${result.total > 0 ? html`; showing ${formatCount(first)}–${formatCount(last)}` : ''}.
Export all matches: <a href="${exportHref(request, 'json')}">JSON</a> · <a href="${exportHref(request, 'ndjson')}">NDJSON</a> · <a href="${exportHref(request, 'hosts')}">host list</a>
<span class="muted">(API: <span class="mono">GET /api/v1/search?${apiQuery}</span>)</span></p>${exposed}
<table><thead><tr><th>host</th><th>tags</th><th>open ports (service, product, version)</th><th>scanned</th><th>agent</th></tr></thead><tbody>
${
  result.items.length > 0
    ? result.items.map(
        (
          s,
        ) => html`<tr><td class="mono"><a href="${hostHref(s.ip)}">${s.ip}</a>${s.names !== undefined && s.names.length > 0 ? html`<div class="muted">${s.names.join(', ')}</div>` : ''}</td><td>${s.tags.map((t) => html`<a class="tag" href="/ui/search?q=${encodeURIComponent(`tag:${t}`)}">${t}</a>`)}</td>
<td>${openPortsCell(s)}</td><td class="mono">${request.view === 'history' ? html`<a href="${hostHref(s.ip)}?scan=${encodeURIComponent(s.scanId)}">${formatTime(s.finishedAt)}</a>` : formatTime(s.finishedAt)}</td><td class="mono">${s.agentId}${s.group !== undefined ? html` <a class="tag" href="/ui/search?${new URLSearchParams({ q: `group:${s.group}`, view: request.view }).toString()}" title="agent group (vantage point)">${s.group}</a>` : ''}</td></tr>`,
      )
    : html`<tr><td colspan="5" class="muted">No matches.</td></tr>`
}
</tbody></table>
<nav class="pager" aria-label="pages">${request.page > 1 ? html`<a href="${pageHref(request, request.page - 1)}">← previous</a>` : html`<span class="muted">← previous</span>`}
<span>page ${request.page} of ${pages}</span>
${request.page < pages ? html`<a href="${pageHref(request, request.page + 1)}">next →</a>` : html`<span class="muted">next →</span>`}</nav>`,
  };
}
