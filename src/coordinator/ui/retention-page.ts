import { describeRetention, policyLabel } from '../admin-actions.js';
import { listAudit } from '../audit.js';
import type { Coordinator } from '../coordinator.js';
import { DEFAULT_POLICY_KEY } from '../policy.js';
import type { RetentionReport } from '../retention-runner.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { type FormContext, messages, postForm } from './forms.js';
import { type SafeHtml, html } from './html.js';

/** Drops listed on the page (the report samples up to 50). */
export const RETENTION_SAMPLE_SHOWN = 20;

/** The latest retention pass an admin ran (from the audit log), if any. */
async function lastAdminPass(coordinator: Coordinator): Promise<SafeHtml | string> {
  // The audit log is small (human changes); the newest entries come first.
  const { items } = await listAudit(coordinator.store, { offset: 0, limit: 10_000 });
  const last = items.find((e) => e.action === 'retention.run');
  if (!last)
    return html`<p class="muted">No pass has been run from the UI or the API yet (the background pass runs hourly when a rule can drop anything; it logs what it dropped).</p>`;
  return html`<p>Last pass run by an admin: <span class="mono">${formatTime(last.at)}</span> by ${last.actor.name} (${last.actor.via === 'ui' ? 'UI' : 'API'}): ${last.summary}.</p>`;
}

/** The rule each policy applies (a tag without one follows the default policy's). */
function rulesTable(coordinator: Coordinator): SafeHtml {
  return html`<table><thead><tr><th>policy</th><th>retention rule</th><th></th></tr></thead><tbody>
${coordinator.policyKeys().map((key) => {
  const rule = coordinator.policy(key)!.retention;
  const text =
    rule !== undefined
      ? describeRetention(rule)
      : key === DEFAULT_POLICY_KEY
        ? 'keep all'
        : html`<span class="muted">the default policy's</span>`;
  return html`<tr><td>${policyLabel(key)}</td><td>${text}</td><td><a href="/ui/admin/policies?tag=${encodeURIComponent(key === DEFAULT_POLICY_KEY ? '_default' : key)}">edit</a></td></tr>`;
})}
</tbody></table>`;
}

function reportSection(report: RetentionReport): SafeHtml {
  const shown = report.sample.slice(0, RETENTION_SAMPLE_SHOWN);
  return html`<p>A pass now would look at <strong>${formatCount(report.hosts)}</strong> host(s) with ${formatCount(report.visits)} visit(s):
keep <strong>${formatCount(report.kept)}</strong>, drop <strong class="${report.dropped > 0 ? 'closed' : ''}">${formatCount(report.dropped)}</strong>
(${formatCount(report.protectedVisits)} kept because an event or a lease in flight refers to them). Nothing has been deleted.</p>
<table><thead><tr><th>policy</th><th class="num">kept</th><th class="num">would drop</th></tr></thead><tbody>
${
  report.byPolicy.length > 0
    ? report.byPolicy.map(
        (p) =>
          html`<tr><td>${policyLabel(p.tag)}</td><td class="num">${formatCount(p.kept)}</td><td class="num">${formatCount(p.dropped)}</td></tr>`,
      )
    : html`<tr><td colspan="3" class="muted">No visits stored.</td></tr>`
}
</tbody></table>
<h3>First visits a pass would drop${report.dropped > shown.length ? html` <span class="muted">(${shown.length} of ${formatCount(report.dropped)})</span>` : ''}</h3>
<table><thead><tr><th>host</th><th>finished</th><th>tags</th><th>visit</th></tr></thead><tbody>
${
  shown.length > 0
    ? shown.map(
        (
          d,
        ) => html`<tr><td class="mono"><a href="${hostHref(d.ip)}">${d.ip}</a></td><td class="mono">${formatTime(d.finishedAt)}</td><td>${d.tags.map((t) => html`<span class="tag">${t}</span>`)}</td>
<td class="mono"><a href="${hostHref(d.ip)}?scan=${encodeURIComponent(d.scanId)}">${d.scanId}</a></td></tr>`,
      )
    : html`<tr><td colspan="4" class="muted">None: every visit is kept.</td></tr>`
}
</tbody></table>`;
}

/**
 * The retention page: each policy's rule, the dry-run report of a pass now (computed on each
 * visit of the page: it reads every host's history, and deletes nothing), the last pass an admin
 * ran, and the button that runs one.
 */
export async function renderRetentionPage(coordinator: Coordinator, report: RetentionReport, ctx: FormContext): Promise<SafeHtml> {
  return html`<h1>Retention</h1>
${messages(ctx)}
<p>Each policy's retention rule decides which visits of a host's history a pass keeps. Whatever the rule, a host's latest visit, its latest
answered visit, each agent group's latest answered visit (the baselines of the next visits) and every visit an event refers to are kept.
The coordinator applies the rules in the background (a pass each hour, 100 hosts per step) when one of them can drop anything.</p>
${rulesTable(coordinator)}
<h2>Dry run</h2>
${reportSection(report)}
<h2>Run a pass now</h2>
${await lastAdminPass(coordinator)}
${postForm(
  '/ui/admin/retention/run',
  ctx.csrf,
  html`<button type="submit" class="danger">Run a retention pass now</button> <span class="muted">Deletes the visits the rules drop (as in the dry run above, at the time of the pass); this cannot be undone. Recorded in the audit log.</span>`,
  { className: 'inline', label: 'run retention' },
)}
<p class="muted">API: <span class="mono">GET /api/v1/admin/retention</span> (dry run), <span class="mono">POST /api/v1/admin/retention/run</span>.</p>`;
}
