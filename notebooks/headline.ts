import {
  ALL_TAGS,
  COVERAGE_TARGET,
  type ExperimentSummary,
  type SummaryRow,
  chartAcrossRecordings,
  chartCoverageVsBudget,
  chartPerTag,
  escapeHtml,
  formatEstimate,
  renderLegend,
  renderPage,
  renderTable,
} from '../experiments/index.js';
import type { Notebook, NotebookInput } from './types.js';

function pct(v: number | null): string {
  return v === null ? '–' : `${(v * 100).toFixed(1)}%`;
}

function points(v: number | null): string {
  return v === null ? '–' : `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)} points`;
}

/** One sentence per strategy: its coverage against the baseline's, and whether the paired interval excludes zero. */
function compareSentence(summary: ExperimentSummary, row: SummaryRow, base: SummaryRow): string {
  const d = row.coverageDiff;
  if (d === null || d.value === null) return '';
  const level = Math.round(summary.confidence * 100);
  const verdict = d.low !== null && d.low > 0 ? 'more than' : d.high !== null && d.high < 0 ? 'less than' : 'no clear difference from';
  return `<li><b>${escapeHtml(row.strategy)}</b> finds ${pct(row.coverage.value)} of services, ${verdict} ${escapeHtml(base.strategy)}'s ${pct(base.coverage.value)} (${points(d.value)}, ${level}% paired interval [${points(d.low)}, ${points(d.high)}]), with ${row.probesPerHost.value?.toFixed(1) ?? '–'} probes per host-epoch.</li>`;
}

/** Rows: recording x tag; columns: each strategy's coverage at the focus budget, the best in bold. */
function tagPivot(summary: ExperimentSummary): string {
  const rows: string[][] = [];
  for (const rec of summary.recordings) {
    for (const tag of summary.tags[rec] ?? []) {
      const cells = summary.strategies.map((s) =>
        summary.rows.find((r) => r.recording === rec && r.tag === tag && r.strategy === s && r.budget === summary.focusBudget),
      );
      const best = Math.max(...cells.map((c) => c?.coverage.value ?? -1));
      rows.push([
        escapeHtml(rec),
        tag === ALL_TAGS ? '<i>all hosts</i>' : escapeHtml(tag),
        ...cells.map((c) => {
          const text = formatEstimate(c?.coverage, 'percent');
          return c?.coverage.value === best ? `<b>${text}</b>` : text;
        }),
      ]);
    }
  }
  return renderTable(['scope', 'tag', ...summary.strategies.map(escapeHtml)], rows);
}

function probesTable(summary: ExperimentSummary): string {
  const rows = summary.recordings.map((rec) => [
    escapeHtml(rec),
    '<i>all hosts</i>',
    ...summary.strategies.map((s) => {
      const p = summary.probesToTarget.find((x) => x.recording === rec && x.strategy === s && x.tag === ALL_TAGS);
      return p === undefined || p.probes.value === null ? `> ${summary.budgets.at(-1)}` : formatEstimate(p.probes, 'fixed1');
    }),
  ]);
  return renderTable(['scope', 'tag', ...summary.strategies.map(escapeHtml)], rows);
}

function render(input: NotebookInput): string {
  const { spec, summary, results } = input;
  const b = summary.focusBudget;
  const parts: string[] = [];
  parts.push('<h1>Headline: which strategy finds the most services per probe?</h1>');
  parts.push(
    `<p>This notebook reads the results of the experiment <b>${escapeHtml(spec.name)}</b> (${results.length} simulation cells: ${spec.recordings.length} scopes × ${spec.strategies.length} strategies × ${spec.budgets.length} budgets × ${spec.seeds.length} seeds, ${spec.recordings[0]?.kind === 'generated' ? `${spec.recordings[0].epochs} epochs` : 'recorded epochs'}) and compares the learning strategies with the fixed Natlas services list (<b>${escapeHtml(spec.baseline)}</b>) and nmap's top-k ranking, per scope and per scope tag. Every figure carries a ${Math.round(summary.confidence * 100)}% bootstrap interval (hosts resampled within seeds, seeds resampled, ${summary.replicates} replicates); differences are paired: every strategy was replayed on the very same hosts and seeds as the baseline.</p>`,
  );
  parts.push(renderLegend(summary.strategies, 'strategies:'));
  parts.push(chartAcrossRecordings(summary));
  parts.push(`<h2>Per scope, at ${b} probes per host per epoch</h2>`);
  for (const rec of summary.recordings) {
    const base = summary.rows.find((r) => r.recording === rec && r.strategy === summary.baseline && r.budget === b && r.tag === ALL_TAGS);
    if (base === undefined) continue;
    const others = summary.rows.filter(
      (r) => r.recording === rec && r.strategy !== summary.baseline && r.budget === b && r.tag === ALL_TAGS,
    );
    parts.push(`<h3>${escapeHtml(rec)}</h3>`);
    parts.push(`<ul>${others.map((r) => compareSentence(summary, r, base)).join('')}</ul>`);
    parts.push(renderLegend(summary.strategies));
    parts.push(`<div class="grid2">${chartCoverageVsBudget(summary, rec)}${chartPerTag(summary, rec)}</div>`);
  }
  parts.push(`<h2>Per tag, all scopes (coverage at ${b} probes; best in bold)</h2>`);
  parts.push(tagPivot(summary));
  parts.push(`<h2>Probes per host-epoch to reach ${COVERAGE_TARGET * 100}% coverage</h2>`);
  parts.push(
    `<p>Interpolated between the measured budgets (${summary.budgets.join(', ')}); "&gt; ${summary.budgets.at(-1)}" means no budget reached it.</p>`,
  );
  parts.push(probesTable(summary));
  parts.push('<h2>How to read this</h2>');
  parts.push(
    '<p>Coverage counts services (host, port) open in an epoch that the strategy probed in that epoch, over all epochs, excluding pseudo-service hosts (more than 1,000 open ports). A learning strategy starts knowing nothing about the scope, so its early epochs pull its overall coverage down; the learning curves in the full report show the per-epoch picture. Rerun with <code>portbandit experiment experiments/headline.json --out DIR</code> and <code>portbandit notebook headline --results DIR</code>.</p>',
  );
  parts.push(
    `<p class="meta">portbandit ${escapeHtml(summary.version)} · seeds ${spec.seeds.map(escapeHtml).join(', ')} · bootstrap seed "${escapeHtml(summary.bootstrapSeed)}"</p>`,
  );
  return renderPage(`portbandit notebook: headline (${spec.name})`, parts.join('\n'));
}

/** The headline comparison: adaptive vs the Natlas list vs top-k vs thompson, per scope and tag. */
export const headlineNotebook: Notebook = {
  name: 'headline',
  title: 'Headline comparison',
  description: 'Adaptive vs the fixed Natlas list vs top-k vs thompson, per scope and per tag, with paired intervals.',
  render,
};
