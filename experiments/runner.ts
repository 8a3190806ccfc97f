import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadNmapServices } from '../src/catalog/index.js';
import { PortbanditError } from '../src/core/index.js';
import { CellCache } from './cache.js';
import { codeFingerprint } from './fingerprint.js';
import { generateScope } from './generate.js';
import { WorkerPool } from './pool.js';
import { type ProgressReporter, silentProgress } from './progress.js';
import { renderReport } from './report.js';
import { type CellContext, type GenerateFn, runCell } from './run-cell.js';
import { cellKey, expandCells, formatExperimentSpec, recordingSeed } from './spec.js';
import { type ExperimentSummary, formatSummaryCsv, summariseExperiment } from './summarise.js';
import type { CellResult, CellSpec, ExperimentSpec } from './types.js';

export interface RunExperimentOptions {
  /** Output folder: results.ndjson, summary.csv, summary.json, spec.json, report.html, cells/. */
  readonly out: string;
  /** Worker threads; default all cores. 0 runs cells in this thread (debugging). */
  readonly workers?: number;
  readonly progress?: ProgressReporter;
  /** Stops dispatching cells; finished cells stay cached. */
  readonly signal?: AbortSignal;
  /** Called after each finished (or cached) cell. */
  readonly onCell?: (done: number, total: number, result: CellResult) => void;
  /** Skip report.html (for large grids scripted elsewhere). Default false. */
  readonly skipReport?: boolean;
  /** Generator for in-thread runs (workers always use the default). */
  readonly generate?: GenerateFn;
}

export interface ExperimentRun {
  readonly results: readonly CellResult[];
  readonly summary: ExperimentSummary;
  /** Cells taken from the cache, and cells run now. */
  readonly cached: number;
  readonly ran: number;
}

function hashFile(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch (error) {
    throw new PortbanditError('PB_ERR_IO', `cannot read recording: ${(error as Error).message}`, { where: path, cause: error });
  }
}

/** Cache keys of every cell, in grid order (file recordings keyed by their content too). */
export function keyCells(cells: readonly CellSpec[]): string[] {
  const fileHashes = new Map<string, string>();
  const code = codeFingerprint();
  return cells.map((cell) => {
    if (cell.recording.kind !== 'file') return cellKey(cell, { code });
    const path = cell.recording.path;
    let hash = fileHashes.get(path);
    if (hash === undefined) {
      hash = hashFile(path);
      fileHashes.set(path, hash);
    }
    return cellKey(cell, { recordingHash: hash, code });
  });
}

function write(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (error) {
    throw new PortbanditError('PB_ERR_IO', `cannot write: ${(error as Error).message}`, { where: path, cause: error });
  }
}

/**
 * Run an experiment's full grid (recording x strategy x budget x seed) on worker threads,
 * reusing cells cached in `out`, then write results.ndjson, summary.csv/json and report.html.
 * Results are in grid order and independent of worker count and of interruptions.
 */
export async function runExperiment(spec: ExperimentSpec, options: RunExperimentOptions): Promise<ExperimentRun> {
  const out = options.out;
  try {
    mkdirSync(out, { recursive: true });
  } catch (error) {
    throw new PortbanditError('PB_ERR_IO', `cannot create the output folder: ${(error as Error).message}`, { where: out, cause: error });
  }
  write(join(out, 'spec.json'), `${JSON.stringify(formatExperimentSpec(spec), null, 2)}\n`);
  const cells = expandCells(spec);
  const keys = keyCells(cells);
  const cache = new CellCache(out);
  const results: (CellResult | undefined)[] = cells.map((cell, i) => {
    const hit = cache.get(keys[i]!);
    // Labels and names are not in the key: show the current ones.
    return hit === undefined ? undefined : { ...hit, cell };
  });
  const cached = results.filter((r) => r !== undefined).length;
  const progress = options.progress ?? silentProgress;
  progress.start(cells.length, cached);
  let done = cached;
  results.forEach((r) => r !== undefined && options.onCell?.(done, cells.length, r));

  // Run cells of one generated scope back to back so each worker builds it once.
  const todo = cells
    .map((cell, i) => ({ cell, i }))
    .filter(({ i }) => results[i] === undefined)
    .sort((a, b) => {
      const ra = spec.recordings.indexOf(a.cell.recording) - spec.recordings.indexOf(b.cell.recording);
      if (ra !== 0) return ra;
      const sa = recordingSeed(a.cell).localeCompare(recordingSeed(b.cell));
      return sa !== 0 ? sa : a.i - b.i;
    });

  const finish = (i: number, result: CellResult) => {
    cache.put(result);
    results[i] = result;
    done++;
    const c = result.cell;
    progress.tick(done, `${c.recording.name}/${c.strategy.label}@${c.budget}#${c.seed}`);
    options.onCell?.(done, cells.length, result);
  };
  const aborted = () => options.signal?.aborted === true;
  const workers = Math.max(0, Math.min(options.workers ?? availableParallelism(), todo.length));
  try {
    if (workers === 0) {
      const ctx: CellContext = { catalog: loadNmapServices(), generate: options.generate ?? generateScope, recordings: new Map() };
      for (const { cell, i } of todo) {
        if (aborted()) break;
        finish(i, await runCell(cell, keys[i]!, ctx));
      }
    } else {
      const pool = new WorkerPool(workers);
      const onAbort = () => void pool.close();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await Promise.all(
          todo.map(({ cell, i }) =>
            pool.run(cell, keys[i]!).then(
              (result) => {
                if (!aborted()) finish(i, result);
              },
              (error: unknown) => {
                if (!aborted()) throw error;
              },
            ),
          ),
        );
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
        await pool.close();
      }
    }
  } finally {
    progress.stop();
  }
  if (aborted()) {
    throw new PortbanditError('PB_ERR_EXPERIMENT', `interrupted after ${done} of ${cells.length} cells; rerun to resume from the cache`, {
      where: out,
    });
  }
  const finished = results as CellResult[];
  write(join(out, 'results.ndjson'), finished.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const summary = summariseExperiment(spec, finished);
  write(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  write(join(out, 'summary.csv'), formatSummaryCsv(summary));
  if (options.skipReport !== true) write(join(out, 'report.html'), renderReport(spec, summary));
  return { results: finished, summary, cached, ran: done - cached };
}

/** Read DIR/results.ndjson back (notebooks, re-rendering). */
export function readResults(dir: string): CellResult[] {
  const path = join(dir, 'results.ndjson');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new PortbanditError('PB_ERR_IO', `cannot read results (run \`portbandit experiment\` first): ${(error as Error).message}`, {
      where: path,
      cause: error,
    });
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, n) => {
      try {
        return JSON.parse(line) as CellResult;
      } catch (error) {
        throw new PortbanditError('PB_ERR_EXPERIMENT', `not a JSON result line: ${(error as Error).message}`, {
          where: `${path}:${n + 1}`,
          cause: error,
        });
      }
    });
}
