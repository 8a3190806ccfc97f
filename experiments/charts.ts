import * as Plot from '@observablehq/plot';
import { colorScale, renderFigure, renderPlot } from './html.js';
import { ALL_TAGS, type ExperimentSummary } from './summarise.js';

/** Chart kinds of a report, in page order. */
export const chartKinds = ['coverage-vs-budget', 'learning-curve', 'per-tag', 'regret', 'epochs-to-detect'] as const;
export type ChartKind = (typeof chartKinds)[number];

const width = 540;
const height = 320;
const margins = { marginLeft: 56, marginBottom: 44, marginRight: 16, marginTop: 24 };

interface Point {
  strategy: string;
  x: number;
  value: number;
  low: number | null;
  high: number | null;
}

function finite(points: Point[]): Point[] {
  return points.filter((p) => Number.isFinite(p.value));
}

/** Lines with a shaded interval band, one per strategy. */
function lineWithBand(points: Point[], domain: readonly string[], x: Plot.ScaleOptions, y: Plot.ScaleOptions): string {
  const band = points.filter((p) => p.low !== null && p.high !== null);
  return renderPlot({
    width,
    height,
    ...margins,
    style: { fontSize: '11px' },
    x,
    y: { grid: true, ...y },
    color: colorScale(domain),
    marks: [
      Plot.areaY(band, { x: 'x', y1: 'low', y2: 'high', fill: 'strategy', fillOpacity: 0.16, curve: 'linear' }),
      Plot.lineY(points, { x: 'x', y: 'value', stroke: 'strategy', strokeWidth: 2 }),
      Plot.dot(points, { x: 'x', y: 'value', fill: 'strategy', r: 2.5 }),
    ],
  });
}

/** Coverage vs budget per strategy (all hosts), with bootstrap intervals. */
export function chartCoverageVsBudget(summary: ExperimentSummary, recording: string): string {
  const points = finite(
    summary.rows
      .filter((r) => r.recording === recording && r.tag === ALL_TAGS)
      .map((r) => ({
        strategy: r.strategy,
        x: r.budget,
        value: r.coverage.value ?? Number.NaN,
        low: r.coverage.low,
        high: r.coverage.high,
      })),
  );
  const svg = lineWithBand(
    points,
    summary.strategies,
    { type: 'log', label: 'budget (probes per host per epoch) →', ticks: summary.budgets as number[], tickFormat: '~s' },
    { label: '↑ coverage (% of services found)', percent: true, domain: [0, 100] },
  );
  return renderFigure(
    'coverage-vs-budget',
    `Coverage vs budget, ${recording}: services found / services present over all epochs; bands are ${pct(summary.confidence)} bootstrap intervals (hosts and seeds resampled).`,
    svg,
    { recording },
  );
}

/** Coverage per epoch at the focus budget (learning curves), with intervals over seeds. */
export function chartLearningCurves(summary: ExperimentSummary, recording: string, budget = summary.focusBudget): string {
  const points = finite(
    summary.curves
      .filter((c) => c.recording === recording && c.budget === budget)
      .map((c) => ({
        strategy: c.strategy,
        x: c.epoch,
        value: c.coverage.value ?? Number.NaN,
        low: c.coverage.low,
        high: c.coverage.high,
      })),
  );
  const svg = lineWithBand(
    points,
    summary.strategies,
    { label: 'epoch →', tickFormat: 'd' },
    { label: '↑ coverage in epoch (%)', percent: true, domain: [0, 100] },
  );
  return renderFigure(
    'learning-curve',
    `Learning curves, ${recording}, budget ${budget}: coverage of each epoch; bands are ${pct(summary.confidence)} intervals over seeds.`,
    svg,
    { recording },
  );
}

/** Cumulative services missed per host (regret against the oracle) at the focus budget. */
export function chartRegret(summary: ExperimentSummary, recording: string, budget = summary.focusBudget): string {
  const points = finite(
    summary.curves
      .filter((c) => c.recording === recording && c.budget === budget)
      .map((c) => ({
        strategy: c.strategy,
        x: c.epoch,
        value: c.cumulativeMissed.value ?? Number.NaN,
        low: c.cumulativeMissed.low,
        high: c.cumulativeMissed.high,
      })),
  );
  const svg = lineWithBand(
    points,
    summary.strategies,
    { label: 'epoch →', tickFormat: 'd' },
    { label: '↑ cumulative services missed per host', zero: true, nice: true },
  );
  return renderFigure(
    'regret',
    `Regret, ${recording}, budget ${budget}: services missed so far per host, compared with an oracle that probes exactly the open ports (lower is better).`,
    svg,
    { recording },
  );
}

/** Coverage per scope tag at the focus budget: bars with interval rules. */
export function chartPerTag(summary: ExperimentSummary, recording: string, budget = summary.focusBudget): string {
  const data = summary.rows
    .filter((r) => r.recording === recording && r.budget === budget && r.tag !== ALL_TAGS && r.coverage.value !== null)
    .map((r) => ({ tag: r.tag, strategy: r.strategy, value: r.coverage.value!, low: r.coverage.low, high: r.coverage.high }));
  const tags = [...new Set(data.map((d) => d.tag))];
  const svg = renderPlot({
    width: Math.max(width, 110 * tags.length + 80),
    height,
    ...margins,
    marginBottom: 56,
    style: { fontSize: '11px' },
    fx: { label: 'scope tag', domain: tags, padding: 0.15 },
    x: { axis: null, domain: summary.strategies as string[] },
    y: { label: '↑ coverage (%)', percent: true, domain: [0, 100], grid: true },
    color: colorScale(summary.strategies),
    marks: [
      Plot.barY(data, { fx: 'tag', x: 'strategy', y: 'value', fill: 'strategy' }),
      Plot.ruleX(
        data.filter((d) => d.low !== null),
        { fx: 'tag', x: 'strategy', y1: 'low', y2: 'high', stroke: '#222', strokeWidth: 1.2 },
      ),
      Plot.ruleY([0]),
    ],
  });
  return renderFigure(
    'per-tag',
    `Coverage per scope tag, ${recording}, budget ${budget}; black rules are ${pct(summary.confidence)} bootstrap intervals (hosts of the tag resampled within seeds).`,
    svg,
    { recording },
  );
}

/** Distribution of epochs until a newly opened service was first found, at the focus budget. */
export function chartEpochsToDetect(summary: ExperimentSummary, recording: string, budget = summary.focusBudget): string {
  const rows = summary.detection.filter((d) => d.recording === recording && d.budget === budget && d.tag === ALL_TAGS);
  const bins = new Set<string>();
  for (const r of rows) for (const b of Object.keys(r.histogram)) bins.add(b);
  const order = [...bins].sort((a, b) => binRank(a) - binRank(b));
  const domain = [...order, 'never'];
  const data = rows.flatMap((r) =>
    domain.map((bin) => ({
      bin,
      strategy: r.strategy,
      share: r.count > 0 ? (bin === 'never' ? r.censored : (r.histogram[bin] ?? 0)) / r.count : 0,
    })),
  );
  const svg = renderPlot({
    width: Math.max(width, 90 * domain.length + 80),
    height,
    ...margins,
    style: { fontSize: '11px' },
    fx: { label: 'epochs until first found →', domain, padding: 0.15 },
    x: { axis: null, domain: summary.strategies as string[] },
    y: { label: '↑ share of new services (%)', percent: true, grid: true, nice: true },
    color: colorScale(summary.strategies),
    marks: [Plot.barY(data, { fx: 'bin', x: 'strategy', y: 'share', fill: 'strategy' }), Plot.ruleY([0])],
  });
  return renderFigure(
    'epochs-to-detect',
    `Epochs to detect, ${recording}, budget ${budget}: for services that opened after epoch 0, how many epochs passed before each strategy first found them ("never": still unfound at the end or closed first). Pooled over seeds.`,
    svg,
    { recording },
  );
}

function binRank(bin: string): number {
  const n = Number.parseInt(bin.replace(/[^0-9]/g, ''), 10);
  return Number.isNaN(n) ? 1e9 : bin.startsWith('>') ? n + 0.5 : n;
}

function pct(confidence: number): string {
  return `${Math.round(confidence * 100)}%`;
}

/** Coverage at one budget, every recording side by side (the headline figure). */
export function chartAcrossRecordings(summary: ExperimentSummary, budget = summary.focusBudget, tag = ALL_TAGS): string {
  const data = summary.rows
    .filter((r) => r.budget === budget && r.tag === tag && r.coverage.value !== null)
    .map((r) => ({ recording: r.recording, strategy: r.strategy, value: r.coverage.value!, low: r.coverage.low, high: r.coverage.high }));
  const recordings = summary.recordings.filter((r) => data.some((d) => d.recording === r));
  const svg = renderPlot({
    width: Math.max(width, 34 * summary.strategies.length * recordings.length + 120),
    height: 400,
    ...margins,
    marginTop: 44,
    marginBottom: 84,
    style: { fontSize: '11px' },
    // Strategy names under the bars and scopes on top: the chart reads without a legend (README).
    fx: { label: 'scope', domain: recordings, padding: 0.12, axis: 'top' },
    x: { label: null, domain: summary.strategies as string[], tickRotate: -40 },
    y: { label: `↑ coverage at ${budget} probes per host (%)`, percent: true, domain: [0, 100], grid: true },
    color: colorScale(summary.strategies),
    marks: [
      Plot.barY(data, { fx: 'recording', x: 'strategy', y: 'value', fill: 'strategy' }),
      Plot.ruleX(
        data.filter((d) => d.low !== null),
        { fx: 'recording', x: 'strategy', y1: 'low', y2: 'high', stroke: '#222', strokeWidth: 1.2 },
      ),
      Plot.ruleY([0]),
    ],
  });
  return renderFigure(
    'across-recordings',
    `Coverage at a budget of ${budget} probes per host per epoch, per scope, over all epochs; black rules are ${pct(summary.confidence)} bootstrap intervals (hosts and seeds resampled).`,
    svg,
  );
}
