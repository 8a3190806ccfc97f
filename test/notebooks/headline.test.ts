import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JSDOM } from 'jsdom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { runExperiment } from '../../experiments/runner.js';
import { getNotebook, loadNotebookInput } from '../../notebooks/index.js';
import { tinySpec, writeTinyRecording } from '../experiments/helpers.js';

describe('the headline notebook', () => {
  let dir: string;
  let out: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pb-nb-'));
    const file = join(dir, 'tiny.ndjson');
    writeTinyRecording(file, { hosts: 24, epochs: 4, seed: 'n' });
    out = join(dir, 'out');
    await runExperiment(tinySpec(file), { out, workers: 0, skipReport: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders prose, tables and charts from an experiment folder', () => {
    const html = getNotebook('headline').render(loadNotebookInput(out));
    const doc = new JSDOM(html).window.document;
    expect(doc.querySelector('h1')?.textContent).toContain('Headline');
    expect(doc.querySelectorAll('figure.chart svg').length).toBe(3);
    expect(doc.querySelectorAll('table').length).toBe(2);
    // One comparison sentence per non-baseline strategy, naming the baseline and an interval.
    const items = [...doc.querySelectorAll('li')].map((li) => li.textContent ?? '');
    expect(items.filter((t) => t.includes("natlas-fixed's") && t.includes('paired interval'))).toHaveLength(2);
  });

  it('is rendered by `portbandit notebook NAME --results DIR`', async () => {
    const target = join(dir, 'nb.html');
    expect(await main(['node', 'portbandit', 'notebook', 'headline', '--results', out, '--out', target])).toBe(0);
    expect(readFileSync(target, 'utf8')).toContain('<svg');
  });

  it('rejects an unknown notebook and a folder without results, naming them', async () => {
    expect(() => getNotebook('nope')).toThrow(/unknown notebook "nope" \(known: headline\)/);
    expect(() => loadNotebookInput(dir)).toThrow(/no spec\.json here/);
  });
});
