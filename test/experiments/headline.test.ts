import { describe, expect, it } from 'vitest';
import { HEADLINE_END, HEADLINE_START, formatHeadlineMarkdown, spliceReadme, standaloneSvg } from '../../notebooks/write-headline.js';
import { chartAcrossRecordings } from '../../experiments/charts.js';
import { expandCells, loadExperimentSpec } from '../../experiments/spec.js';
import { summariseExperiment } from '../../experiments/summarise.js';
import { fakeCell, tinySpec } from './helpers.js';

describe('the headline experiment', () => {
  it('is the required grid: every generated profile, orgtail at 128-16,384 hosts, budgets 25-1000, 12 epochs, 3 seeds, no duplicate series', () => {
    const spec = loadExperimentSpec('experiments/headline.json');
    expect(spec.budgets).toEqual([25, 50, 100, 250, 1000]);
    expect(spec.seeds).toHaveLength(3);
    expect(spec.recordings.map((r) => r.name).sort()).toEqual(
      [
        'datacenter',
        'dmz',
        'enterprise',
        'internet',
        'iot',
        'longtail',
        'office',
        'orgtail-128',
        'orgtail-1024',
        'orgtail-4096',
        'orgtail-16384',
      ].sort(),
    );
    for (const r of spec.recordings) expect(r.kind === 'generated' && r.epochs).toBe(12);
    // top-k is the Natlas list (nmap's top 1,000 in nmap's order) at every budget up to 1,000: left out.
    expect(spec.strategies.map((s) => s.strategy).sort()).toEqual(['adaptive', 'fixed', 'thompson']);
    expect(spec.strategies.find((s) => s.label === spec.baseline)?.strategy).toBe('fixed');
    expect(expandCells(spec)).toHaveLength(11 * 3 * 5 * 3);
  });
});

describe('the README headline section', () => {
  const spec = tinySpec('/x.ndjson', { seeds: [1], budgets: [5, 20], focusBudget: 20 });
  const hosts = Array.from({ length: 10 }, (_v, i) => ({ ip: `198.18.0.${i + 1}`, tags: ['web'], total: 4, found: 2, probes: 20 }));
  const results = spec.strategies.flatMap((s) => spec.budgets.map((b) => fakeCell(spec, 'tiny', s.label, b, '1', hosts)));
  const summary = summariseExperiment(spec, results);
  const md = formatHeadlineMarkdown(summary, { figure: 'docs/img/headline.svg', cells: results.length, hosts: { tiny: 10 } });

  it('has the figure and a table row per scope with every strategy and the paired differences', () => {
    expect(md).toContain('![Coverage at 20 probes');
    expect(md).toContain('| scope (hosts) | natlas-fixed | top-k | random | top-k − natlas-fixed | random − natlas-fixed |');
    expect(md).toMatch(/\| tiny \(10\) \| 50\.0% \[50\.0, 50\.0\] \|/);
  });

  it('compares the learner with the Natlas list at its native size, shows coverage over epochs and detection with the share detected', () => {
    expect(md).toContain('against the Natlas list at its native 20 ports');
    expect(md).toContain('**Coverage over epochs**');
    expect(md).toMatch(/\| tiny \| natlas-fixed \| 40\.0% \| 45\.0% \| 50\.0% \|/);
    expect(md).toContain('80% detected, 0.5 epochs');
  });

  it('is spliced between the markers, replacing the previous section and nothing else', () => {
    const once = spliceReadme('# Title\n\nintro\n', 'first');
    expect(once).toBe(`# Title\n\nintro\n\n${HEADLINE_START}\nfirst\n${HEADLINE_END}\n`);
    const twice = spliceReadme(`${once}\n## After\n`, 'second');
    expect(twice).toContain(`${HEADLINE_START}\nsecond\n${HEADLINE_END}`);
    expect(twice).not.toContain('first');
    expect(twice.endsWith('## After\n')).toBe(true);
  });

  it('writes the headline chart as a standalone SVG', () => {
    const svg = standaloneSvg(chartAcrossRecordings(summary));
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });
});
