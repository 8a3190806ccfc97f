import { listAlertRules, listDeadLetters } from '../alerts.js';
import type { Coordinator } from '../coordinator.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { type FormContext, messages, pager, postForm } from './forms.js';
import { type SafeHtml, html } from './html.js';

/** Dead letters per page of the alerts page. */
export const DEAD_LETTERS_PAGE_SIZE = 50;

/** The add form's values after an error. */
export interface AlertForm {
  readonly name?: string;
  readonly query?: string;
  readonly url?: string;
}

/** Alert rules (list, add, remove) and the dead letters of deliveries that failed every retry. */
export async function renderAlertsPage(
  coordinator: Coordinator,
  request: { page: number; form?: AlertForm },
  ctx: FormContext,
): Promise<SafeHtml> {
  const [rules, dead] = await Promise.all([listAlertRules(coordinator.store), listDeadLetters(coordinator.store)]);
  dead.sort((a, b) => b.failedAt - a.failedAt || (a.id < b.id ? 1 : -1));
  const pages = Math.max(1, Math.ceil(dead.length / DEAD_LETTERS_PAGE_SIZE));
  const page = Math.min(request.page, pages);
  const shown = dead.slice((page - 1) * DEAD_LETTERS_PAGE_SIZE, page * DEAD_LETTERS_PAGE_SIZE);
  const form = request.form ?? {};
  return html`<h1>Alerts</h1>
${messages(ctx)}
<p>A rule is an event query (as on the <a href="/ui/events">events page</a>); each new matching event is POSTed as JSON to the rule's webhook,
retried with back-off, and kept below as a dead letter when every attempt failed.</p>
<h2>Rules</h2>
<table><thead><tr><th>name</th><th>query</th><th>webhook</th><th>created</th><th></th></tr></thead><tbody>
${
  rules.length > 0
    ? rules.map(
        (
          r,
        ) => html`<tr><td class="mono">${r.name}</td><td class="mono"><a href="/ui/events?q=${encodeURIComponent(r.query)}">${r.query}</a></td><td class="mono">${r.url}</td><td class="mono">${formatTime(r.createdAt)}</td>
<td>${postForm('/ui/alerts/delete', ctx.csrf, html`<input type="hidden" name="name" value="${r.name}"><button type="submit" class="danger" aria-label="remove rule ${r.name}">Remove</button>`, { className: 'row' })}</td></tr>`,
      )
    : html`<tr><td colspan="5" class="muted">No alert rules.</td></tr>`
}
</tbody></table>
${postForm(
  '/ui/alerts',
  ctx.csrf,
  html`<label>Name <input name="name" required maxlength="64" size="14" value="${form.name ?? ''}" placeholder="rdp-in-dmz"></label>
<label>Event query <input name="query" required maxlength="4096" size="34" value="${form.query ?? ''}" placeholder="kind:service-new port:3389 tag:dmz"></label>
<label>Webhook URL <input name="url" required maxlength="2048" size="34" value="${form.url ?? ''}" placeholder="http://127.0.0.1:9000/portbandit"></label>
<button type="submit">Add rule</button>`,
  { className: 'inline', label: 'new alert rule' },
)}
<h2>Dead letters <span class="muted">(${formatCount(dead.length)})</span></h2>
<table><thead><tr><th>failed</th><th>rule</th><th>event</th><th>webhook</th><th class="num">attempts</th><th>last error</th></tr></thead><tbody>
${
  shown.length > 0
    ? shown.map(
        (d) => html`<tr><td class="mono">${formatTime(d.failedAt)}</td><td class="mono">${d.rule}</td>
<td>${d.event.kind} <a class="mono" href="${hostHref(d.event.ip)}">${d.event.ip}</a>${d.event.port !== undefined ? html` port <span class="mono">${d.event.port}</span>` : ''} <span class="muted">(${formatTime(d.event.at)})</span></td>
<td class="mono">${d.url}</td><td class="num">${d.attempts}</td><td>${d.error}</td></tr>`,
      )
    : html`<tr><td colspan="6" class="muted">No dead letters: every matching event was delivered.</td></tr>`
}
</tbody></table>
${pages > 1 ? pager(page, pages, (p) => `/ui/alerts?page=${p}`) : ''}`;
}
