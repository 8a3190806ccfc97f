import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { main } from '../../src/cli/main.js';
import { cellKey, expandCells, formatExperimentSpec, loadExperimentSpec, parseExperimentSpec } from '../../experiments/spec.js';

const valid = {
  name: 'x',
  recordings: [{ profile: 'enterprise', hosts: 256, epochs: 12 }, { file: 'rec.ndjson' }],
  strategies: ['top-k', { label: 'natlas', strategy: 'fixed' }, { strategy: 'thompson', params: { prior: 1 } }],
  budgets: [100, 25],
  seeds: [1, 'b'],
  baseline: 'natlas',
};

function errorOf(raw: unknown): Error {
  try {
    parseExperimentSpec(raw, 'x.json', '/specs');
  } catch (error) {
    expect(isPortbanditError(error, 'PB_ERR_EXPERIMENT')).toBe(true);
    return error as Error;
  }
  throw new Error('expected the spec to be rejected');
}

describe('experiment specs', () => {
  it('resolves defaults, sorts budgets, stringifies seeds and resolves files against the spec folder', () => {
    const spec = parseExperimentSpec(valid, 'x.json', '/specs');
    expect(spec.budgets).toEqual([25, 100]);
    expect(spec.seeds).toEqual(['1', 'b']);
    expect(spec.batch).toBe(256);
    expect(spec.order).toBe('recording');
    expect(parseExperimentSpec({ ...valid, order: 'shuffled' }, 'x.json', '/specs').order).toBe('shuffled');
    expect(spec.focusBudget).toBe(100);
    expect(spec.bootstrap).toEqual({ replicates: 500, confidence: 0.95, seed: 'x' });
    expect(spec.recordings[1]).toEqual({ kind: 'file', name: 'rec', path: '/specs/rec.ndjson' });
    expect(spec.recordings[0]).toMatchObject({ kind: 'generated', name: 'enterprise', seed: null });
    expect(expandCells(spec)).toHaveLength(2 * 3 * 2 * 2);
    expect(Object.isFrozen(spec)).toBe(true);
  });

  it.each([
    [{ ...valid, budgets: [100, 0] }, /x\.json\.budgets\[1\]: expected an integer from 1 to 65535, got 0/],
    [{ ...valid, strategies: [{ label: 'a' }] }, /x\.json\.strategies\[0\]\.strategy: expected a non-empty string/],
    [{ ...valid, baseline: 'nope' }, /x\.json\.baseline: "nope" is not one of the strategy labels \(top-k, natlas, thompson\)/],
    [{ ...valid, budget: [1] }, /x\.json\.budget: unknown field/],
    [{ ...valid, recordings: [{ hosts: 3 }] }, /x\.json\.recordings\[0\]: expected "profile"/],
    [{ ...valid, recordings: [{ profile: 'iot', hosts: 1.5, epochs: 3 }] }, /recordings\[0\]\.hosts: expected an integer/],
    [{ ...valid, seeds: [] }, /x\.json\.seeds: expected a non-empty array/],
    [{ ...valid, seeds: [1, '1'] }, /duplicate seed "1"/],
    [{ ...valid, strategies: ['top-k', 'top-k'] }, /duplicate strategy label "top-k"/],
    [{ ...valid, focusBudget: 50 }, /focusBudget: expected one of the budgets \(25, 100\), got 50/],
    [{ ...valid, bootstrap: { confidence: 95 } }, /bootstrap\.confidence: expected a number between 0\.5 and 1/],
    [{ ...valid, order: 'sorted' }, /x\.json\.order: expected "shuffled" or "recording", got "sorted"/],
  ])('rejects %j naming the field', (raw, message) => {
    expect(errorOf(raw).message).toMatch(message);
  });

  it('keys cells by their content: field order and labels do not matter, budgets and versions do', () => {
    const a = expandCells(parseExperimentSpec(valid, 'x.json', '/specs'));
    const reordered = expandCells(
      parseExperimentSpec(
        {
          baseline: 'natlas',
          seeds: valid.seeds,
          budgets: valid.budgets,
          strategies: valid.strategies,
          recordings: valid.recordings,
          name: 'other',
        },
        'y.json',
        '/specs',
      ),
    );
    expect(a.map((c) => cellKey(c))).toEqual(reordered.map((c) => cellKey(c)));
    const relabelled = { ...a[0]!, strategy: { ...a[0]!.strategy, label: 'renamed' } };
    expect(cellKey(relabelled)).toBe(cellKey(a[0]!));
    expect(cellKey({ ...a[0]!, budget: 26 })).not.toBe(cellKey(a[0]!));
    expect(cellKey({ ...a[0]!, order: 'shuffled' })).not.toBe(cellKey(a[0]!));
    expect(cellKey(a[0]!, { version: '9.9.9' })).not.toBe(cellKey(a[0]!));
    expect(new Set(a.map((c) => cellKey(c))).size).toBe(a.length);
  });

  it('round-trips through its input form (spec.json)', () => {
    const spec = parseExperimentSpec(valid, 'x.json', '/specs');
    expect(parseExperimentSpec(JSON.parse(JSON.stringify(formatExperimentSpec(spec))), 'spec.json', '/elsewhere')).toEqual(spec);
  });

  it('reports a file that is not JSON with its path, and the CLI exits 2 with the code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-spec-'));
    try {
      const file = join(dir, 'bad.json');
      writeFileSync(file, '{ "name": ');
      expect(() => loadExperimentSpec(file)).toThrow(new RegExp(`${file}: not valid JSON`));
      expect(await main(['node', 'portbandit', 'experiment', file, '--out', join(dir, 'out')])).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
