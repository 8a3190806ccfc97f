import { loadNmapServices, type PortCatalog } from '../../src/catalog/index.js';
import { isPortbanditError, PortbanditError } from '../../src/core/index.js';
import { RecordingWriter } from '../../src/recording/index.js';
import { modelObservations, scopeHeader } from './generate.js';
import { resolveGenerateOptions, type GenerateOptions } from './options.js';
import { buildScopeModel } from './scope-model.js';

/** Progress of a generation: observation lines written so far out of hosts x epochs. */
export interface GenerateProgress {
  readonly epoch: number;
  readonly epochs: number;
  /** Hosts done in the current epoch. */
  readonly hostsDone: number;
  readonly hosts: number;
  readonly lines: number;
  readonly totalLines: number;
}

/** Summary of a written scope. */
export interface WrittenScope {
  readonly path: string;
  /** Lines including the header. */
  readonly lines: number;
  readonly hosts: number;
  readonly epochs: number;
}

/** How often (in observation lines) progress is reported. */
const PROGRESS_EVERY = 8192;

/**
 * Generate a synthetic scope and stream it to `outPath` as an NDJSON recording, in bounded
 * memory. `onProgress` is called every few thousand lines and at the end of every epoch.
 */
export async function writeGeneratedScope(
  options: GenerateOptions,
  outPath: string,
  onProgress?: (progress: GenerateProgress) => void,
  catalog: PortCatalog = loadNmapServices(),
): Promise<WrittenScope> {
  const o = resolveGenerateOptions(options);
  const header = scopeHeader(o, catalog);
  const model = buildScopeModel(o, catalog);
  let writer: RecordingWriter;
  try {
    writer = await RecordingWriter.open(outPath, header);
  } catch (cause) {
    if (isPortbanditError(cause)) throw cause;
    throw new PortbanditError('PB_ERR_IO', `cannot write the recording: ${(cause as Error).message}`, { where: outPath, cause });
  }
  const totalLines = o.hosts * o.epochs;
  let lines = 0;
  const report = (epoch: number, hostsDone: number): void =>
    onProgress?.({ epoch, epochs: o.epochs, hostsDone, hosts: o.hosts, lines, totalLines });
  try {
    for (const obs of modelObservations(model)) {
      await writer.write(obs);
      lines++;
      // Every few thousand lines and at the end of every epoch (so the last report is the end).
      if (onProgress && (lines % PROGRESS_EVERY === 0 || lines % o.hosts === 0)) report(obs.epoch, lines - obs.epoch * o.hosts);
    }
  } finally {
    await writer.close();
  }
  return { path: outPath, lines: lines + 1, hosts: o.hosts, epochs: o.epochs };
}
