import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { runExperiment } from '../../experiments/runner.js';
import { ALL_TAGS } from '../../experiments/summarise.js';
import { expandCells, loadExperimentSpec } from '../../experiments/spec.js';
import { tinySpec, writeTinyRecording } from './helpers.js';

describe('the experiment runner', () => {
  let dir: string;
  let file: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pb-exp-'));
    file = join(dir, 'tiny.ndjson');
    writeTinyRecording(file, { hosts: 30, epochs: 4, seed: 'r' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the full grid on worker threads and writes results, summaries and the report', async () => {
    const spec = tinySpec(file);
    const out = join(dir, 'full');
    const run = await runExperiment(spec, { out, workers: 2 });
    expect(run.results).toHaveLength(expandCells(spec).length);
    expect(run.ran).toBe(12);
    const lines = readFileSync(join(out, 'results.ndjson'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(12);
    const first = JSON.parse(lines[0]!);
    expect(first.cell.strategy.label).toBe('natlas-fixed');
    expect(first.simulation.coverage).toBeGreaterThan(0);
    expect(first.metrics.hosts.ip).toHaveLength(30);
    expect(readFileSync(join(out, 'summary.csv'), 'utf8').split('\n')[0]).toContain('coverage_low');
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.rows.length).toBeGreaterThan(0);
    // Epochs-to-detect per tag: each host has one tag, so the tags' services add up to the scope's.
    const detection = summary.detection as { strategy: string; budget: number; tag: string; count: number; detected: number }[];
    const all = detection.filter((d) => d.tag === ALL_TAGS);
    expect(all.length).toBeGreaterThan(0);
    for (const row of all) {
      const tags = detection.filter((d) => d.strategy === row.strategy && d.budget === row.budget && d.tag !== ALL_TAGS);
      expect(tags.map((d) => d.tag).sort()).toEqual(['db', 'web']);
      expect(tags.reduce((n, d) => n + d.count, 0)).toBe(row.count);
      expect(tags.reduce((n, d) => n + d.detected, 0)).toBe(row.detected);
    }
    expect(all.some((d) => d.count > 0)).toBe(true);
    expect(readFileSync(join(out, 'summary.csv'), 'utf8').split('\n')[0]).toContain('epochs_to_detect_low');
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('<svg');
    // spec.json loads back as a spec that expands to the same grid.
    expect(expandCells(loadExperimentSpec(join(out, 'spec.json'))).length).toBe(12);
  });

  it('gives the same results in-thread and on workers', async () => {
    const spec = tinySpec(file, { strategies: ['top-k', 'random'], baseline: 'top-k', budgets: [7], seeds: ['a'] });
    const a = await runExperiment(spec, { out: join(dir, 'inthread'), workers: 0, skipReport: true });
    const b = await runExperiment(spec, { out: join(dir, 'workers'), workers: 2, skipReport: true });
    expect(readFileSync(join(dir, 'inthread', 'results.ndjson'), 'utf8')).toBe(
      readFileSync(join(dir, 'workers', 'results.ndjson'), 'utf8'),
    );
    expect(a.summary).toEqual(b.summary);
  });

  it('resumes after an interruption and produces identical results', async () => {
    const spec = tinySpec(file);
    const out = join(dir, 'resumed');
    const controller = new AbortController();
    await expect(
      runExperiment(spec, {
        out,
        workers: 2,
        signal: controller.signal,
        onCell: (done) => {
          if (done >= 4) controller.abort();
        },
      }),
    ).rejects.toSatisfy((e) => isPortbanditError(e, 'PB_ERR_EXPERIMENT') && /interrupted/.test((e as Error).message));
    const cachedAfterAbort = readdirSync(join(out, 'cells')).filter((f) => f.endsWith('.json')).length;
    expect(cachedAfterAbort).toBeGreaterThanOrEqual(4);
    expect(cachedAfterAbort).toBeLessThan(12);

    const resumed = await runExperiment(spec, { out, workers: 2 });
    expect(resumed.cached).toBe(cachedAfterAbort);
    expect(resumed.ran).toBe(12 - cachedAfterAbort);
    expect(readFileSync(join(out, 'results.ndjson'), 'utf8')).toBe(readFileSync(join(dir, 'full', 'results.ndjson'), 'utf8'));
    expect(readFileSync(join(out, 'summary.json'), 'utf8')).toBe(readFileSync(join(dir, 'full', 'summary.json'), 'utf8'));
  });

  it('reruns only the cells a changed spec adds', async () => {
    const out = join(dir, 'full');
    const changed = tinySpec(file, { budgets: [5, 20, 40] });
    const run = await runExperiment(changed, { out, workers: 1, skipReport: true });
    expect(run.cached).toBe(12);
    expect(run.ran).toBe(6);
  });

  it('reports a bad strategy parameter from a worker with its code', async () => {
    const spec = tinySpec(file, { strategies: [{ strategy: 'top-k', params: { nope: 1 } }], baseline: 'top-k', budgets: [5], seeds: [1] });
    await expect(runExperiment(spec, { out: join(dir, 'bad'), workers: 1 })).rejects.toSatisfy(
      (e) => isPortbanditError(e, 'PB_ERR_STRATEGY_OPTION') && /nope/.test((e as Error).message),
    );
  });
});
