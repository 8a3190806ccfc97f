import { JSDOM } from 'jsdom';
import { describe, expect, it } from 'vitest';
import { renderReport } from '../../experiments/report.js';
import { formatExperimentSpec, parseExperimentSpec } from '../../experiments/spec.js';
import { summariseExperiment } from '../../experiments/summarise.js';
import { chartKinds } from '../../experiments/charts.js';
import { fakeCell } from './helpers.js';

// A hand-made results set (the runner makes real ones; this only exercises the renderer).
const spec = parseExperimentSpec(
  {
    name: 'render-test',
    description: 'Fabricated results for the renderer test.',
    recordings: [
      { profile: 'enterprise', hosts: 20, epochs: 3 },
      { profile: 'iot', hosts: 20, epochs: 3 },
    ],
    strategies: [{ label: 'natlas-fixed', strategy: 'fixed' }, 'top-k', 'adaptive'],
    budgets: [10, 100],
    seeds: [1, 2],
    baseline: 'natlas-fixed',
    bootstrap: { replicates: 40, seed: 'render' },
  },
  'render.json',
);
const share: Record<string, number> = { 'natlas-fixed': 0.5, 'top-k': 0.55, adaptive: 0.8 };
const results = spec.recordings.flatMap((rec) =>
  spec.strategies.flatMap((s) =>
    spec.budgets.flatMap((budget) =>
      spec.seeds.map((seed) =>
        fakeCell(
          spec,
          rec.name,
          s.label,
          budget,
          seed,
          Array.from({ length: 20 }, (_v, i) => {
            const total = 3 + (i % 4);
            return {
              ip: `198.18.${seed}.${i + 1}`,
              tags: [i % 2 ? 'dmz' : 'office'],
              total,
              found: Math.min(total, Math.round(total * share[s.label]! * (budget === 100 ? 1.2 : 1))),
              probes: budget * 3,
            };
          }),
        ),
      ),
    ),
  ),
);
const summary = summariseExperiment(spec, results);
const html = renderReport(spec, summary);
const document = new JSDOM(html).window.document;

describe('the experiment report', () => {
  it('has one SVG per chart, every chart kind for every recording, plus the headline chart', () => {
    const figures = [...document.querySelectorAll('figure.chart')];
    expect(figures).toHaveLength(1 + chartKinds.length * spec.recordings.length);
    for (const f of figures) expect(f.querySelectorAll('svg')).toHaveLength(1);
    for (const rec of ['enterprise', 'iot']) {
      const kinds = figures.filter((f) => f.getAttribute('data-recording') === rec).map((f) => f.getAttribute('data-chart'));
      expect(kinds).toEqual([...chartKinds]);
    }
  });

  it('labels the axes of every chart', () => {
    for (const svg of document.querySelectorAll('figure.chart svg')) {
      const y = svg.querySelector('[aria-label="y-axis label"]');
      const x = svg.querySelector('[aria-label="x-axis label"], [aria-label="fx-axis label"]');
      expect(y?.textContent?.trim().length).toBeGreaterThan(3);
      expect(x?.textContent?.trim().length).toBeGreaterThan(3);
    }
    const budgetChart = document.querySelector('figure[data-chart="coverage-vs-budget"] svg')!;
    expect(budgetChart.textContent).toContain('budget (probes per host per epoch)');
    expect(budgetChart.textContent).toContain('coverage');
  });

  it('draws a line per strategy with an interval band', () => {
    const svg = document.querySelector('figure[data-chart="learning-curve"] svg')!;
    expect(svg.querySelectorAll('g[aria-label="line"] path').length).toBe(3);
    expect(svg.querySelectorAll('g[aria-label="area"] path').length).toBe(3);
  });

  it('carries the exact spec, seeds and software version, and is self-contained', () => {
    const pre = document.querySelector('pre#spec')!;
    expect(JSON.parse(pre.textContent!)).toEqual(JSON.parse(JSON.stringify(formatExperimentSpec(spec))));
    expect(html).toContain(`portbandit ${summary.version}`);
    expect(document.body.textContent).toContain('Seeds: 1, 2');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('shows the paired difference against the baseline in the headline table', () => {
    const table = document.querySelector('#headline ~ .table-wrap table')!;
    const adaptive = [...table.querySelectorAll('tr')].find((tr) => tr.textContent?.startsWith('adaptive'))!;
    expect(adaptive.textContent).toMatch(/\+\d+\.\d pts \[\+?-?\d+\.\d, \+?-?\d+\.\d\]/);
  });
});
