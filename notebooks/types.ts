import type { CellResult, ExperimentSpec, ExperimentSummary } from '../experiments/index.js';

/** What a notebook reads: one experiment's output folder, loaded. */
export interface NotebookInput {
  /** The experiment's output folder. */
  readonly dir: string;
  readonly spec: ExperimentSpec;
  readonly results: readonly CellResult[];
  readonly summary: ExperimentSummary;
}

/**
 * An analysis notebook: a TypeScript module that turns an experiment's results into one HTML
 * page of prose, tables and Plot charts. Deterministic in its input.
 */
export interface Notebook {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  render(input: NotebookInput): string;
}
