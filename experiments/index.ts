export type * from './types.js';
export {
  parseExperimentSpec,
  loadExperimentSpec,
  expandCells,
  cellKey,
  canonicalJson,
  formatExperimentSpec,
  specDefaults,
} from './spec.js';
export {
  type Estimate,
  bootstrapMean,
  bootstrapEstimate,
  drawHierarchicalWeights,
  percentileInterval,
  pooledRatio,
  probesToReach,
  weightedSum,
} from './stats.js';
export {
  ALL_TAGS,
  COVERAGE_TARGET,
  summariseExperiment,
  formatSummaryCsv,
  type ExperimentSummary,
  type SummaryRow,
  type ProbesToTargetRow,
  type CurvePoint,
  type DetectionRow,
} from './summarise.js';
export { runExperiment, readResults, keyCells, type RunExperimentOptions, type ExperimentRun } from './runner.js';
export { runCell, metricsFromSimulation, type CellContext, type GenerateFn } from './run-cell.js';
export { CellCache } from './cache.js';
export { WorkerPool } from './pool.js';
export { createProgress, silentProgress, type ProgressReporter } from './progress.js';
export { renderReport, headlineTable, tagTable } from './report.js';
export {
  chartKinds,
  chartAcrossRecordings,
  chartCoverageVsBudget,
  chartLearningCurves,
  chartPerTag,
  chartRegret,
  chartEpochsToDetect,
  type ChartKind,
} from './charts.js';
export {
  escapeHtml,
  renderPage,
  renderTable,
  renderFigure,
  renderLegend,
  renderPlot,
  formatEstimate,
  formatNumber,
  colorScale,
  PALETTE,
} from './html.js';
