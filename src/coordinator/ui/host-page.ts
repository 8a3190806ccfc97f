import { PortbanditError, PortRanges } from '../../core/index.js';
import type { ScanDocument, ScannedPort, ScriptResult } from '../../store/index.js';
import { type Coordinator, normalizeIp } from '../coordinator.js';
import { type ScanDiff, diffScans } from '../diff.js';
import { formatCount, formatTime, hostHref } from './format.js';
import { type SafeHtml, html } from './html.js';
import { renderScanScreenshots } from './screenshots-page.js';

/** Scans listed in a host's history on its page (the API pages further). */
export const HOST_HISTORY_LIMIT = 100;

/** What the host page was asked for: a scan to show, and two scans to diff. */
export interface HostRequest {
  readonly ip: string;
  readonly scan?: string;
  readonly from?: string;
  readonly to?: string;
}

/** Flatten structured NSE output (ssl-cert's subject, issuer, validity, ...) into dotted keys. */
export function flattenFields(value: unknown, prefix = '', out: Array<[string, string]> = [], depth = 0): Array<[string, string]> {
  if (out.length >= 60) return out;
  if (value === null || typeof value !== 'object') {
    out.push([prefix || 'value', String(value)]);
  } else if (depth >= 5) {
    out.push([prefix, JSON.stringify(value)]);
  } else {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) flattenFields(v, prefix ? `${prefix}.${k}` : k, out, depth + 1);
  }
  return out;
}

function renderScript(script: ScriptResult): SafeHtml {
  const fields = script.fields !== undefined ? flattenFields(script.fields) : [];
  return html`<div><strong class="mono">${script.id}</strong>
${fields.length > 0 ? html`<dl class="kv">${fields.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>` : ''}
${script.output !== '' ? html`<pre>${script.output}</pre>` : ''}</div>`;
}

function renderPortRow(p: ScannedPort): SafeHtml {
  return html`<tr><td class="num mono">${p.port}/${p.protocol ?? 'tcp'}</td><td>${p.state}</td><td>${p.service ?? (p.silent === true ? html`<span class="muted" title="open; nmap -sV got no answer within its time-out (not run again until the policy's recheck cycle)">silent</span>` : '')}</td><td>${p.product ?? ''}</td><td>${p.version ?? ''}${p.extrainfo !== undefined ? html` <span class="muted">(${p.extrainfo})</span>` : ''}</td>
<td class="mono">${p.cpes.map((c) => html`<div>${c}</div>`)}</td><td>${p.scripts.map(renderScript)}</td></tr>`;
}

/** Ports a visit probed: the size of its probed spec. */
function probedCount(scan: ScanDocument): number {
  return scan.probedPorts === '' ? 0 : PortRanges.parse(scan.probedPorts).size;
}

function renderScan(scan: ScanDocument, latest: boolean): SafeHtml {
  const shown = scan.ports.filter((p) => p.state === 'open');
  const hidden = scan.ports.length - shown.length;
  const host = scan.host && Object.keys(scan.host).length > 0 ? flattenFields(scan.host) : [];
  const rounds = scan.rounds?.length ?? 1;
  const timings = Object.entries(scan.timings)
    .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
    .join(', ');
  return html`<h2>${latest ? 'Latest visit' : 'Visit'} <span class="mono muted">${scan.scanId}</span>${scan.incomplete !== undefined ? html` <span class="tag partial">partial</span>` : ''}</h2>
${scan.incomplete !== undefined ? html`<div class="error"><strong>Partial visit:</strong> ${scan.incomplete}. Open ports are still open, but their service detail may be missing${scan.unknownPorts ? html`; the state of <span class="mono">${scan.unknownPorts}</span> is unknown (not closed)` : ''}.</div>` : ''}
<p>Finished <span class="mono">${formatTime(scan.finishedAt)}</span> (started ${formatTime(scan.startedAt)}) by agent <span class="mono">${scan.agentId}</span>${scan.group !== undefined ? html` from agent group ${groupTag(scan.group)}` : ''}, cycle ${scan.cycle}, preflight ${scan.preflight}, ${rounds} round${rounds === 1 ? '' : 's'};
${scan.names !== undefined && scan.names.length > 0 ? html`scanned as ${nameLinks(scan.names)}; ` : ''}probed ${formatCount(probedCount(scan))} port(s): <span class="mono">${scan.probedPorts === '' ? 'none' : scan.probedPorts.length > 200 ? `${scan.probedPorts.slice(0, 200)}…` : scan.probedPorts}</span>.${timings !== '' ? html` <span class="muted">Times: ${timings}.</span>` : ''}</p>
${host.length > 0 ? html`<dl class="kv">${host.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>` : ''}
<table><thead><tr><th class="num">port</th><th>state</th><th>service</th><th>product</th><th>version</th><th>CPE</th><th>scripts</th></tr></thead><tbody>
${shown.length > 0 ? shown.map(renderPortRow) : html`<tr><td colspan="7" class="muted">No open ports.</td></tr>`}
</tbody></table>
${hidden > 0 ? html`<details><summary class="muted">${hidden} probed port(s) not open</summary><table><tbody>${scan.ports.filter((p) => p.state !== 'open').map(renderPortRow)}</tbody></table></details>` : ''}`;
}

/** A visit's scope names, each a link to the search for it. */
function nameLinks(names: readonly string[]): SafeHtml {
  return html`${names.map((n, i) => html`${i > 0 ? ', ' : ''}<a class="mono" href="/ui/search?q=${encodeURIComponent(`name:${n}`)}">${n}</a>`)}`;
}

/** The agent of a visit, with its vantage group (a link to the group's visits) when it has one. */
function agentCell(scan: ScanDocument): SafeHtml {
  return html`<span class="mono">${scan.agentId}</span>${scan.group !== undefined ? html` ${groupTag(scan.group)}` : ''}`;
}

/** An agent group as a tag linking to the visits scanned from it. */
function groupTag(group: string): SafeHtml {
  return html`<a class="tag" href="/ui/search?${new URLSearchParams({ q: `group:${group}`, view: 'history' }).toString()}" title="agent group (vantage point)">${group}</a>`;
}

function describeService(s: { service?: string; product?: string; version?: string }): string {
  return [s.service, s.product, s.version].filter((x) => x !== undefined && x !== '').join(' ') || '(unknown)';
}

function renderDiff(diff: ScanDiff, from: ScanDocument | undefined, to: ScanDocument): SafeHtml {
  const none = diff.opened.length + diff.closed.length + diff.changed.length === 0;
  return html`<h2>Changes ${from ? html`from <span class="mono">${formatTime(from.finishedAt)}</span> to` : 'up to'} <span class="mono">${formatTime(to.finishedAt)}</span></h2>
${from === undefined ? html`<p class="muted">The first scan of this host${none ? ' found no open port' : ': every open port is new'}.</p>` : ''}
${
  none
    ? from === undefined
      ? ''
      : html`<p>No changes: the same ports are open with the same services.</p>`
    : html`<table><thead><tr><th>change</th><th class="num">port</th><th>before</th><th>after</th></tr></thead><tbody>
${diff.opened.map((p) => html`<tr><td class="opened">opened</td><td class="num mono">${p.port}</td><td class="muted">—</td><td>${describeService(p)}</td></tr>`)}
${diff.closed.map((p) => html`<tr><td class="closed">closed</td><td class="num mono">${p.port}</td><td>${describeService(p)}</td><td class="muted">—</td></tr>`)}
${diff.changed.map((c) => html`<tr><td>changed</td><td class="num mono">${c.port}</td><td>${describeService(c.before)}</td><td>${describeService(c.after)}</td></tr>`)}
</tbody></table>`
}
<p class="muted">Ports the newer visit did not probe, or whose state it could not observe (a time-out), are unknown, not closed.</p>`;
}

function renderHistory(
  ip: string,
  items: readonly ScanDocument[],
  total: number,
  shown: ScanDocument,
  from: ScanDocument | undefined,
  to: ScanDocument,
): SafeHtml {
  return html`<h2>History <span class="muted">(${total} scan${total === 1 ? '' : 's'}${total > items.length ? `, newest ${items.length} shown` : ''})</span></h2>
<form method="get" action="${hostHref(ip)}">
<table><thead><tr><th>from</th><th>to</th><th>finished</th><th class="num">open</th><th class="num">probed</th><th>agent</th><th>scan</th></tr></thead><tbody>
${items.map((s) => {
  const open = s.ports.filter((p) => p.state === 'open').length;
  return html`<tr><td><input type="radio" name="from" value="${s.scanId}" aria-label="diff from ${s.scanId}"${from?.scanId === s.scanId ? html` checked` : ''}></td>
<td><input type="radio" name="to" value="${s.scanId}" aria-label="diff to ${s.scanId}"${to.scanId === s.scanId ? html` checked` : ''}></td>
<td class="mono">${formatTime(s.finishedAt)}${s.incomplete !== undefined ? html` <span class="tag partial" title="${s.incomplete}">partial</span>` : ''}</td><td class="num">${open}</td><td class="num">${formatCount(probedCount(s))}</td><td>${agentCell(s)}</td>
<td class="mono">${s.scanId === shown.scanId ? html`<strong>${s.scanId}</strong> (shown)` : html`<a href="${hostHref(ip)}?scan=${encodeURIComponent(s.scanId)}">${s.scanId}</a>`}</td></tr>`;
})}
</tbody></table>
<p><button type="submit">Compare the selected scans</button></p></form>`;
}

/** The host page: the shown scan (latest by default), its changes, and the history to diff from; `controls` (the rescan button) go under the title. */
export async function renderHost(coordinator: Coordinator, request: HostRequest, controls?: (ip: string) => SafeHtml): Promise<SafeHtml> {
  let ip: string;
  try {
    ip = normalizeIp(request.ip);
  } catch {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 or IPv6 address, got ${JSON.stringify(request.ip)}`, { where: 'ip' });
  }
  const store = coordinator.store;
  const get = async (id: string, where: string): Promise<ScanDocument> => {
    const scan = await store.getScan(id);
    if (!scan || scan.ip !== ip) throw new PortbanditError('PB_ERR_NOT_FOUND', `no scan ${JSON.stringify(id)} of ${ip}`, { where });
    return scan;
  };
  const [latest, history] = await Promise.all([store.getLatestScan(ip), store.hostHistory(ip, { limit: HOST_HISTORY_LIMIT })]);
  if (!latest) throw new PortbanditError('PB_ERR_NOT_FOUND', `${ip} has never been scanned`, { where: 'ip' });
  const shown = request.scan !== undefined ? await get(request.scan, 'scan') : latest;
  // The diff defaults to the shown scan against the one before it, like the API's diff route.
  const to = request.to !== undefined ? await get(request.to, 'to') : shown;
  let from: ScanDocument | undefined;
  if (request.from !== undefined) from = await get(request.from, 'from');
  else from = history.items.find((s) => s.finishedAt < to.finishedAt || (s.finishedAt === to.finishedAt && s.scanId < to.scanId));
  // Compare in time order whichever way round the operator picked them.
  const swap = from !== undefined && (from.finishedAt > to.finishedAt || (from.finishedAt === to.finishedAt && from.scanId > to.scanId));
  const [a, b] = swap ? [to, from] : [from, to];
  const diff = diffScans(a, b!);
  return html`<h1>Host <span class="mono">${ip}</span></h1>
${controls?.(ip) ?? ''}
<p>Tags: ${latest.tags.length > 0 ? latest.tags.map((t) => html`<a class="tag" href="/ui/search?q=${encodeURIComponent(`tag:${t}`)}">${t}</a>`) : html`<span class="muted">none</span>`}
· <a href="/ui/search?${new URLSearchParams({ q: `ip:${ip}`, view: 'history' }).toString()}">all scans in search</a>
${latest.names !== undefined && latest.names.length > 0 ? html`· DNS names (scope): ${nameLinks(latest.names)}` : ''}</p>
${renderScan(shown, shown.scanId === latest.scanId)}
${renderScanScreenshots(coordinator, shown)}
${renderDiff(diff, a, b!)}
${renderHistory(ip, history.items, history.total, shown, a, b!)}`;
}
