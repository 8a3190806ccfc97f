import { availableParallelism } from 'node:os';
import { cliIo } from '../io.js';
import { join } from 'node:path';
import { Command } from 'commander';
import { ALL_TAGS, createProgress, formatNumber, loadExperimentSpec, runExperiment } from '../../../experiments/index.js';
import { parseInteger } from '../options.js';

interface ExperimentFlags {
  out: string;
  workers?: number;
  report: boolean;
  json?: boolean;
}

/** `portbandit experiment FILE --out DIR`: run an experiment grid, resumably, and write its report. */
export function createExperimentCommand(): Command {
  return new Command('experiment')
    .description(
      'Run an experiment (recordings x strategies x budgets x seeds) on worker threads; writes results.ndjson, summary.csv/json and report.html to DIR. Finished cells are cached in DIR, so an interrupted run resumes.',
    )
    .argument('<file>', 'experiment spec (JSON), e.g. experiments/headline.json')
    .requiredOption('--out <dir>', 'output folder (created; reused as a cache)')
    .option(
      '--workers <n>',
      `worker threads (default: all cores, here ${availableParallelism()}; 0 = in this thread)`,
      parseInteger(0, 256),
    )
    .option('--no-report', 'skip report.html')
    .option('--json', 'print one JSON object (files, cells run and cached) on stdout instead of the table')
    .action(async (file: string, flags: ExperimentFlags) => {
      const spec = loadExperimentSpec(file);
      const controller = new AbortController();
      // Ctrl-C stops dispatching; finished cells stay cached for the next run.
      const onSignal = () => {
        cliIo().stderr.write('\nexperiment: stopping; finished cells are cached, rerun the same command to resume\n');
        controller.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const run = await runExperiment(spec, {
          out: flags.out,
          ...(flags.workers !== undefined && { workers: flags.workers }),
          progress: createProgress(cliIo().stderr),
          signal: controller.signal,
          skipReport: !flags.report,
        });
        const files = ['results.ndjson', 'summary.csv', 'summary.json', 'spec.json', ...(flags.report ? ['report.html'] : [])].map((f) =>
          join(flags.out, f),
        );
        if (flags.json) {
          cliIo().stdout.write(
            `${JSON.stringify({ experiment: spec.name, out: flags.out, cells: run.results.length, cached: run.cached, ran: run.ran, files })}\n`,
          );
          return;
        }
        const s = run.summary;
        const lines = [`recording\tstrategy\tbudget\tcoverage\tlow\thigh\tdiff_vs_${s.baseline}\tprecision\tprobes_per_host`];
        for (const r of s.rows) {
          if (r.tag !== ALL_TAGS || r.budget !== s.focusBudget) continue;
          lines.push(
            [
              r.recording,
              r.strategy,
              r.budget,
              formatNumber(r.coverage.value, 'percent'),
              formatNumber(r.coverage.low, 'percent'),
              formatNumber(r.coverage.high, 'percent'),
              formatNumber(r.coverageDiff?.value, 'percent'),
              formatNumber(r.precision.value, 'percent'),
              formatNumber(r.probesPerHost.value, 'fixed1'),
            ].join('\t'),
          );
        }
        cliIo().stdout.write(`${lines.join('\n')}\n`);
        cliIo().stderr.write(`experiment: ${run.ran} cells run, ${run.cached} cached; wrote ${files.join(', ')}\n`);
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
    });
}

export function registerExperiment(program: Command): void {
  program.addCommand(createExperimentCommand());
}
