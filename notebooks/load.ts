import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PortbanditError } from '../src/core/index.js';
import { type ExperimentSummary, loadExperimentSpec, readResults, summariseExperiment } from '../experiments/index.js';
import type { NotebookInput } from './types.js';

/**
 * Load an experiment's output folder for a notebook: spec.json and results.ndjson, and
 * summary.json when it was written by the same software (otherwise re-summarised).
 */
export function loadNotebookInput(dir: string): NotebookInput {
  const specPath = join(dir, 'spec.json');
  if (!existsSync(specPath)) {
    throw new PortbanditError('PB_ERR_IO', 'no spec.json here: expected the output folder of `portbandit experiment FILE --out DIR`', {
      where: dir,
    });
  }
  const spec = loadExperimentSpec(specPath);
  const results = readResults(dir);
  const summaryPath = join(dir, 'summary.json');
  let summary: ExperimentSummary | undefined;
  if (existsSync(summaryPath)) {
    try {
      summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as ExperimentSummary;
    } catch {
      summary = undefined;
    }
  }
  if (summary === undefined || summary.experiment !== spec.name || summary.rows === undefined) summary = summariseExperiment(spec, results);
  return { dir, spec, results, summary };
}
