import type { Coordinator } from '../coordinator.js';
import { formatAgo, formatCount, formatTime } from './format.js';
import { type FormContext, messages, postForm } from './forms.js';
import { type SafeHtml, html } from './html.js';

/** What the agents' visit columns count (here and on the dashboard). */
export const VISITS_TITLE =
  'host visits this agent began; the follow-up rounds of a visit do not count again. The last hour: counted by this coordinator process since it started, before that the visits stored in the hour before it started (counted at its start, in 5-minute slices)';

/** A token just created: shown on this one response and never again (the store keeps a hash). */
export interface CreatedToken {
  readonly kind: 'agent' | 'admin';
  readonly id: string;
  readonly name: string;
  readonly token: string;
  /** The agent's groups (agents only). */
  readonly groups?: readonly string[];
}

function renderCreated(created: CreatedToken): SafeHtml {
  return html`<div class="notice created" role="status"><h2>${created.kind === 'agent' ? 'Agent' : 'Admin token'} <span class="mono">${created.name}</span> created</h2>
<p><strong>Copy the token now: it is shown this once.</strong> The coordinator keeps only its hash; a lost token is revoked and replaced.</p>
${created.groups !== undefined && created.groups.length > 0 ? html`<p>In group(s) ${created.groups.map((g) => html`<span class="tag">${g}</span>`)}.</p>` : ''}
<label>Token of <span class="mono">${created.id}</span> <input class="token mono" readonly value="${created.token}" size="60" aria-label="new token"></label>
${created.kind === 'agent' ? html`<p class="muted">Start the agent with <span class="mono">PORTBANDIT_TOKEN=… portbandit agent --coordinator URL</span>.</p>` : ''}</div>`;
}

/** Agents (registry, groups, create, remove) and admin tokens (list, create, revoke); `form`: the new-agent form's values after an error. */
export async function renderAgentsPage(
  coordinator: Coordinator,
  ctx: FormContext,
  created?: CreatedToken,
  form?: { name: string; groups: string },
): Promise<SafeHtml> {
  const [agents, admins] = await Promise.all([coordinator.listAgents(), coordinator.store.listAdminTokens()]);
  return html`<h1>Agents and tokens</h1>
${messages(ctx)}
${created !== undefined ? renderCreated(created) : ''}
<h2>Agents</h2>
<p class="muted">Groups are vantage points: a tag whose policy names groups is scanned only by agents of those groups. Blank: the agent belongs to no group.</p>
<table><thead><tr><th>id</th><th>name</th><th>groups</th><th>version</th><th>last seen</th><th class="num">in flight</th><th class="num" title="${VISITS_TITLE}">host visits, last hour</th><th>created</th><th></th></tr></thead><tbody>
${
  agents.length > 0
    ? agents.map(
        (a) => html`<tr><td class="mono">${a.id}</td><td>${a.name}</td>
<td>${postForm(
          '/ui/admin/agents/groups',
          ctx.csrf,
          html`<input type="hidden" name="id" value="${a.id}"><input name="groups" value="${a.groups.join(', ')}" maxlength="4160" placeholder="no group" aria-label="groups of agent ${a.name}"><button type="submit" aria-label="save the groups of agent ${a.name}">Save</button>`,
          { className: 'inline groups' },
        )}</td><td class="mono">${a.version ?? '—'}</td><td>${formatAgo(a.lastSeenAt, ctx.now)}</td><td class="num">${formatCount(a.inFlight)}</td><td class="num">${formatCount(a.visitsLastHour)}</td><td class="mono">${formatTime(a.createdAt)}</td>
<td>${postForm('/ui/admin/agents/delete', ctx.csrf, html`<input type="hidden" name="id" value="${a.id}"><button type="submit" class="danger" aria-label="remove agent ${a.name}">Remove</button>`, { className: 'row' })}</td></tr>`,
      )
    : html`<tr><td colspan="9" class="muted">No agents yet.</td></tr>`
}
</tbody></table>
${postForm('/ui/admin/agents', ctx.csrf, html`<label>New agent's name <input name="name" required maxlength="64" placeholder="scanner-dmz-1" value="${form?.name ?? ''}"></label><label>in groups <input name="groups" maxlength="4160" placeholder="internal, external" value="${form?.groups ?? ''}"></label><button type="submit">Create agent</button>`, { className: 'inline', label: 'new agent' })}
<h2>Admin tokens</h2>
<table><thead><tr><th>id</th><th>name</th><th>created</th><th></th></tr></thead><tbody>
${admins.map(
  (t) => html`<tr><td class="mono">${t.id}</td><td>${t.name}</td><td class="mono">${formatTime(t.createdAt)}</td>
<td>${postForm('/ui/admin/tokens/delete', ctx.csrf, html`<input type="hidden" name="id" value="${t.id}"><button type="submit" class="danger" aria-label="revoke admin token ${t.name}">Revoke</button>`, { className: 'row' })}</td></tr>`,
)}
</tbody></table>
<p class="muted">Revoking the token this browser signed in with signs it out.</p>
${postForm('/ui/admin/tokens', ctx.csrf, html`<label>New admin token's name <input name="name" required maxlength="64" placeholder="alice"></label><button type="submit">Create admin token</button>`, { className: 'inline', label: 'new admin token' })}`;
}
