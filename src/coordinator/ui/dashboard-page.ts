import type { Coordinator } from '../coordinator.js';
import { VISITS_TITLE } from './agents-page.js';
import { renderBarChart, renderScansPerHourChart } from './charts.js';
import { formatAgo, formatCount, formatPercent, formatTime } from './format.js';
import { type SafeHtml, html } from './html.js';
import { parseQuery } from '../../store/index.js';

const HOURS = 24;

function tagLabel(key: string): string {
  return key === '' ? '(default)' : key;
}

/** What each policy's strategy learned, as a table and a chart of its top estimates. */
async function renderPolicies(coordinator: Coordinator): Promise<SafeHtml> {
  const estimates = new Map(coordinator.estimatedCoverage().map((e) => [e.tag, e.estimate]));
  const budgets = new Map(coordinator.budgets().map((b) => [b.tag, b]));
  const warnings: SafeHtml[] = [];
  const sections: SafeHtml[] = [];
  const rows: SafeHtml[] = [];
  for (const key of coordinator.policyKeys()) {
    const policy = coordinator.policy(key);
    if (!policy) continue;
    let learned: ReturnType<Coordinator['explain']> | undefined;
    try {
      learned = coordinator.explain(key, 10);
    } catch {
      // A policy whose strategy is not loaded yet has learned nothing to show.
    }
    const split = learned?.explanation.split;
    const b = budgets.get(key);
    if (b?.warning) warnings.push(html`<div class="error"><strong>${tagLabel(key)}:</strong> ${b.warning}</div>`);
    const budgetText =
      b?.rate !== undefined
        ? `${formatCount(Math.floor(b.budget))} (from ${formatCount(b.rate)} probes/s over ${formatCount(b.addresses)} addresses)`
        : formatCount(Math.floor(b?.budget ?? policy.budget));
    rows.push(html`<tr><td>${tagLabel(key)}</td><td class="mono">${policy.strategy}</td><td class="num">${budgetText}</td>
<td class="num">${split ? html`${split.mustHave} / ${split.fixed} / ${split.history} / ${split.learned} / ${split.exploration}` : '—'}</td>
<td class="num">${learned ? formatCount(learned.batches) : '—'}</td><td class="num">${learned ? formatCount(learned.learned) : '—'}</td>
<td class="num">${estimates.has(key) ? formatPercent(estimates.get(key)!) : '—'}</td></tr>`);
    const groups = (learned?.explanation.groups ?? []).filter((g) => g.top.length > 0).slice(0, 3);
    const notes = (learned?.explanation.notes ?? []).map((note) => html`<p class="muted">${note}</p>`);
    if (groups.length === 0 && notes.length > 0)
      sections.push(html`<div class="panel"><h3>${tagLabel(key)} · ${policy.strategy}</h3>${notes}</div>`);
    for (const [i, group] of groups.entries()) {
      const chart = await renderBarChart(
        group.top.map((p) => ({ label: String(p.port), value: p.estimate })),
        { xLabel: 'estimated P(open), %', what: 'estimates', percent: true },
      );
      sections.push(html`<div class="panel chart"><h3>${tagLabel(key)} · ${policy.strategy} · group ${group.group} <span class="muted">(${formatCount(group.observations)} observations)</span></h3>
<table><thead><tr><th class="num">port</th><th class="num">P(open)</th><th class="num">trials</th></tr></thead><tbody>
${group.top.map((p) => html`<tr><td class="num mono">${p.port}</td><td class="num">${formatPercent(p.estimate)}</td><td class="num">${p.trials !== undefined ? formatCount(p.trials) : '—'}</td></tr>`)}
</tbody></table>${chart}${i === 0 ? notes : ''}</div>`);
    }
  }
  return html`<h2>Scan policies per tag</h2>
${warnings}
<table><thead><tr><th>tag</th><th>strategy</th><th class="num" title="probes per host-visit">budget per visit</th><th class="num" title="must-have / fixed / history / learned / exploration probes of a typical host">budget split (must / fixed / history / learned / explore)</th><th class="num">batches</th><th class="num">results learned</th><th class="num" title="the strategy's own belief: the share of the open-port mass it estimates from what it has seen that fits in the budget; it cannot count ports it never saw open">model's belief</th></tr></thead>
<tbody>${rows}</tbody></table>
<p class="muted">"Model's belief" is what the strategy estimates its budget catches, from the ports it has seen open; it is not measured coverage and cannot count services on ports no probe has reached.</p>
<h2>What was learned (top ports per policy)</h2>
${sections.length > 0 ? html`<div class="grid2">${sections}</div>` : html`<p class="muted">Nothing learned yet: strategies learn from batches of finished host visits.</p>`}`;
}

/** `port:*`: hosts whose latest visit found a port open. */
const ANY_OPEN_PORT = parseQuery('port:*');

/** The dashboard: scope and cycle, throughput, agents, policies and what they learned, top ports and services. */
export async function renderDashboard(coordinator: Coordinator): Promise<SafeHtml> {
  const store = coordinator.store;
  const now = coordinator.now();
  const since = Math.floor(now / 3_600_000) * 3_600_000 - (HOURS - 1) * 3_600_000;
  const [counts, exposed, topPorts, topServices, perHour, trailingHour, leases, queued, agents] = await Promise.all([
    store.counts(),
    store.count(ANY_OPEN_PORT),
    store.topPorts({ limit: 15 }),
    store.topServices({ limit: 15 }),
    store.scansPerHour({ since, until: now + 1 }),
    // The last 60 minutes, not the hour buckets that start in them (that was the current clock
    // hour only: 108 "last hour" at 22:05 of 256 scans since 21:58).
    store.scansPerHour({ since: now - 3_600_000, until: now + 1 }),
    store.countLeases(),
    store.countQueuedWork(),
    coordinator.listAgents(),
  ]);
  const cycle = coordinator.progress();
  const lastHour = trailingHour.reduce((a, r) => a + r.scans, 0);
  const dayTotal = perHour.reduce((a, r) => a + r.scans, 0);
  const coverage = await coordinator.cycleCoverage();
  // A cycle is done when its visits are, not when its last address is handed out: a visit's later
  // rounds (the sweep of the rest of the port space) take most of a cycle's time.
  const finished = await coordinator.cycleVisitsFinished();
  const nextCycle = coordinator.nextCycleAt();
  const period = coordinator.periodSeconds();
  // Past its period a finished cycle still waits for the visits in flight (leasing.ts).
  const waitingFor = nextCycle !== undefined && nextCycle <= now ? await store.countLeases({ liveAt: now }) : 0;
  const nextLine =
    nextCycle === undefined
      ? ''
      : waitingFor > 0
        ? ` Finished; its period is over, and the next cycle starts once the ${formatCount(waitingFor)} visit${waitingFor === 1 ? '' : 's'} in flight ${waitingFor === 1 ? 'is' : 'are'} done.`
        : leases + queued > 0
          ? // Walked, but its visits' later rounds are still out (a sweep of the rest of the port space): not finished.
            ` Every address handed out; ${formatCount(leases)} visit${leases === 1 ? '' : 's'} in flight and ${formatCount(queued)} round${queued === 1 ? '' : 's'} queued before it is finished. The next cycle starts ${formatTime(nextCycle)} (the period${period !== undefined ? ` of ${formatCount(period)} s` : ''} is paced).`
          : ` Finished; the next cycle starts ${formatTime(nextCycle)} (the period${period !== undefined ? ` of ${formatCount(period)} s` : ''} is paced).`;
  const [hourChart, portChart, serviceChart, policies] = await Promise.all([
    // The window ends with the current hour, so the chart (and its cache entry) is stable within it.
    renderScansPerHourChart(perHour, since, since + HOURS * 3_600_000),
    renderBarChart(
      topPorts.map((p) => ({ label: String(p.port), value: p.hosts })),
      { xLabel: 'hosts with the port open', what: 'open ports' },
    ),
    renderBarChart(
      topServices.map((s) => ({ label: s.service, value: s.hosts })),
      { xLabel: 'hosts with the service', what: 'services' },
    ),
    renderPolicies(coordinator),
  ]);
  // A cycle over an empty snapshot has not begun: the first work request starts it over the
  // scope as it is then (cycle.ts), so its size is the current scope's, not the snapshot's 0.
  const notStarted = cycle.size === '0';
  const scopeSize = coordinator.addressSpace.size;
  const cycleLine = notStarted
    ? scopeSize > 0n
      ? `Cycle ${cycle.cycle} has not started: the first work request starts its walk over ${formatCount(scopeSize)} addresses (the scope minus the blocklist).`
      : `Cycle ${cycle.cycle} has not started: the scope is empty.`
    : `Cycle ${cycle.cycle} started ${formatTime(cycle.startedAt)}: ${formatCount(cycle.position)} of ${formatCount(cycle.size)} positions walked, ${formatCount(cycle.dispensed)} handed out, ${formatCount(cycle.skipped)} skipped; ${formatCount(cycle.completed)} earlier cycle${cycle.completed === 1 ? '' : 's'} completed.${nextLine}`;
  const card = (label: string, value: string | SafeHtml, title = ''): SafeHtml =>
    html`<div class="card" title="${title}"><div class="label">${label}</div><div class="value">${value}</div></div>`;
  return html`<h1>Dashboard</h1>
<div class="cards">
${card('Scope addresses', formatCount(coordinator.addressSpace.size), 'addresses in scope minus blocklist')}
${notStarted ? card(`Cycle ${cycle.cycle}`, 'not started', `the first work request starts a walk over ${formatCount(scopeSize)} addresses`) : card(`Cycle ${cycle.cycle} done`, formatPercent(Math.min(1, finished / Math.max(1, Number(cycle.size)))), `${formatCount(finished)} of ${cycle.size} visits finished (no round left to scan); ${cycle.position} of ${cycle.size} positions walked; started ${formatTime(cycle.startedAt)}`)}
${card('Scans last hour', formatCount(lastHour))}
${card(`Scans last ${HOURS} h`, formatCount(dayTotal))}
${card('Hosts with results', formatCount(counts.hosts))}
${card('Hosts with open ports', html`<a href="/ui/search?q=port%3A*">${formatCount(exposed)}</a>`, 'hosts whose latest visit found a port open (search port:*)')}
${card('Open ports (latest)', formatCount(counts.openPorts))}
${card('Leases in flight', formatCount(leases))}
${card('Queued work', formatCount(queued), 'manual rescans, follow-ups and expired leases, served before the cycle')}
</div>
<p class="muted cycle">${cycleLine}</p>
<div class="grid2">
<div class="panel chart"><h2>Scans per hour (last ${HOURS} h, UTC)</h2>${hourChart}</div>
<div class="panel"><h2>Cycle coverage per tag</h2>
<table><thead><tr><th>tag</th><th class="num">handed out</th><th class="num">scanned this cycle</th><th class="num" title="visits with no round left to scan (scanned counts a visit at its first round)">finished</th><th class="num">addresses</th><th class="num">coverage</th></tr></thead><tbody>
${coverage.length > 0 ? coverage.map((c) => html`<tr><td>${c.tag === '' ? '(untagged)' : c.tag}</td><td class="num">${formatCount(c.handedOut)}</td><td class="num">${formatCount(c.scanned)}</td><td class="num">${formatCount(c.finished)}</td><td class="num">${formatCount(c.addresses)}</td><td class="num">${formatPercent(c.fraction)}</td></tr>`) : html`<tr><td colspan="6" class="muted">The scope is empty.</td></tr>`}
</tbody></table></div>
</div>
<h2>Agents</h2>
<table><thead><tr><th>name</th><th>id</th><th>version</th><th>last seen</th><th class="num">in flight</th><th class="num" title="${VISITS_TITLE}">host visits last hour</th><th class="num" title="${VISITS_TITLE}">host visits total</th><th class="num" title="every accepted round: a visit's first round and its follow-up rounds">rounds total</th></tr></thead><tbody>
${agents.length > 0 ? agents.map((a) => html`<tr><td>${a.name}</td><td class="mono">${a.id}</td><td class="mono">${a.version ?? '—'}</td><td title="${formatTime(a.lastSeenAt)}">${formatAgo(a.lastSeenAt, now)}</td><td class="num">${formatCount(a.inFlight)}</td><td class="num">${formatCount(a.visitsLastHour)}</td><td class="num">${formatCount(a.counters['visits'] ?? 0)}</td><td class="num">${formatCount(a.counters['results'] ?? 0)}</td></tr>`) : html`<tr><td colspan="8" class="muted">No agents registered (portbandit token create --agent NAME).</td></tr>`}
</tbody></table>
${policies}
<h2>Top open ports and services (latest scan per host)</h2>
<div class="grid2">
<div class="panel chart"><h3>Ports</h3>${portChart}
${topPorts.length > 0 ? html`<p class="muted">${topPorts.slice(0, 15).map((p, i) => html`${i > 0 ? ' · ' : ''}<a href="/ui/search?q=${encodeURIComponent(`port:${p.port}`)}">${p.port}</a>`)}</p>` : ''}</div>
<div class="panel chart"><h3>Services</h3>${serviceChart}
${topServices.length > 0 ? html`<p class="muted">${topServices.map((s, i) => html`${i > 0 ? ' · ' : ''}<a href="/ui/search?q=${encodeURIComponent(`service:"${s.service.replace(/["\\]/g, (c) => '\\' + c)}"`)}">${s.service}</a>`)}</p>` : ''}</div>
</div>`;
}
