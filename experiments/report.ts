import {
  chartAcrossRecordings,
  chartCoverageVsBudget,
  chartEpochsToDetect,
  chartLearningCurves,
  chartPerTag,
  chartRegret,
} from './charts.js';
import { escapeHtml, formatEstimate, formatNumber, renderLegend, renderPage, renderTable } from './html.js';
import { ALL_TAGS, COVERAGE_TARGET, type ExperimentSummary } from './summarise.js';
import { formatExperimentSpec } from './spec.js';
import type { ExperimentSpec } from './types.js';

function probesTo(summary: ExperimentSummary, recording: string, strategy: string, tag: string): string {
  const row = summary.probesToTarget.find((p) => p.recording === recording && p.strategy === strategy && p.tag === tag);
  if (row === undefined) return '–';
  if (row.probes.value === null) return `> ${summary.budgets.at(-1)}`;
  return formatEstimate(row.probes, 'fixed1');
}

function detectionMean(summary: ExperimentSummary, recording: string, strategy: string, budget: number, tag = ALL_TAGS): string {
  const row = summary.detection.find((d) => d.recording === recording && d.strategy === strategy && d.budget === budget && d.tag === tag);
  if (row === undefined || row.count === 0) return '–';
  // A mean over detected services only; the share found keeps "never found" from looking fast.
  return `${formatEstimate(row.mean, 'fixed2')}<span class="ci">${formatNumber(row.detectedShare.value, 'percent')} found</span>`;
}

/** Rows of the headline table for one recording at one budget (all hosts). */
export function headlineTable(summary: ExperimentSummary, recording: string, budget = summary.focusBudget): string {
  const rows = summary.rows
    .filter((r) => r.recording === recording && r.budget === budget && r.tag === ALL_TAGS)
    .map((r) => [
      escapeHtml(r.strategy) + (r.strategy === summary.baseline ? ' <span class="ci">(baseline)</span>' : ''),
      String(r.budget),
      formatEstimate(r.coverage, 'percent'),
      formatEstimate(r.coverageDiff, 'points', true),
      formatEstimate(r.precision, 'percent'),
      formatEstimate(r.probesPerHost, 'fixed1'),
      formatEstimate(r.missedPerHost, 'fixed3'),
      probesTo(summary, recording, r.strategy, ALL_TAGS),
      detectionMean(summary, recording, r.strategy, budget),
    ]);
  return renderTable(
    [
      'strategy',
      'budget',
      'coverage',
      'Δ coverage',
      'precision',
      'probes / host-epoch',
      'missed / host-epoch',
      `probes to ${COVERAGE_TARGET * 100}%`,
      'epochs to detect',
    ],
    rows,
  );
}

/** Every budget, all hosts. */
function budgetTable(summary: ExperimentSummary, recording: string): string {
  const rows = summary.rows
    .filter((r) => r.recording === recording && r.tag === ALL_TAGS)
    .map((r) => [
      escapeHtml(r.strategy),
      String(r.budget),
      formatEstimate(r.coverage, 'percent'),
      formatEstimate(r.coverageDiff, 'points', true),
      formatEstimate(r.precision, 'percent'),
      formatEstimate(r.precisionDiff, 'points', true),
      formatEstimate(r.probesPerHost, 'fixed1'),
      formatEstimate(r.missedPerHost, 'fixed3'),
    ]);
  return renderTable(
    ['strategy', 'budget', 'coverage', 'Δ coverage', 'precision', 'Δ precision', 'probes / host-epoch', 'missed / host-epoch'],
    rows,
  );
}

/** Per scope tag at the focus budget. */
export function tagTable(summary: ExperimentSummary, recording: string, budget = summary.focusBudget): string {
  const rows = summary.rows
    .filter((r) => r.recording === recording && r.budget === budget && r.tag !== ALL_TAGS)
    .map((r) => [
      escapeHtml(r.tag),
      escapeHtml(r.strategy),
      formatNumber(r.hosts, 'fixed1'),
      formatEstimate(r.coverage, 'percent'),
      formatEstimate(r.coverageDiff, 'points', true),
      formatEstimate(r.precision, 'percent'),
      formatEstimate(r.missedPerHost, 'fixed3'),
      probesTo(summary, recording, r.strategy, r.tag),
      detectionMean(summary, recording, r.strategy, budget, r.tag),
    ]);
  return renderTable(
    [
      'tag',
      'strategy',
      'hosts / seed',
      'coverage',
      'Δ coverage',
      'precision',
      'missed / host-epoch',
      `probes to ${COVERAGE_TARGET * 100}%`,
      'epochs to detect',
    ],
    rows,
  );
}

/** Where a spec's recordings came from, in words. */
function describeRecordings(spec: ExperimentSpec): string {
  const items = spec.recordings.map((r) =>
    r.kind === 'file'
      ? `<li><b>${escapeHtml(r.name)}</b>: recording file <code>${escapeHtml(r.path)}</code></li>`
      : `<li><b>${escapeHtml(r.name)}</b>: generated profile <code>${escapeHtml(r.profile)}</code>, ${r.hosts} hosts, ${r.epochs} epochs, generator seed ${r.seed === null ? '= the cell seed' : escapeHtml(r.seed)}</li>`,
  );
  return `<ul>${items.join('')}</ul>`;
}

/**
 * The experiment report: one self-contained HTML page (inline SVG charts rendered in Node, no
 * scripts, no network) with the headline table, per-recording charts and tables, and the exact
 * spec, seeds and software version that produced it.
 */
export function renderReport(spec: ExperimentSpec, summary: ExperimentSummary): string {
  const parts: string[] = [];
  parts.push(`<h1>Experiment: ${escapeHtml(spec.name)}</h1>`);
  if (spec.description) parts.push(`<p>${escapeHtml(spec.description)}</p>`);
  parts.push(
    `<p class="meta">portbandit ${escapeHtml(summary.version)} · ${spec.recordings.length} recording(s) × ${spec.strategies.length} strategies × ${spec.budgets.length} budgets × ${spec.seeds.length} seeds · baseline <b>${escapeHtml(spec.baseline)}</b> · ${Math.round(summary.confidence * 100)}% bootstrap intervals from ${summary.replicates} replicates (seed "${escapeHtml(summary.bootstrapSeed)}"), hosts resampled within seeds and seeds resampled; differences are paired (same hosts, same seeds).</p>`,
  );
  parts.push(renderLegend(summary.strategies, 'strategies:'));
  parts.push('<h2 id="headline">Headline</h2>');
  parts.push(
    `<p>At the focus budget of <b>${summary.focusBudget}</b> probes per host per epoch. Δ columns are paired differences against <b>${escapeHtml(summary.baseline)}</b> in percentage points. Coverage = services found / services present (pseudo-service hosts excluded); precision = services found / probes; missed = regret against an oracle that probes exactly the open ports; "epochs to detect" = mean epochs before a newly opened service is first found, among those found (with the share found before the end).</p>`,
  );
  parts.push(chartAcrossRecordings(summary));
  for (const rec of summary.recordings) {
    parts.push(`<h3>${escapeHtml(rec)}</h3>`);
    parts.push(headlineTable(summary, rec));
  }
  for (const rec of summary.recordings) {
    const id = `rec-${rec.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    parts.push(`<h2 id="${escapeHtml(id)}">Recording: ${escapeHtml(rec)}</h2>`);
    parts.push(renderLegend(summary.strategies));
    parts.push(
      `<div class="grid2">${[
        chartCoverageVsBudget(summary, rec),
        chartLearningCurves(summary, rec),
        chartPerTag(summary, rec),
        chartRegret(summary, rec),
        chartEpochsToDetect(summary, rec),
      ].join('\n')}</div>`,
    );
    parts.push('<h3>All budgets, all hosts</h3>');
    parts.push(budgetTable(summary, rec));
    parts.push(`<h3>Per scope tag, budget ${summary.focusBudget}</h3>`);
    parts.push(tagTable(summary, rec));
  }
  parts.push('<h2 id="reproduce">Reproduce</h2>');
  parts.push(
    `<p>Seeds: ${spec.seeds.map((s) => `<code>${escapeHtml(s)}</code>`).join(', ')}. Software: portbandit ${escapeHtml(summary.version)}. Recordings:</p>`,
  );
  parts.push(describeRecordings(spec));
  parts.push(
    '<p>Save the spec below as <code>experiment.json</code> and run <code>portbandit experiment experiment.json --out DIR</code>; every cell is deterministic in its spec and seed.</p>',
  );
  parts.push(`<pre id="spec">${escapeHtml(JSON.stringify(formatExperimentSpec(spec), null, 2))}</pre>`);
  return renderPage(`portbandit experiment: ${spec.name}`, parts.join('\n'));
}
