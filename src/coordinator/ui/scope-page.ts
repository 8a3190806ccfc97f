import type { ScopeListName } from '../../store/index.js';
import type { Coordinator } from '../coordinator.js';
import { asDnsName } from '../names.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { type FormContext, messages, pager, postForm } from './forms.js';
import { type SafeHtml, html } from './html.js';

/** Entries per page of the scope table. */
export const SCOPE_PAGE_SIZE = 100;

/** What the scope page shows: which list, which page, and the add form's values after an error. */
export interface ScopeRequest {
  readonly list: ScopeListName;
  readonly page: number;
  readonly range?: string;
  readonly tags?: string;
  readonly text?: string;
}

/** A DNS-name entry's cell: the name, and what it resolved to last (each address marked when the blocklist takes it out). */
function nameCell(coordinator: Coordinator, name: string): SafeHtml {
  const resolver = coordinator.nameResolverDescription;
  const addresses = coordinator.addressesOfName(name);
  const resolved =
    resolver === undefined
      ? html`<div class="muted">not resolved by this process (the serving coordinator resolves names each cycle)</div>`
      : addresses === undefined
        ? html`<div class="muted">not resolved yet (${resolver})</div>`
        : addresses.length === 0
          ? html`<div class="muted">resolves to no address (${resolver})</div>`
          : html`<div class="resolved">resolves to <span aria-label="addresses of ${name}">${addresses.map(
              (ip, i) =>
                html`${i > 0 ? ', ' : ''}<a class="mono" href="${hostHref(ip)}">${ip}</a>${coordinator.lookup(ip) === undefined ? html` <span class="tag partial">blocklisted</span>` : ''}`,
            )}</span> <span class="muted">(${resolver}, at the last resolution)</span></div>`;
  return html`<span class="mono">${name}</span> <span class="tag">DNS name</span>${resolved}`;
}

function listHref(list: ScopeListName, page = 1): string {
  return `/ui/admin/scope?${new URLSearchParams({ list, page: String(page) }).toString()}`;
}

/** The scope and blocklist page: entries (paged) with remove buttons, add, bulk remove, import, export. */
export async function renderScopePage(coordinator: Coordinator, request: ScopeRequest, ctx: FormContext): Promise<SafeHtml> {
  const { list } = request;
  const listing = await coordinator.store.listScope(list);
  const pages = Math.max(1, Math.ceil(listing.entries.length / SCOPE_PAGE_SIZE));
  const page = Math.min(request.page, pages);
  const shown = listing.entries.slice((page - 1) * SCOPE_PAGE_SIZE, page * SCOPE_PAGE_SIZE);
  const other: ScopeListName = list === 'scope' ? 'blocklist' : 'scope';
  const action = (what: string) => `/ui/admin/scope/${what}?list=${list}`;
  return html`<h1>${list === 'scope' ? 'Scope' : 'Blocklist'}</h1>
<p><strong>${list === 'scope' ? 'Scope' : 'Blocklist'}</strong> · <a href="${listHref(other)}">${other === 'scope' ? 'Scope' : 'Blocklist'}</a>
· <a href="/ui/admin/scope/export?list=${list}">export as text</a> (<span class="mono">ip_or_cidr,tag1,tag2</span>)</p>
${messages(ctx)}
<p>${formatCount(listing.entries.length)} entr${listing.entries.length === 1 ? 'y' : 'ies'} (list version ${listing.version}); the coordinator scans
${formatCount(String(coordinator.addressSpace.size))} address(es): the scope less the blocklist${list === 'scope' ? ' (a DNS name counts with the addresses it resolved to, each cycle)' : ''}.</p>
<div class="grid2">
<div class="panel"><h2>Add an entry</h2>
${postForm(
  action('add'),
  ctx.csrf,
  html`<label>${list === 'scope' ? 'Address, CIDR, first-last range or DNS name' : 'Address, CIDR or first-last range'} <input name="range" required maxlength="260" size="28" value="${request.range ?? ''}" placeholder="${list === 'scope' ? '198.18.0.0/24 or web.lab.example' : '198.18.0.0/24'}"></label>
<label>Tags <input name="tags" maxlength="600" size="24" value="${request.tags ?? ''}" placeholder="dmz, web"></label>
<button type="submit">Add</button>`,
  { className: 'stack', label: `add to the ${list}` },
)}
<h2>Remove several</h2>
${postForm(
  action('remove'),
  ctx.csrf,
  html`<label>Ranges, one per line <textarea name="ranges" rows="4" cols="40" placeholder="198.18.0.0/24"></textarea></label><button type="submit">Remove</button>`,
  { className: 'stack', label: `remove from the ${list}` },
)}</div>
<div class="panel"><h2>Import</h2>
${postForm(
  action('import'),
  ctx.csrf,
  html`<p class="muted">Natlas's format: one <span class="mono">ip_or_cidr,tag1,tag2</span> per line; blank lines and <span class="mono">#</span> comments are ignored. A file, or paste below.</p>
<label>File <input type="file" name="file" accept=".txt,.csv,text/plain"></label>
<label>Text <textarea name="text" rows="5" cols="40" placeholder="198.18.0.0/24,dmz">${request.text ?? ''}</textarea></label>
<label class="check"><input type="checkbox" name="replace" value="1"> Replace the whole ${list} (otherwise entries are added)</label>
<button type="submit">Import</button>`,
  { className: 'stack', multipart: true, label: `import into the ${list}` },
)}</div></div>
<h2>Entries</h2>
<table><thead><tr><th>entry</th><th>tags</th><th>added</th><th></th></tr></thead><tbody>
${
  shown.length > 0
    ? shown.map(
        (
          e,
        ) => html`<tr>${asDnsName(e.range) === e.range ? html`<td>${nameCell(coordinator, e.range)}</td>` : html`<td class="mono">${e.range}</td>`}<td>${e.tags.map((t) => html`<span class="tag">${t}</span>`)}</td><td class="mono">${formatTime(e.addedAt)}</td>
<td>${postForm(action('remove'), ctx.csrf, html`<input type="hidden" name="ranges" value="${e.range}"><button type="submit" class="danger" aria-label="remove ${e.range}">Remove</button>`, { className: 'row' })}</td></tr>`,
      )
    : html`<tr><td colspan="4" class="muted">The ${list} is empty.</td></tr>`
}
</tbody></table>
${pages > 1 ? pager(page, pages, (p) => listHref(list, p), ['← previous', 'next →']) : ''}`;
}
