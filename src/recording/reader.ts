import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PortbanditError } from '../core/errors.js';
import { RecordingBuilder } from './builder.js';
import type { LoadedRecording } from './types.js';

/** Read size: large enough that per-chunk overhead vanishes, small enough to stay out of RSS. */
const CHUNK_BYTES = 1 << 20;

function parseLine(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new PortbanditError('PB_ERR_RECORDING', `expected one JSON object per line (truncated or malformed line?): ${detail}`, { where, cause });
  }
}

/**
 * Calls `onLine(text, lineNumber)` for every non-empty line of a UTF-8 file, streaming it in
 * chunks (a trailing "\r" is dropped, a leading byte-order mark is ignored). Throws PB_ERR_IO
 * when the file cannot be read.
 */
export async function forEachLine(path: string, onLine: (text: string, line: number) => void, onChunk?: (bytesRead: number, lines: number) => void): Promise<void> {
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: CHUNK_BYTES });
  let rest = '';
  let line = 0;
  const emit = (text: string): void => {
    line++;
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return;
    onLine(text, line);
  };
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      let start = 0;
      let nl = chunk.indexOf('\n');
      if (nl !== -1 && rest !== '') {
        emit(rest + chunk.slice(0, nl));
        rest = '';
        start = nl + 1;
        nl = chunk.indexOf('\n', start);
      }
      while (nl !== -1) {
        emit(chunk.slice(start, nl));
        start = nl + 1;
        nl = chunk.indexOf('\n', start);
      }
      rest += chunk.slice(start);
      onChunk?.(stream.bytesRead, line);
    }
  } catch (cause) {
    if (cause instanceof PortbanditError) throw cause;
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new PortbanditError('PB_ERR_IO', `cannot read recording: ${detail}`, { where: path, cause });
  } finally {
    stream.destroy();
  }
  if (rest !== '') emit(rest);
}

/** Progress of a load, reported after each chunk read. */
export interface LoadProgress {
  readonly bytesRead: number;
  /** File size when the load started (0 if unknown). */
  readonly totalBytes: number;
  /** Lines read so far, including blank ones and the header. */
  readonly lines: number;
}

export interface LoadRecordingOptions {
  /** Called after each chunk (about 1 MiB), for a progress display on stderr. */
  readonly onProgress?: (progress: LoadProgress) => void;
}

/**
 * Load a recording file into the compact in-memory form, streaming: each line is parsed,
 * validated (the same checks as `recordingFromObservations`) and appended to a RecordingBuilder.
 * Any bad line rejects the whole load with PB_ERR_RECORDING naming `file:line`.
 */
export async function loadRecording(path: string, options: LoadRecordingOptions = {}): Promise<LoadedRecording> {
  let builder: RecordingBuilder | undefined;
  const { onProgress } = options;
  let totalBytes = 0;
  if (onProgress !== undefined) totalBytes = await stat(path).then((s) => s.size, () => 0);
  const onChunk = onProgress === undefined ? undefined : (bytesRead: number, lines: number) => onProgress({ bytesRead, totalBytes, lines });
  await forEachLine(
    path,
    (text, line) => {
      const where = `${path}:${line}`;
      const value = parseLine(text, where);
      if (builder === undefined) builder = new RecordingBuilder(value, { source: path, headerLine: line });
      else builder.add(value, line);
    },
    onChunk,
  );
  if (builder === undefined) {
    throw new PortbanditError('PB_ERR_RECORDING', 'expected a header line {"format":"portbandit.recording","version":1,...}, got an empty file', { where: `${path}:1` });
  }
  return builder.build();
}
