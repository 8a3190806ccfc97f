import { listAudit } from '../audit.js';
import type { Coordinator } from '../coordinator.js';
import { formatCount, formatTime } from './format.js';
import { pager } from './forms.js';
import { type SafeHtml, html } from './html.js';

/** Entries per page of the audit page. */
export const AUDIT_PAGE_SIZE = 50;

/** The audit log, newest first: every change made through the UI or the admin API. */
export async function renderAuditPage(coordinator: Coordinator, request: { page: number }): Promise<SafeHtml> {
  const { items, total } = await listAudit(coordinator.store, { offset: (request.page - 1) * AUDIT_PAGE_SIZE, limit: AUDIT_PAGE_SIZE });
  const pages = Math.max(1, Math.ceil(total / AUDIT_PAGE_SIZE));
  return html`<h1>Audit log</h1>
<p>Every change made through this UI or the admin API: who (the admin token's name and id; never the token), what, when. Newest first;
${formatCount(total)} entr${total === 1 ? 'y' : 'ies'}. <span class="muted">(API: <span class="mono">GET /api/v1/admin/audit?offset=0&amp;limit=50</span>.)</span></p>
<table><thead><tr><th>when</th><th>who</th><th>via</th><th>action</th><th>target</th><th>what</th></tr></thead><tbody>
${
  items.length > 0
    ? items.map(
        (
          e,
        ) => html`<tr><td class="mono">${formatTime(e.at)}</td><td>${e.actor.name} <span class="mono muted">${e.actor.id}</span></td><td>${e.actor.via === 'ui' ? 'UI' : 'API'}</td>
<td class="mono">${e.action}</td><td class="mono">${e.target}</td><td>${e.summary}</td></tr>`,
      )
    : html`<tr><td colspan="6" class="muted">No changes recorded yet.</td></tr>`
}
</tbody></table>
${pager(Math.min(request.page, pages), pages, (page) => `/ui/audit?page=${page}`)}`;
}
